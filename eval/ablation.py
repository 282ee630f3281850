"""Ablation grids and their analysis: the grid (TOML), its cells, and the results table from the cells' run
directories (python -m eval.ablate runs them; python -m eval.html_report draws the same table).

Every cell is compared, paired, against the baseline cell of its model: accuracy difference with a paired bootstrap
95% interval, exact McNemar p, Holm-adjusted across the grid, flips; and beside each chain, the compute-matched
control: `sc` with k = the chain's model calls per question, when the grid holds that cell.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import Field

from agents.prompts import load_prompts
from eval.analysis import answer_key, answered_letters, draft_flips, key_text, letter_p_text, paired, regrade
from eval.plan import Plan, PlanError, load_plan
from eval.schema import AnswerKey, Prediction, Question, RunConfig
from eval.store import RunDirError, graph_predictions, read_manifest
from graphs import GraphSpec, UnknownGraph

SAMPLING_GRAPHS = {"sc"}  # graphs whose cells are also crossed with `samples`
MATCHED_CONTROL = "sc"  # the compute-matched control: this graph with k = a chain's model calls per question
_SC = GraphSpec.parse(MATCHED_CONTROL).strategy.options
ABLATION = "ablation"


class GridError(PlanError):
    """The grid cannot be run; the message says what to change."""


class Grid(Plan):
    noun = "grid"
    crossed = frozenset({"samples", "sample_temperature"})  # sc cells are crossed with the grid's own `samples`

    models: list[str] = Field(default_factory=lambda: [_default_model()], min_length=1)
    graphs: list[str] = Field(min_length=1)
    variants: list[str] = Field(default_factory=list)
    retrieval: list[bool] = Field(default_factory=lambda: [False], min_length=1)
    samples: list[int] = Field(default_factory=lambda: [_SC.model_fields["samples"].default], min_length=1)
    sample_temperature: float = Field(default=_SC.model_fields["sample_temperature"].default, ge=0.0)
    baseline: str = "single"


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
        return GraphSpec.parse(self.graph).strategy.name

    @property
    def rag(self) -> bool:
        return GraphSpec.parse(self.graph).rag

    @property
    def label(self) -> str:
        options = [o for o in (self.variant, f"k={self.samples}" if self.samples else "") if o]
        return f"{self.graph}[{','.join(options)}]" if options else self.graph

    @property
    def slug(self) -> str:
        """Its run directory's name: the label without brackets, e.g. sc+rag_zh_k3."""
        return "_".join(p for p in (self.graph, self.variant, f"k{self.samples}" if self.samples else "") if p)

    def settings(self, grid: Grid) -> dict:
        """What this cell sets beyond the grid's shared flags: its prompt variant and its strategy's options."""
        settings: dict = {}
        if self.variant:
            settings["prompt_variant"] = self.variant
        if self.samples:
            settings |= {"samples": self.samples, "sample_temperature": grid.sample_temperature}
        return settings


# -- the grid -------------------------------------------------------------------------------


def load_grid(path: Path) -> Grid:
    return load_plan(path, Grid, GridError)


def cells(grid: Grid) -> list[Cell]:
    """The grid's cells in a stable order: graph, then retrieval, then variant, then k."""
    found: list[Cell] = []
    for name in grid.graphs:
        try:
            spec = GraphSpec.parse(name)
        except UnknownGraph as e:
            raise GridError(str(e)) from None
        base = spec.strategy.name
        names = [name] if spec.rag else [GraphSpec(spec.strategy, r).name for r in grid.retrieval]
        prompts = load_prompts(spec.strategy.prompt_file)
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


def recorded(config: RunConfig, strategy: str, setting: str):
    """A cell setting as its run's manifest recorded it: the prompt variant, or one of the strategy's options."""
    return config.prompt_variant if setting == "prompt_variant" else config.options.get(strategy, {}).get(setting)


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
        try:
            run.config = read_manifest(out)
        except RunDirError as e:
            raise GridError(str(e)) from None
        run.predictions = graph_predictions(out, run.config.graphs[0])
        run.status = "done"
    if status:
        run.status = status
    return run


def scored(predictions: dict[str, Prediction]) -> list[Prediction]:
    return [p for p in predictions.values() if p.parse_status != "error"]


def compare(
    baseline: dict[str, Prediction], other: dict[str, Prediction], *, resamples: int = 2000, seed: int = 0
) -> dict:
    """eval.analysis.paired of `other` against `baseline`, as the table's columns."""
    c = paired("", "", other, baseline, resamples=resamples, seed=seed)
    return {
        "n": c.n,
        "diff": c.difference,
        "diff_ci_low": c.diff_ci_low,
        "diff_ci_high": c.diff_ci_high,
        "mcnemar_p": c.mcnemar_p,
        "right_to_wrong": c.right_to_wrong,
        "wrong_to_right": c.wrong_to_right,
    }


def matched_control(run: CellRun, runs: list[CellRun]) -> tuple[CellRun | None, str]:
    """The sc cell whose k equals this cell's model calls per question (same model, retrieval and, where
    sc has it, prompt variant); or None and what to add to the grid to get one."""
    preds = scored(run.predictions)
    if run.cell.base == MATCHED_CONTROL or not preds:
        return None, ""
    k = max(1, round(sum(p.model_calls for p in preds) / len(preds)))
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
            f"cells {', '.join(differing)} ran on other questions than {done[0].label}; "
            "comparisons use the questions both answered"
        )
    every = grid.questions() if done else {}
    questions = {q: every[q] for q in ids if q in every}
    if len(questions) < len(ids):
        notes.append(
            f"{len(ids) - len(questions)} question ids of the runs are not in the dataset; "
            "they are left out of the breakdowns"
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
        for r, adjusted in zip(family, holm([r[found] for r in family]), strict=True):
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
        "calls_per_q": sum(p.model_calls for p in preds) / len(preds) if preds else 0.0,
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
    "calls_per_q", "prompt_tokens_per_q", "evaluated_tokens_per_q", "completion_tokens_per_q", "tokens_per_q",
    "seconds_per_q",
    "baseline", "diff", "diff_ci_low", "diff_ci_high", "mcnemar_p", "holm_p", "right_to_wrong", "wrong_to_right",
    "matched_cell", "matched_found", "matched_accuracy", "matched_n", "matched_diff", "matched_diff_ci_low",
    "matched_diff_ci_high",
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
        "model", "cell", "accuracy [95% CI] (correct/n)", f"Δ vs {base}, points [95% bootstrap CI]", "McNemar p",
        "Holm p",
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
        f"{scope}, the same for every cell; seed {g.seed}; "
        f"sc: k ∈ {{{', '.join(map(str, g.samples))}}} at temperature {g.sample_temperature}.",
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
