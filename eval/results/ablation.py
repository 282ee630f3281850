"""Ablation grids and their analysis: the grid (TOML), its cells, and the results table from the cells' run
directories (python -m eval.ablate runs them; python -m eval.html_report draws the same table).

Every cell is compared, paired, against the baseline cell of its model: accuracy difference with a paired bootstrap
95% interval, exact McNemar p, Holm-adjusted across the grid, flips; and beside each chain, the compute-matched
controls: `sc` with k = the chain's model calls per question, and `sc` with the k whose generated tokens come
closest to the chain's, when the grid holds those cells.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from agents.prompts import load_prompts
from eval.core.errors import one_line
from eval.core.schema import BUDGET_WARNING, AnswerKey, Prediction, Question, RunConfig
from eval.core.shuffle import rotations
from eval.core.store import graph_predictions
from eval.plans.plan import (
    Plan,
    PlanError,
    duplicate,
    load_plan,
    model_key,
    model_name,
    other_model,
    read_run,
    run_names,
)
from eval.results.analysis import (
    answer_key,
    answered_letters,
    budget_text,
    collapse_rotations,
    draft_flips,
    key_text,
    letter_p_text,
    paired,
    regrade,
)
from graphs import GraphSpec, UnknownGraph, option_fields

SAMPLING_GRAPHS = {"sc"}  # graphs whose cells are also crossed with `samples`
MATCHED_CONTROL = "sc"  # the compute-matched control: this graph with k matched to a chain's calls or tokens
_SC = GraphSpec.parse(MATCHED_CONTROL).strategy.options
ABLATION = "ablation"


class GridError(PlanError):
    """The grid cannot be run; the message says what to change."""


class Grid(Plan):
    noun = "grid"
    crossed = frozenset({"samples", "sample_temperature"})  # sc cells are crossed with the grid's own `samples`

    models: list[str] = Field(
        default_factory=lambda: [_default_model()], min_length=1, description="GGUF paths or packaged model names"
    )
    graphs: list[str] = Field(min_length=1, description="strategies (NAME+rag retrieves first)")
    variants: list[str] = Field(
        default_factory=list, description="prompt variants, for the graphs whose prompt file has them"
    )
    retrieval: list[bool] = Field(
        default_factory=lambda: [False], min_length=1, description="true adds a NAME+rag cell beside every cell"
    )
    circular: list[bool] | list[str] = Field(
        default_factory=lambda: [False],
        min_length=1,
        description="true adds a NAME[circular] cell beside every cell (every rotation of the options asked, right "
        'only when right under all); graph names (["single"]) add one beside those graphs only',
    )
    critics: list[str] = Field(
        default_factory=list,
        description="other models as critic (GGUF paths, packaged names or endpoints): a cell each for strategies "
        "with a critic, beside their self-critique cell",
    )
    vary: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="strategy options crossed, a cell per value for the strategies that have the option (e.g. "
        "medprompt's parts: {knn_examples = [0, 5], shuffles = [1, 5]})",
    )
    samples: list[int] = Field(
        default_factory=lambda: [_SC.model_fields["samples"].default],
        min_length=1,
        description="sc's k, one cell each",
    )
    sample_temperature: float = Field(
        default=_SC.model_fields["sample_temperature"].default, ge=0.0, description="sc's sampling temperature"
    )
    baseline: str = Field("single", description="the cell every other cell of its model is compared with")

    def model_dirs(self) -> dict[str, str]:
        """Each model's directory in the ablation's: its name, and where two share one, a hash of its path too."""
        return dict(zip(self.models, run_names([(model_name(m), m) for m in self.models]), strict=True))


def _default_model() -> str:
    from eval.models import DEFAULT_MODEL

    return DEFAULT_MODEL


@dataclass(frozen=True)
class Cell:
    graph: str  # registry name, with +rag when it retrieves
    variant: str = ""  # prompt variant; "" for a graph whose prompts have none
    samples: int | None = None  # sampling graphs only
    circular: bool = False  # every rotation of the options asked; scored right only when right under all of them
    critic: str = ""  # --critic-model; "" = the drafter's own model
    options: tuple[tuple[str, Any], ...] = ()  # the grid's `vary` values this cell takes
    critic_name: str = field(default="", compare=False)  # the critic in labels: as the grid names its models

    @property
    def base(self) -> str:
        return GraphSpec.parse(self.graph).strategy.name

    @property
    def rag(self) -> bool:
        return GraphSpec.parse(self.graph).rag

    @property
    def label(self) -> str:
        options = [o for o in (self.variant, f"k={self.samples}" if self.samples else "", *self._flags("=")) if o]
        options += [f"{k}={v}" for k, v in self.options]
        return f"{self.graph}[{','.join(options)}]" if options else self.graph

    @property
    def slug(self) -> str:
        """Its run directory's name: the label without brackets, e.g. sc+rag_zh_k3."""
        return "_".join(
            p
            for p in (
                self.graph, self.variant, f"k{self.samples}" if self.samples else "", *self._flags("-"),
                *(re.sub(r"[^\w.+-]", "_", f"{k}-{v}") for k, v in self.options),
            )
            if p
        )  # fmt: skip

    def _flags(self, equals: str) -> tuple[str, str]:
        return "circular" if self.circular else "", f"critic{equals}{self.critic_name}" if self.critic else ""

    def settings(self, grid: Grid) -> dict:
        """What this cell sets beyond the grid's shared flags: its prompt variant and its strategy's options."""
        settings: dict = {}
        if self.variant:
            settings["prompt_variant"] = self.variant
        if self.samples:
            settings |= {"samples": self.samples, "sample_temperature": grid.sample_temperature}
        if self.circular:
            settings["circular"] = True
        if self.critic:
            settings["critic_model"] = self.critic
        return settings | dict(self.options)


