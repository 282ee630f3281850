"""python -m eval.ablate GRID.toml [--out DIR]: prompt-strategy ablations, every cell on the same questions.

A grid crosses graph x prompt variant x retrieval (off/on) x model. Each (model, cell) is one ordinary
evaluator run, `python -m eval.agentic --graph CELL --baseline none --out DIR/MODEL/CELL ...`, called in this
process (eval.agentic.main), one after another. Every cell has its own run directory, so it resumes on its own
after a kill, and a cell that finished is reused on the next invocation (`--recheck` hands it to the
evaluator's resume instead, which re-verifies model and data). Then one results table: DIR/ablation.md,
.csv and .json, with every cell compared, paired, against the baseline cell of its model: accuracy
difference with a paired bootstrap 95% interval, exact McNemar p, Holm-adjusted across the grid, flips; and
beside each chain, the compute-matched control: `sc` with k = the chain's model calls per question, when the
grid holds that cell (reflect makes 3 calls, so `samples = [3, 5]` gives reflect its control and sc its usual k).

Grid (TOML; every key but `graphs` optional):

    models = ["qwen2.5-coder-0.5b"]        # GGUF paths or packaged names
    graphs = ["single", "reflect", "cot", "sc"]
    variants = ["zh", "en"]                # prompt variants, for the graphs whose prompt file has them
    retrieval = [false, true]              # true adds NAME+rag cells (NAME+rag in `graphs` works too)
    samples = [3, 5]                       # sc's k, one cell each
    sample_temperature = 0.7               # sc's sampling temperature
    baseline = "single"                    # the cell every other one is compared with, per model
    limit = 28                             # shared by every cell, like specialty, level, seed and data
    specialty = []
    level = []
    seed = 0
    extra_args = ["--n-threads", "1"]      # passed to every evaluator run (not the flags the grid sets)
    # data = "PATH", format = "cmb", answers = "PATH", mapping = "PATH", map = {stem = "题目"}: as the evaluator's flags
    # bootstrap_resamples = 2000, bootstrap_seed = 0

Paths are relative to the current directory, as on the evaluator's command line. Cells are labelled
GRAPH[VARIANT,k=K] (single, reflect+rag, cot[en], sc[zh,k=3]) and run in DIR/MODEL/GRAPH_VARIANT_kK.

Each cell is one in-process call of the evaluator (eval.agentic.main) with its flags (prompt variant, sc's k and
temperature included, so they are recorded in the cell's manifest); in-process saves the evaluator's imports per
cell. Cells run one at a time, each loading its model afresh and freeing it after.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import gc
import io
import json
import math
import re
import sys
import tomllib
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from eval.analysis import answer_key, answered_letters, draft_flips, key_text, letter_p_text, regrade
from eval.schema import AnswerKey, Level, Prediction, Question, RunConfig, Specialty

SAMPLING_GRAPHS = {"sc"}  # graphs whose cells are also crossed with `samples`
MATCHED_CONTROL = "sc"  # the compute-matched control: this graph with k = a chain's model calls per question
# Flags the grid sets for every cell itself; `extra_args` may not repeat them.
RESERVED = {
    "--graph", "--baseline", "--model", "--limit", "--specialty", "--level", "--seed", "--data", "--format",
    "--answers", "--map", "--mapping", "--out", "--fresh", "--retrieval",
}  # fmt: skip
MARKER = "cell.json"
ABLATION = "ablation"


class GridError(Exception):
    """The grid cannot be run; the message says what to change."""


class Grid(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: list[str] = Field(default_factory=lambda: [_default_model()], min_length=1)
    graphs: list[str] = Field(min_length=1)
    variants: list[str] = Field(default_factory=list)
    retrieval: list[bool] = Field(default_factory=lambda: [False], min_length=1)
    samples: list[int] = Field(default_factory=lambda: [RunConfig.model_fields["samples"].default], min_length=1)
    sample_temperature: float = Field(default=RunConfig.model_fields["sample_temperature"].default, ge=0.0)
    baseline: str = "single"
    limit: int = Field(default=28, ge=0)
    specialty: list[Specialty] = Field(default_factory=list)
    level: list[Level] = Field(default_factory=list)
    seed: int = 0
    data: str = ""  # "" = the bundled questions
    format: str = "auto"
    answers: str = ""
    mapping: str = ""
    map: dict[str, str] = Field(default_factory=dict)
    extra_args: list[str] = Field(default_factory=list)
    bootstrap_resamples: int = Field(default=2000, ge=100)
    bootstrap_seed: int = 0


def _default_model() -> str:
    from eval.models import DEFAULT_MODEL

    return DEFAULT_MODEL


@dataclass(frozen=True)
class Cell:
    graph: str  # registry name, with +rag when it retrieves
    variant: str = ""  # prompt variant; "" for a graph whose prompts have none
    samples: int | None = None  # sampling graphs only

    @property
    def base(self) -> str:
        from graphs import parse_graph_name

        return parse_graph_name(self.graph)[0]

    @property
    def rag(self) -> bool:
        from graphs import parse_graph_name

        return parse_graph_name(self.graph)[1]

    @property
    def label(self) -> str:
        options = [o for o in (self.variant, f"k={self.samples}" if self.samples else "") if o]
        return f"{self.graph}[{','.join(options)}]" if options else self.graph

    @property
    def slug(self) -> str:
        """Its run directory's name: the label without brackets, e.g. sc+rag_zh_k3."""
        return "_".join(p for p in (self.graph, self.variant, f"k{self.samples}" if self.samples else "") if p)

    def settings(self, grid: Grid) -> dict:
        """The RunConfig fields this cell sets beyond the evaluator's flags."""
        settings: dict = {}
        if self.variant:
            settings["prompt_variant"] = self.variant
        if self.samples:
            settings |= {"samples": self.samples, "sample_temperature": grid.sample_temperature}
        return settings