# -- the grid -------------------------------------------------------------------------------


def load_grid(path: Path) -> Grid:
    grid = load_plan(path, Grid, GridError)
    names = {n for g in grid.graphs for n in (g, g.removesuffix("+rag"))}
    if typos := [c for c in grid.circular if isinstance(c, str) and c not in names]:
        raise GridError(f"{path}: circular names {typos[0]!r}, which is not in graphs ({', '.join(grid.graphs)})")
    if empty := [k for k, values in grid.vary.items() if not values]:
        raise GridError(f"{path}: vary.{empty[0]} lists no values")
    fields = option_fields()
    if bad := sorted(set(grid.vary) - set(fields) | set(grid.vary) & (Grid.crossed | set(grid.options))):
        why = "is set by `options` too" if bad[0] in grid.options else "is not a strategy option the grid may vary"
        raise GridError(f"{path}: vary.{bad[0]} {why}; choose from: {', '.join(sorted(set(fields) - Grid.crossed))}")
    for key in ("models", "critics"):  # the same model twice would be two rows of one run
        if twice := duplicate(getattr(grid, key), model_key):
            same = (
                f"{twice[0]!r} is listed twice"
                if twice[0] == twice[1]
                else f"{twice[0]!r} and {twice[1]!r} are one model"
            )
            raise GridError(f"{path}: {key}: {same}; list it once")
    return grid


def cells(grid: Grid) -> list[Cell]:
    """The grid's cells in a stable order: graph, then retrieval, then variant, then k, then circular, then critic."""
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
        critics = ["", *grid.critics] if "critic" in spec.strategy.roles else [""]
        critic_names = dict(zip(grid.critics, run_names([(model_name(c), c) for c in grid.critics]), strict=True))
        varied = _varied(grid, spec.strategy)
        circulars = (
            grid.circular if all(isinstance(c, bool) for c in grid.circular) else [False, True]
            if {name, base} & set(grid.circular) else [False]
        )  # fmt: skip
        for graph in names:
            for variant in wanted:
                for k in ks:
                    for circular in circulars:
                        for critic in critics:
                            for options in varied:
                                cell = Cell(graph, variant, k, circular, critic, options, critic_names.get(critic, ""))
                                if cell not in found:
                                    found.append(cell)
    return found


def _varied(grid: Grid, strategy) -> list[tuple[tuple[str, Any], ...]]:
    """Every combination of the grid's `vary` values for the options this strategy has (one empty one if none)."""
    names = [n for n in grid.vary if n in strategy.options.model_fields]
    for name in names:
        for value in grid.vary[name]:
            try:
                strategy.options.model_validate({name: value})
            except ValidationError as e:
                raise GridError(f"vary.{name} = {value!r}: {e.errors()[0]['msg']}") from None
    return [tuple(zip(names, values, strict=True)) for values in product(*(grid.vary[n] for n in names))]


def recorded(config: RunConfig, strategy: str, setting: str):
    """A cell setting as its run's manifest recorded it: the prompt variant, --circular, or one of the strategy's
    options."""
    if setting in ("prompt_variant", "circular"):
        return getattr(config, setting)
    if setting == "critic_model":
        return config.roles.get("critic", {}).get("spec")
    return config.options.get(strategy, {}).get(setting)


def baseline_cell(grid: Grid, all_cells: list[Cell]) -> Cell:
    """The cell named by `baseline`: a label, or a graph name that only one cell has."""
    matches = [c for c in all_cells if c.label == grid.baseline] or [c for c in all_cells if c.graph == grid.baseline]
    if len(matches) != 1:
        labels = ", ".join(c.label for c in all_cells)
        why = "matches several cells" if matches else "is not a cell of this grid"
        raise GridError(f"baseline {grid.baseline!r} {why}; choose one of: {labels}")
    return matches[0]


# -- analysis ---------------------------------------------------------------------------------


@dataclass
class CellRun:
    model: str
    cell: Cell
    out: Path
    status: str = "missing"  # done, failed, missing
    error: str = ""  # why it failed
    config: RunConfig | None = None
    predictions: dict[str, Prediction] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.cell.label


def load_cell(model: str, cell: Cell, out: Path) -> CellRun:
    """done: it has results (unfinished ones are noted); failed: its last attempt stopped with an error, or its
    directory holds another model's run; missing: never started."""
    run = CellRun(model, cell, out)
    run.config, run.error = read_run(out, lambda config: other_model(config, model), GridError)
    if run.config:
        run.predictions = graph_predictions(out, run.config.graphs[0])
        run.status = "done"
    elif run.error:
        run.status = "failed"
    return run


def scored(predictions: dict[str, Prediction]) -> list[Prediction]:
    return [p for p in predictions.values() if p.parse_status != "error"]


def compare(
    baseline: dict[str, Prediction], other: dict[str, Prediction], *, resamples: int = 2000, seed: int = 0
) -> dict:
    """eval.results.analysis.paired of `other` against `baseline`, as the table's columns."""
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


MATCHED_BASES = ("calls", "tokens")  # the compute-matched control at equal model calls, and at equal generated tokens


def _control_variant(cell: Cell) -> str:
    variants = load_prompts(MATCHED_CONTROL).get("variants", {})
    return cell.variant if cell.variant in variants else load_prompts(MATCHED_CONTROL).get("default_variant", "")


def _per_asked(p: Prediction, cost: str) -> float:
    """A prediction's cost per question asked: a circular cell's prediction sums its rotations."""
    return getattr(p, cost) / max(1, len(p.extras.get("rotations", ())))


def matched_control(run: CellRun, runs: list[CellRun], basis: str = "calls") -> tuple[CellRun | None, str]:
    """The sc cell (same model, retrieval, circular mode and, where sc has them, prompt variant and varied options)
    whose k equals this cell's model calls per question (basis "calls"), or whose generated tokens per question
    come closest to this cell's (basis "tokens": k = the cell's generated tokens / sc's per sample, measured on the
    grid's sc cells); or None and what to add to the grid to get one ("" when nothing can be said yet). Costs are
    per question asked, so a circular cell is matched per rotation."""
    preds = scored(run.predictions)
    if run.cell.base == MATCHED_CONTROL or not preds:
        return None, ""
    graph, variant = MATCHED_CONTROL + ("+rag" if run.cell.rag else ""), _control_variant(run.cell)
    shared = tuple((k, v) for k, v in run.cell.options if k in _SC.model_fields)
    siblings = [
        r
        for r in runs
        if r.model == run.model
        and (r.cell.graph, r.cell.variant, r.cell.circular, r.cell.options)
        == (graph, variant, run.cell.circular, shared)
        and scored(r.predictions)
    ]
    if basis == "calls":
        k = max(1, round(sum(_per_asked(p, "model_calls") for p in preds) / len(preds)))
    else:
        # sc's generated tokens per sample, pooled over its cells: a sample's length does not depend on k.
        samples = [(p, r.cell.samples) for r in siblings for p in scored(r.predictions)]
        if not samples:
            return None, ""
        per_sample = sum(_per_asked(p, "completion_tokens") for p, _ in samples) / sum(k for _, k in samples)
        mine = sum(_per_asked(p, "completion_tokens") for p in preds) / len(preds)
        k = max(1, round(mine / per_sample)) if per_sample else 1
    want = Cell(graph, variant, k, run.cell.circular, "", shared)
    for other in siblings:
        if other.cell == want and other.status == "done":
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