# -- the grid -------------------------------------------------------------------------------


def load_grid(path: Path) -> Grid:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise GridError(f"{path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise GridError(f"{path}: not valid TOML: {e}") from None
    try:
        grid = Grid.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise GridError(f"{path}: {where}: {first['msg']}") from None
    for arg in grid.extra_args:
        if arg.split("=", 1)[0] in RESERVED:
            raise GridError(
                f"{path}: extra_args may not set {arg.split('=', 1)[0]}; the grid sets it (use its own key)"
            )
    return grid


def cells(grid: Grid) -> list[Cell]:
    """The grid's cells in a stable order: graph, then retrieval, then variant, then k."""
    from agents.prompts import load_prompts
    from graphs import RAG_SUFFIX, UnknownGraph, parse_graph_name

    found: list[Cell] = []
    for name in grid.graphs:
        try:
            base, rag = parse_graph_name(name)
        except UnknownGraph as e:
            raise GridError(str(e)) from None
        names = [name] if rag else [base + RAG_SUFFIX if r else base for r in grid.retrieval]
        prompts = load_prompts(base)
        if variants := prompts.get("variants"):
            wanted = grid.variants or [prompts["default_variant"]]
            if missing := [v for v in wanted if v not in variants]:
                raise GridError(
                    f"graph {base!r} has no prompt variant {missing[0]!r}; its variants: {', '.join(variants)}"
                )
        else:
            wanted = [""]
        ks: list[int | None] = list(grid.samples) if base in SAMPLING_GRAPHS else [None]
        for graph in names:
            for variant in wanted:
                for k in ks:
                    if (cell := Cell(graph, variant, k)) not in found:
                        found.append(cell)
    return found


def baseline_cell(grid: Grid, all_cells: list[Cell]) -> Cell:
    """The cell named by `baseline`: a label, or a graph name that only one cell has."""
    matches = [c for c in all_cells if c.label == grid.baseline] or [c for c in all_cells if c.graph == grid.baseline]
    if len(matches) != 1:
        labels = ", ".join(c.label for c in all_cells)
        why = "matches several cells" if matches else "is not a cell of this grid"
        raise GridError(f"baseline {grid.baseline!r} {why}; choose one of: {labels}")
    return matches[0]


def model_slug(model: str) -> str:
    from eval.models import PACKAGED_MODELS

    name = model if model in PACKAGED_MODELS else Path(model).stem
    return re.sub(r"[^\w.+-]", "_", name)


def agentic_argv(grid: Grid, model: str, cell: Cell) -> list[str]:
    """The evaluator's arguments for one (model, cell), without --out."""
    argv = [
        "--graph",
        cell.graph,
        "--baseline",
        "none",
        "--model",
        model,
        "--limit",
        str(grid.limit),
        "--seed",
        str(grid.seed),
    ]
    for s in grid.specialty:
        argv += ["--specialty", s]
    for lv in grid.level:
        argv += ["--level", lv]
    if grid.data:
        argv += ["--data", grid.data]
    argv += ["--format", grid.format]
    if grid.answers:
        argv += ["--answers", grid.answers]
    if grid.mapping:
        argv += ["--mapping", grid.mapping]
    for ours, theirs in grid.map.items():
        argv += ["--map", f"{ours}={theirs}"]
    flags = {"prompt_variant": "--prompt-variant", "samples": "--samples", "sample_temperature": "--sample-temperature"}
    for field, value in cell.settings(grid).items():
        argv += [flags[field], str(value)]
    return argv + grid.extra_args


# -- running ----------------------------------------------------------------------------------


def run_cell(argv: list[str], settings: dict, out: Path, *, recheck: bool = False) -> tuple[int, bool]:
    """One evaluator run (resuming whatever `out` holds); returns (exit status, whether it was reused as is)."""
    from eval import agentic

    marker = out / MARKER
    record = {"argv": argv, "settings": settings}
    if not recheck and marker.exists():
        with contextlib.suppress(ValueError, OSError):
            if json.loads(marker.read_text(encoding="utf-8")) == {**record, "complete": True}:
                return 0, True
    marker.unlink(missing_ok=True)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the evaluator prints its report
            status = agentic.main([*argv, "--out", str(out)])
    except (KeyboardInterrupt, GridError):
        raise
    except Exception:
        traceback.print_exc()
        status = 1
    gc.collect()  # let go of this cell's model before the next one loads
    if status == 0:
        config = RunConfig.model_validate_json((out / "manifest.json").read_text(encoding="utf-8"))
        if wrong := {k: getattr(config, k) for k, v in settings.items() if getattr(config, k) != v}:
            raise GridError(
                f"{out}: the evaluator did not record the cell's settings {settings} (manifest has {wrong})"
            )
        predictions = read_predictions(out, config)
        complete = all(qid in predictions and predictions[qid].parse_status != "error" for qid in config.question_ids)
        marker.write_text(json.dumps({**record, "complete": complete}, ensure_ascii=False, indent=1), encoding="utf-8")
    return status, False


def read_predictions(out: Path, config: RunConfig) -> dict[str, Prediction]:
    """The run directory's final prediction per question (its single graph's), through eval.store."""
    from eval.store import read_predictions

    return {qid: p for (graph, qid), p in read_predictions(out).items() if graph == config.graphs[0]}


# -- analysis ---------------------------------------------------------------------------------


@dataclass
class CellRun:
    model: str
    cell: Cell
    out: Path
    status: str = "missing"  # done, failed (exit N), missing
    config: RunConfig | None = None
    predictions: dict[str, Prediction] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.cell.label


def load_cell(model: str, cell: Cell, out: Path, status: str | None = None) -> CellRun:
    run = CellRun(model, cell, out)
    manifest = out / "manifest.json"
    if manifest.exists():
        run.config = RunConfig.model_validate_json(manifest.read_text(encoding="utf-8"))
        run.predictions = read_predictions(out, run.config)
        run.status = "done"
    if status:
        run.status = status
    return run


def load_grid_questions(grid: Grid) -> dict[str, Question]:
    from eval.data import BUNDLED, load_questions

    fields = dict(grid.map) or None
    questions = load_questions(
        grid.data or BUNDLED, grid.format, answers=grid.answers or None, fields=fields, mapping=grid.mapping or None
    )
    return {q.id: q for q in questions}


def model_calls(prediction: Prediction) -> int:
    """Calls that reached the model; the retrieve step is in the trace but is not one (it sends no tokens)."""
    return sum(step.prompt_tokens > 0 for step in prediction.trace)


def scored(predictions: dict[str, Prediction]) -> list[Prediction]:
    return [p for p in predictions.values() if p.parse_status != "error"]


def paired_outcomes(baseline: dict[str, Prediction], other: dict[str, Prediction]) -> tuple[list[bool], list[bool]]:
    """Correctness of both on the questions both answered without error, in question-id order."""
    both = sorted(
        q
        for q in baseline.keys() & other.keys()
        if baseline[q].parse_status != "error" and other[q].parse_status != "error"
    )
    return [baseline[q].correct for q in both], [other[q].correct for q in both]


def compare(
    baseline: dict[str, Prediction], other: dict[str, Prediction], *, resamples: int = 2000, seed: int = 0
) -> dict:
    """Paired comparison of `other` against `baseline`: n, difference with bootstrap CI, McNemar p, flips."""
    from eval.stats import mcnemar_exact, paired_bootstrap_diff, paired_counts

    base, mine = paired_outcomes(baseline, other)
    counts = paired_counts(base, mine)
    diff, low, high = paired_bootstrap_diff(base, mine, resamples=resamples, seed=seed)
    return {
        "n": counts.n,
        "diff": diff,
        "diff_ci_low": low,
        "diff_ci_high": high,
        "mcnemar_p": mcnemar_exact(counts.right_to_wrong, counts.wrong_to_right),
        "right_to_wrong": counts.right_to_wrong,
        "wrong_to_right": counts.wrong_to_right,
    }


def matched_control(run: CellRun, runs: list[CellRun]) -> tuple[CellRun | None, str]:
    """The sc cell whose k equals this cell's model calls per question (same model, retrieval and, where
    sc has it, prompt variant); or None and what to add to the grid to get one."""
    from agents.prompts import load_prompts

    preds = scored(run.predictions)
    if run.cell.base == MATCHED_CONTROL or not preds:
        return None, ""
    k = max(1, round(sum(model_calls(p) for p in preds) / len(preds)))
    variants = load_prompts(MATCHED_CONTROL).get("variants", {})
    variant = (
        run.cell.variant if run.cell.variant in variants else load_prompts(MATCHED_CONTROL).get("default_variant", "")
    )
    want = Cell(MATCHED_CONTROL + ("+rag" if run.cell.rag else ""), variant, k)
    for other in runs:
        if other.model == run.model and other.cell == want and other.status == "done":
            return other, want.label
    return None, want.label


@dataclass
class Ablation:
    grid: Grid
    out: Path
    questions: dict[str, Question]  # the questions every cell ran on
    runs: list[CellRun]
    baseline: Cell
    rows: list[dict]
    notes: list[str]
    key: AnswerKey


def analyse(grid: Grid, out: Path, statuses: dict[tuple[str, Cell], str] | None = None) -> Ablation:
    """Everything the table and the HTML report show, from the cells' run directories."""
    from eval.stats import holm

    statuses = statuses or {}
    all_cells = cells(grid)
    baseline = baseline_cell(grid, all_cells)
    runs = [load_cell(m, c, out / model_slug(m) / c.slug, statuses.get((m, c))) for m in grid.models for c in all_cells]
    notes: list[str] = []
    done = [r for r in runs if r.config]
    ids = done[0].config.question_ids if done else []
    if differing := [r.label for r in done if r.config.question_ids != ids]:
        notes.append(
            f"cells {', '.join(differing)} ran on other questions than {done[0].label}; comparisons use the questions both answered"
        )
    every = load_grid_questions(grid) if done else {}
    questions = {q: every[q] for q in ids if q in every}
    if len(questions) < len(ids):
        notes.append(
            f"{len(ids) - len(questions)} question ids of the runs are not in the dataset; they are left out of the breakdowns"
        )
    for run in done:  # a corrected answer file re-grades every cell
        run.predictions = {q: regrade(p, questions[q]) if q in questions else p for q, p in run.predictions.items()}

    rows: list[dict] = []
    for run in runs:
        row = _row(grid, run, questions)
        base = next((r for r in runs if r.model == run.model and r.cell == baseline), None)
        if run.config and base and base.config and run.cell != baseline:
            c = compare(base.predictions, run.predictions, resamples=grid.bootstrap_resamples, seed=grid.bootstrap_seed)
            row |= {"baseline": baseline.label, **c}
        control, wanted = matched_control(run, runs) if run.config else (None, "")
        row["matched_cell"] = wanted
        if control:
            c = compare(
                control.predictions, run.predictions, resamples=grid.bootstrap_resamples, seed=grid.bootstrap_seed
            )
            row |= {"matched_found": True, "matched_accuracy": _accuracy(control)} | {
                f"matched_{k}": v for k, v in c.items()
            }
        # Answered letters against a uniform guess over the options shown (a first look at position bias).
        bias = answered_letters(run.predictions.values(), questions)
        row |= {"letter_chi2": bias.statistic, "letter_p": bias.p, "letter_note": bias.why}
        rows.append(row)
    if unfinished := [
        f"{r['cell']} ({r['n']}/{len(questions)})" for r in rows if r.get("n") is not None and r["n"] < len(questions)
    ]:
        notes.append(f"unfinished or with errors: {', '.join(unfinished)}; run the grid again to resume them")
    for key, found in (("holm_p", "mcnemar_p"), ("matched_holm_p", "matched_mcnemar_p")):
        family = [r for r in rows if r.get(found) is not None]
        for r, adjusted in zip(family, holm([r[found] for r in family])):
            r[key] = adjusted
    if missing := sorted({r["matched_cell"] for r in rows if r["matched_cell"] and not r.get("matched_found")}):
        notes.append(
            f"no compute-matched control for some cells: add {', '.join(missing)} to the grid "
            f"(the k values to `samples`) to compare each chain with {MATCHED_CONTROL} at equal model calls"
        )
    return Ablation(grid, out, questions, runs, baseline, rows, notes, answer_key(list(questions.values())))


def _accuracy(run: CellRun) -> float | None:
    preds = scored(run.predictions)
    return sum(p.correct for p in preds) / len(preds) if preds else None


def summary_of(run: CellRun, questions: dict[str, Question]):
    """eval.report's GraphSummary of one cell on the grid's questions."""
    from eval.report import summarize

    preds = [p for p in run.predictions.values() if p.question_id in questions]
    return summarize(run.model, "", [run.cell.graph], None, list(questions.values()), preds).graphs[0]


def _row(grid: Grid, run: CellRun, questions: dict[str, Question]) -> dict:
    from agents.prompts import load_prompts

    variant = load_prompts(run.cell.base, run.cell.variant) if run.cell.variant else {}
    row: dict = {
        "model": run.model,
        "cell": run.label,
        "graph": run.cell.base,
        "variant": run.cell.variant,
        "language": variant.get("language", ""),
        "persona": variant.get("persona", ""),
        "retrieval": run.cell.rag,
        "samples": run.cell.samples,
        "status": run.status,
        "run_dir": str(run.out),
    }
    if not run.config or not questions:
        return row
    s = summary_of(run, questions)
    preds = [p for p in scored(run.predictions) if p.question_id in questions]
    row |= {
        "n": s.overall.total,
        "correct": s.overall.correct,
        "accuracy": s.overall.accuracy,
        "ci_low": s.overall.ci_low,
        "ci_high": s.overall.ci_high,
        "unparsed": s.unparsed,
        "errors": s.errors,
        "calls_per_q": sum(model_calls(p) for p in preds) / len(preds) if preds else 0.0,
        "prompt_tokens_per_q": s.prompt_tokens_per_q,
        "evaluated_tokens_per_q": s.prompt_tokens_evaluated_per_q,
        "completion_tokens_per_q": s.completion_tokens_per_q,
        "tokens_per_q": s.prompt_tokens_evaluated_per_q + s.completion_tokens_per_q,
        "seconds_per_q": s.seconds_per_q,
    }
    if flips := draft_flips(preds):
        row |= {f"first_to_final_{k}": v for k, v in flips.model_dump(exclude={"first"}).items()}
    return row


# -- output -----------------------------------------------------------------------------------

COLUMNS = [
    "model", "cell", "graph", "variant", "language", "persona", "retrieval", "samples", "status",
    "n", "correct", "accuracy", "ci_low", "ci_high", "unparsed", "errors",
    "calls_per_q", "prompt_tokens_per_q", "evaluated_tokens_per_q", "completion_tokens_per_q", "tokens_per_q", "seconds_per_q",
    "baseline", "diff", "diff_ci_low", "diff_ci_high", "mcnemar_p", "holm_p", "right_to_wrong", "wrong_to_right",
    "matched_cell", "matched_found", "matched_accuracy", "matched_n", "matched_diff", "matched_diff_ci_low", "matched_diff_ci_high",
    "matched_mcnemar_p", "matched_holm_p", "matched_right_to_wrong", "matched_wrong_to_right",
    "first_to_final_n", "first_to_final_unparsed", "first_to_final_changed", "first_to_final_right_to_wrong",
    "first_to_final_wrong_to_right", "letter_chi2", "letter_p", "letter_note", "run_dir",
]  # fmt: skip


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _pts(x: float) -> str:
    return f"{100 * x:+.1f}"


def _p(x: float | None) -> str:
    return "–" if x is None else f"{x:.3g}"


def diff_cell(row: dict, prefix: str = "") -> str:
    if row.get(f"{prefix}diff") is None:
        return "–"
    return f"{_pts(row[prefix + 'diff'])} [{_pts(row[prefix + 'diff_ci_low'])}, {_pts(row[prefix + 'diff_ci_high'])}]"


def first_to_final_cell(row: dict) -> str:
    if row.get("first_to_final_n") is None:
        return "–"
    return (
        f"{row['first_to_final_changed']} ({row['first_to_final_right_to_wrong']} / "
        f"{row['first_to_final_wrong_to_right']}); {row['first_to_final_unparsed']}"
    )


def render_markdown(ablation: Ablation) -> str:
    g = ablation.grid
    base = ablation.baseline.label
    header = [
        "model", "cell", "accuracy [95% CI] (correct/n)", f"Δ vs {base}, points [95% bootstrap CI]", "McNemar p", "Holm p",
        "flips r→w / w→r", "compute-matched sc", "Δ vs it [95% CI]", "Holm p (matched)", "unparsed", "errors",
        "first → final: changed (r→w / w→r); first unparsed", "letters vs uniform, χ² p", "calls/q", "tok/q", "s/q",
    ]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in ablation.rows:
        if r.get("n") is None:
            lines.append(f"| {r['model']} | {r['cell']} | {r['status']} |" + " – |" * (len(header) - 3))
            continue
        acc = f"{_pct(r['accuracy'])} [{_pct(r['ci_low'])}–{_pct(r['ci_high'])}] ({r['correct']}/{r['n']})"
        is_base = r.get("diff") is None
        matched = r["matched_cell"] + ("" if r.get("matched_found") else " (not in grid)") if r["matched_cell"] else "–"
        if r.get("matched_found"):
            matched = f"{r['matched_cell']}: {_pct(r['matched_accuracy'])}"
        cells_ = [
            r["model"], f"**{r['cell']}**" if is_base else r["cell"], acc,
            "baseline" if is_base else diff_cell(r), _p(r.get("mcnemar_p")), _p(r.get("holm_p")),
            "–" if is_base else f"{r['right_to_wrong']} / {r['wrong_to_right']}",
            matched, diff_cell(r, "matched_"), _p(r.get("matched_holm_p")),
            r["unparsed"], r["errors"], first_to_final_cell(r), letter_p_text(r["letter_p"], r["letter_note"]),
            f"{r['calls_per_q']:.1f}", f"{r['tokens_per_q']:.0f}", f"{r['seconds_per_q']:.2f}",
        ]  # fmt: skip
        lines.append("| " + " | ".join(str(c) for c in cells_) + " |")
    n = len(ablation.questions)
    scope = (
        f"{n} questions"
        + (f", specialty {', '.join(g.specialty)}" if g.specialty else "")
        + (f", level {', '.join(g.level)}" if g.level else "")
    )
    parts = [
        f"# Ablation: {', '.join(g.graphs)} × variants {', '.join(g.variants) or 'default'} × retrieval "
        f"{'/'.join('on' if r else 'off' for r in g.retrieval)} × {len(g.models)} model(s)",
        f"{scope}, the same for every cell; seed {g.seed}; sc: k ∈ {{{', '.join(map(str, g.samples))}}} at temperature {g.sample_temperature}.",
        key_text(ablation.key),
        "\n".join(lines),
        f"Accuracy with Wilson 95% intervals; unparsed answers count as wrong, errors are left out. Δ: paired "
        f"difference in accuracy points against {base} of the same model, with a paired percentile bootstrap 95% "
        f"interval ({g.bootstrap_resamples} resamples of the questions, seed {g.bootstrap_seed}); McNemar: exact "
        "two-sided test on the flips; Holm: adjusted for every comparison against the baseline in this grid (and, "
        "separately, for every compute-matched comparison). Compute-matched sc: self-consistency with k = the "
        "cell's model calls per question (same model, retrieval and prompt variant), Δ = cell minus it. "
        "First → final: of the chain's first proposals (reflect's draft, sc's first sample) that named an option, "
        "how many the final answer changed, and of those right→wrong / wrong→right; then the first proposals that "
        "named no option, counted in neither. Letters: χ² test of the answered letters against a uniform guess over "
        "the options shown (a small p: some positions are favoured, or the key is unbalanced and the cell is "
        "accurate); no p where a letter's expected count is below 5, where the option shuffle of "
        "`python -m eval.position_bias` measures position bias instead. "
        "tok/q: prompt tokens actually evaluated plus generated tokens, per question.",
    ]
    parts += [f"Note: {note}" for note in ablation.notes]
    return "\n\n".join(parts) + "\n"


def _json_safe(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value


def write_outputs(ablation: Ablation) -> dict[str, Path]:
    out = ablation.out
    paths = {ext: out / f"{ABLATION}.{ext}" for ext in ("md", "csv", "json")}
    paths["md"].write_text(render_markdown(ablation), encoding="utf-8")
    with open(paths["csv"], "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(ablation.rows)
    document = {
        "grid": ablation.grid.model_dump(),
        "baseline": ablation.baseline.label,
        "question_ids": list(ablation.questions),
        "notes": ablation.notes,
        "rows": [{k: _json_safe(r.get(k)) for k in COLUMNS} for r in ablation.rows],
    }
    paths["json"].write_text(json.dumps(document, ensure_ascii=False, indent=1), encoding="utf-8")
    return paths


def load_ablation(out: Path) -> Ablation:
    """Re-read an ablation directory (for the HTML report): its grid from ablation.json, cells from disk."""
    document = json.loads((out / f"{ABLATION}.json").read_text(encoding="utf-8"))
    grid = Grid.model_validate(document["grid"])
    statuses = {(r["model"], c): r["status"] for r in document["rows"] for c in cells(grid) if c.label == r["cell"]}
    return analyse(grid, out, statuses)


# -- CLI --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m eval.ablate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("grid", type=Path, help="grid TOML (format above)")
    p.add_argument("--out", type=Path, help="ablation directory (default runs/ablate-GRIDNAME); re-running resumes")
    p.add_argument(
        "--recheck",
        action="store_true",
        help="hand finished cells to the evaluator's resume too (re-verifies model and data files)",
    )
    p.add_argument("--no-run", action="store_true", help="only rebuild the table from what the cells hold")
    p.add_argument("--dry-run", action="store_true", help="list the cells and their evaluator commands, run nothing")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from eval.data import DataError

    args = parse_args(argv)
    out = args.out or Path("runs") / f"ablate-{args.grid.stem}"
    try:
        grid = load_grid(args.grid)
        all_cells = cells(grid)
        baseline_cell(grid, all_cells)
    except GridError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    plan = [(m, c) for m in grid.models for c in all_cells]
    if args.dry_run:
        for m, c in plan:
            print(f"{c.label:28} python -m eval.agentic {' '.join(agentic_argv(grid, m, c))} --out {out / model_slug(m) / c.slug}"
                  + (f"   # RunConfig {c.settings(grid)}" if c.settings(grid) else ""))  # fmt: skip
        return 0
    out.mkdir(parents=True, exist_ok=True)
    (out / "grid.toml").write_text(args.grid.read_text(encoding="utf-8"), encoding="utf-8")
    statuses: dict[tuple[str, Cell], str] = {}
    if not args.no_run:
        for i, (model, cell) in enumerate(plan, start=1):
            cell_out = out / model_slug(model) / cell.slug
            print(f"[{i}/{len(plan)}] {model} · {cell.label} -> {cell_out}", file=sys.stderr, flush=True)
            try:
                status, reused = run_cell(
                    agentic_argv(grid, model, cell), cell.settings(grid), cell_out, recheck=args.recheck
                )
            except KeyboardInterrupt:
                print(
                    f"\ninterrupted: finished cells and predictions are kept; run the same command again to resume ({out})",
                    file=sys.stderr,
                )
                return 130
            except GridError as e:
                print(f"error: {e}", file=sys.stderr)
                return 2
            if status == 130:
                print(f"interrupted: run the same command again to resume ({out})", file=sys.stderr)
                return 130
            if reused:
                print("    finished earlier: reused", file=sys.stderr)
            statuses[(model, cell)] = "done" if status == 0 else f"failed (exit {status})"
    try:
        ablation = analyse(grid, out, statuses)
    except (GridError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    paths = write_outputs(ablation)
    print(render_markdown(ablation))
    print(
        f"table: {paths['md']} ({paths['csv'].name}, {paths['json'].name})\nhtml: python -m eval.html_report {out}",
        file=sys.stderr,
    )
    return 1 if any(s != "done" for s in statuses.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