def analyse(grid: Grid, out: Path) -> Ablation:
    """Everything the table and the HTML report show, from the cells' run directories."""
    from eval.core.stats import holm

    all_cells = cells(grid)
    baseline = baseline_cell(grid, all_cells)
    dirs = grid.model_dirs()
    runs = [load_cell(m, c, out / dirs[m] / c.slug) for m in grid.models for c in all_cells]
    notes = [f"{r.model} · {r.label} failed: {r.error}" for r in runs if r.status == "failed"]
    done = [r for r in runs if r.config]
    ids = done[0].config.original_ids if done else []
    if differing := [r.label for r in done if r.config.original_ids != ids]:
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
    rotated = (
        {r.id: r for q in questions.values() for r in rotations(q)} if any(r.config.circular for r in done) else {}
    )
    for run in done:  # a corrected answer file re-grades every cell
        asked = rotated if run.config.circular else questions
        run.predictions = {q: regrade(p, asked[q]) if q in asked else p for q, p in run.predictions.items()}
        if run.config.circular:  # one prediction per question: right when right under every rotation
            run.predictions = collapse_rotations(run.predictions, questions)

    # Comparisons, like the headline, are on single-answer questions (multi-answer ones have their own columns).
    single = {q for q, v in questions.items() if not v.multi}

    def headline(run: CellRun) -> dict[str, Prediction]:
        return {q: p for q, p in run.predictions.items() if q in single}

    rows: list[dict] = []
    for run in runs:
        row = _row(grid, run, questions)
        base = next((r for r in runs if r.model == run.model and r.cell == baseline), None)
        if run.config and base and base.config and run.cell != baseline:
            c = compare(headline(base), headline(run), resamples=grid.bootstrap_resamples, seed=grid.bootstrap_seed)
            row |= {"baseline": baseline.label, **c}
        for basis in MATCHED_BASES:
            control, wanted = matched_control(run, runs, basis) if run.config else (None, "")
            prefix = f"matched_{basis}_"
            row[prefix + "cell"] = wanted
            if control:
                c = compare(
                    headline(control), headline(run), resamples=grid.bootstrap_resamples, seed=grid.bootstrap_seed
                )
                row |= {prefix + "found": True, prefix + "accuracy": _accuracy(headline(control))}
                row |= {prefix + k: v for k, v in c.items()}
        # Answered letters against a uniform guess over the options shown (a first look at position bias).
        bias = answered_letters(headline(run).values(), questions)
        row |= {"letter_chi2": bias.statistic, "letter_p": bias.p, "letter_note": bias.why}
        rows.append(row)
    if unfinished := [
        f"{r['cell']} ({r['n']}/{len(single)})" for r in rows if r.get("n") is not None and r["n"] < len(single)
    ]:
        notes.append(f"unfinished or with errors: {', '.join(unfinished)}; run the grid again to resume them")
    families = [("holm_p", "mcnemar_p")] + [(f"matched_{b}_holm_p", f"matched_{b}_mcnemar_p") for b in MATCHED_BASES]
    for key, found in families:
        family = [r for r in rows if r.get(found) is not None]
        for r, adjusted in zip(family, holm([r[found] for r in family]), strict=True):
            r[key] = adjusted
    wanted = {r[f"matched_{b}_cell"] for r in rows for b in MATCHED_BASES if not r.get(f"matched_{b}_found")}
    if missing := sorted(wanted - {""}):
        notes.append(
            f"no compute-matched control for some cells: add {', '.join(missing)} to the grid "
            f"(the k values to `samples`) to compare each chain with {MATCHED_CONTROL} at equal model calls and at "
            "equal generated tokens"
        )
    if any(r.get("n") and not r["matched_tokens_cell"] and r["graph"] != MATCHED_CONTROL for r in rows):
        notes.append(
            f"the token-matched control needs {MATCHED_CONTROL}'s generated tokens per sample: add a {MATCHED_CONTROL} "
            "cell to the grid (any k), run it, and run the grid again to see which k matches each chain"
        )
    key = answer_key([v for q, v in questions.items() if q in single])
    return Ablation(grid, out, questions, runs, baseline, rows, notes, key)


def _accuracy(predictions: dict[str, Prediction]) -> float | None:
    preds = scored(predictions)
    return sum(p.correct for p in preds) / len(preds) if preds else None


def summary_of(run: CellRun, questions: dict[str, Question]):
    """eval.results.report's RunSummary of one cell on the grid's questions."""
    from eval.results.report import summarize

    preds = [p for p in run.predictions.values() if p.question_id in questions]
    return summarize(run.model, "", [run.cell.graph], None, list(questions.values()), preds)


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
        "circular": run.cell.circular,
        "critic": run.cell.critic,
        "status": run.status,
        "run_dir": str(run.out),
    }
    if not run.config or not questions:
        return row
    whole = summary_of(run, questions)
    s = whole.graphs[0]
    # The headline's questions: single-answer ones (multi-answer ones have their own columns).
    preds = [p for p in scored(run.predictions) if p.question_id in questions and not questions[p.question_id].multi]
    row |= {
        "n": s.overall.total,
        "correct": s.overall.correct,
        "accuracy": s.overall.accuracy,
        "ci_low": s.overall.ci_low,
        "ci_high": s.overall.ci_high,
        "unparsed": s.unparsed,
        "truncated": s.truncated,
        "at_budget": budget_text(s.budget),
        "errors": s.errors,
        "calls_per_q": sum(p.model_calls for p in preds) / len(preds) if preds else 0.0,
        "prompt_tokens_per_q": s.prompt_tokens_per_q,
        "evaluated_tokens_per_q": s.prompt_tokens_evaluated_per_q,
        "completion_tokens_per_q": s.completion_tokens_per_q,
        "reasoning_tokens_per_q": s.reasoning_tokens_per_q,
        "tokens_per_q": s.prompt_tokens_evaluated_per_q + s.completion_tokens_per_q,
        "seconds_per_q": s.seconds_per_q,
    }
    if whole.multi:
        m = whole.multi[0]
        row |= {"multi_n": m.exact.total, "multi_exact": m.exact.accuracy, "multi_partial": m.partial}
    if run.cell.circular:  # collapsed predictions name an option only when every rotation chose it
        row["consistent"] = sum(p.answer is not None for p in preds) / len(preds) if preds else None
    if flips := draft_flips(preds):
        row |= {f"first_to_final_{k}": v for k, v in flips.model_dump(exclude={"first"}).items()}
    return row


# -- output -----------------------------------------------------------------------------------

COLUMNS = [
    "model", "cell", "graph", "variant", "language", "persona", "retrieval", "samples", "circular", "consistent",
    "critic", "multi_n", "multi_exact", "multi_partial", "status",
    "n", "correct", "accuracy", "ci_low", "ci_high", "unparsed", "truncated", "at_budget", "errors",
    "calls_per_q", "prompt_tokens_per_q", "evaluated_tokens_per_q", "completion_tokens_per_q",
    "reasoning_tokens_per_q", "tokens_per_q",
    "seconds_per_q",
    "baseline", "diff", "diff_ci_low", "diff_ci_high", "mcnemar_p", "holm_p", "right_to_wrong", "wrong_to_right",
    *(f"matched_{b}_{k}" for b in MATCHED_BASES for k in (
        "cell", "found", "accuracy", "n", "diff", "diff_ci_low", "diff_ci_high", "mcnemar_p", "holm_p",
        "right_to_wrong", "wrong_to_right",
    )),
    "first_to_final_n", "first_to_final_unparsed", "first_to_final_cut", "first_to_final_changed",
    "first_to_final_right_to_wrong", "first_to_final_wrong_to_right", "letter_chi2", "letter_p", "letter_note",
    "run_dir",
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
        + (f" ({cut} cut at the budget)" if (cut := row.get("first_to_final_cut")) else "")
    )


def matched_cell(row: dict, basis: str) -> str:
    wanted = row.get(f"matched_{basis}_cell")
    if not wanted:
        return "–"
    if row.get(f"matched_{basis}_found"):
        return f"{wanted}: {_pct(row[f'matched_{basis}_accuracy'])}"
    return f"{wanted} (not in grid)"


def render_markdown(ablation: Ablation) -> str:
    g = ablation.grid
    base = ablation.baseline.label
    header = [
        "model", "cell", "accuracy [95% CI] (correct/n)", f"Δ vs {base}, points [95% bootstrap CI]", "McNemar p",
        "Holm p",
        "flips r→w / w→r", "sc at equal calls", "Δ vs it [95% CI]", "Holm p (calls)", "sc at equal generated tokens",
        "Δ vs it [95% CI]", "Holm p (tokens)", "unparsed", "truncated", "errors", "at the token budget",
        "first → final: changed (r→w / w→r); first unparsed", "letters vs uniform, χ² p", "calls/q", "tok/q", "s/q",
    ]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in ablation.rows:
        if r.get("n") is None:
            lines.append(f"| {r['model']} | {r['cell']} | {r['status']} |" + " – |" * (len(header) - 3))
            continue
        acc = f"{_pct(r['accuracy'])} [{_pct(r['ci_low'])}–{_pct(r['ci_high'])}] ({r['correct']}/{r['n']})"
        is_base = r.get("diff") is None
        cells_ = [
            r["model"], f"**{r['cell']}**" if is_base else r["cell"], acc,
            "baseline" if is_base else diff_cell(r), _p(r.get("mcnemar_p")), _p(r.get("holm_p")),
            "–" if is_base else f"{r['right_to_wrong']} / {r['wrong_to_right']}",
            *(x for b in MATCHED_BASES for x in (
                matched_cell(r, b), diff_cell(r, f"matched_{b}_"), _p(r.get(f"matched_{b}_holm_p")),
            )),
            r["unparsed"], r["truncated"], r["errors"], r["at_budget"], first_to_final_cell(r),
            letter_p_text(r["letter_p"], r["letter_note"]),
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
        "Accuracy with Wilson 95% intervals; unparsed and truncated answers (no option named: the output was cut at "
        "its token budget, or its thinking never ended) count as wrong, errors are left out. At the token budget: "
        f"per node, its outputs that stopped at their budget (⚠: more than {100 * BUDGET_WARNING:.0f}%, raise that "
        f"node's --*-tokens). Δ: paired "
        f"difference in accuracy points against {base} of the same model, with a paired percentile bootstrap 95% "
        f"interval ({g.bootstrap_resamples} resamples of the questions, seed {g.bootstrap_seed}); McNemar: exact "
        "two-sided test on the flips; Holm: adjusted for every comparison against the baseline in this grid (and, "
        "separately, for each kind of compute-matched comparison). Compute-matched sc: self-consistency (same "
        "model, retrieval and prompt variant) with k = the cell's model calls per question, and with k = the cell's "
        "generated tokens per question over sc's generated tokens per sample (measured on the grid's sc cells); "
        "Δ = cell minus it. "
        "First → final: of the chain's first proposals (reflect's draft, sc's first sample) that named an option, "
        "how many the final answer changed, and of those right→wrong / wrong→right; then the first proposals that "
        "named no option, counted in neither (and of those, the ones cut at their token budget). Letters: χ² test "
        "of the answered letters against a uniform guess over "
        "the options shown (a small p: some positions are favoured, or the key is unbalanced and the cell is "
        "accurate); no p where a letter's expected count is below 5, where the option shuffle of "
        "`python -m eval.position_bias` measures position bias instead. "
        "tok/q: prompt tokens actually evaluated plus generated tokens, per question.",
    ]
    if any(r.get("circular") for r in ablation.rows):
        parts.append(
            "Circular cells ask every question under every rotation of its options (OpenCompass's CircularEval): "
            "their accuracy is circular accuracy (right under every rotation), Δ is paired with the baseline's "
            "standard accuracy on the same questions, their costs sum the rotations, and `consistent` in the CSV is "
            "the share of questions whose chosen option was the same under every rotation."
        )
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
    path = out / f"{ABLATION}.json"
    try:
        grid = Grid.model_validate(json.loads(path.read_text(encoding="utf-8"))["grid"])
    except (ValueError, KeyError, TypeError) as e:  # ValidationError and JSONDecodeError are ValueErrors
        raise GridError(f"{path} is not an ablation this version can read: {one_line(e)}") from None
    return analyse(grid, out)
