"""An ablation grid's analysis: reading the cells' run directories, and the table's typed rows (the grid itself, its
cells and its baseline cell are eval.plans.grid's; python -m eval.ablate runs the cells; eval.render.ablation_table
writes the rows as Markdown, CSV and JSON, and python -m eval.html_report draws the same rows).

Every cell is compared, paired, against the baseline cell of its model: accuracy difference with a paired bootstrap
95% interval, exact McNemar p, Holm-adjusted across the grid, flips; and beside each chain, the compute-matched
controls: `sc` with k = the chain's model calls per question, and `sc` with the k whose generated tokens come
closest to the chain's, when the grid holds those cells.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, Field

from agents.prompts import load_prompts
from eval.core.schema import (
    AnswerKey,
    Comparison,
    GraphSummary,
    MultiAnswers,
    Prediction,
    Question,
    RunConfig,
    RunSummary,
)
from eval.core.store import graph_predictions
from eval.plans.grid import MATCHED_CONTROL, Cell, Grid, GridError, baseline_cell, cells
from eval.plans.plan import other_model, read_run, saved_plan
from eval.results.analysis import (
    Pairing,
    accuracy,
    answer_key,
    answered_letters,
    budget_text,
    compare_family,
    letter_p_text,
)
from eval.results.graded import GradedRun, grade
from graphs import GraphSpec

_SC = GraphSpec.parse(MATCHED_CONTROL).strategy.options  # the matched control's options
ABLATION = "ablation"


def recorded(config: RunConfig, strategy: str, setting: str):
    """A cell setting as its run's manifest recorded it: the prompt variant, --circular, or one of the strategy's
    options."""
    if setting in ("prompt_variant", "circular"):
        return getattr(config, setting)
    if setting == "critic_model":
        return config.roles.get("critic", {}).get("spec")
    return config.options.get(strategy, {}).get(setting)


# -- analysis ---------------------------------------------------------------------------------


@dataclass
class CellRun:
    model: str
    cell: Cell
    out: Path
    status: str = "missing"  # done, failed, missing
    error: str = ""  # why it failed
    config: RunConfig | None = None
    # As read; once analysed, graded: what the table counts (eval.results.graded.GradedRun.counted).
    predictions: dict[str, Prediction] = field(default_factory=dict)
    graded: GradedRun | None = None

    @property
    def label(self) -> str:
        return self.cell.label

    @property
    def headline(self) -> dict[str, Prediction]:
        """The predictions comparisons count: single-answer questions (multi-answer ones have their own columns)."""
        return self.graded.headline(self.config.graphs[0]) if self.graded and self.config else {}


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
        samples = [(p, n) for r in siblings if (n := r.cell.samples) for p in scored(r.predictions)]  # sc's have k
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


class Matched(BaseModel):
    """A cell against its compute-matched control (sc with k matched to the cell's calls or generated tokens)."""

    cell: str = ""  # the control's label; "" when none can be named yet (or the cell is sc itself)
    accuracy: float | None = None  # the control's, when the grid holds it
    comparison: Comparison | None = None  # the cell against it, paired; Holm over the grid's cells of one basis


class Row(BaseModel):
    """One (model, cell) of the table: what it is, its headline, and its comparisons."""

    model: str
    cell: str  # its label
    graph: str  # the strategy
    variant: str = ""
    language: str = ""
    persona: str | bool = ""  # as the prompt file says: a persona, or whether the variant has one
    retrieval: bool = False
    samples: int | None = None
    circular: bool = False
    critic: str = ""
    status: str = "missing"
    run_dir: str = ""
    # The cell's single-answer headline (accuracy, unparsed, truncated, errors, budget hits, costs per question,
    # first proposal -> final); None until it has results.
    summary: GraphSummary | None = None
    multi: MultiAnswers | None = None  # its multi-answer questions, scored apart
    consistent: float | None = None  # circular cells: the share of questions answered alike under every rotation
    baseline: str = ""  # the baseline cell's label, where this cell is compared with it
    versus: Comparison | None = None  # against the baseline cell of its model, paired; Holm over the grid
    matched: dict[str, Matched] = Field(default_factory=dict)  # by basis: MATCHED_BASES
    letter_chi2: float | None = None  # the answered letters against a uniform guess over the options shown
    letter_p: float | None = None
    letter_note: str = ""

    @property
    def letters(self) -> str:
        return letter_p_text(self.letter_p, self.letter_note)

    @property
    def at_budget(self) -> str:
        return budget_text(self.summary.budget) if self.summary else "–"


@dataclass
class Ablation:
    grid: Grid
    out: Path
    questions: dict[str, Question]  # the questions every cell ran on
    runs: list[CellRun]
    baseline: Cell
    rows: list[Row]
    notes: list[str]
    key: AnswerKey


def analyse(grid: Grid, out: Path) -> Ablation:
    """Everything the table and the HTML report show, from the cells' run directories."""
    all_cells = cells(grid)
    baseline = baseline_cell(grid, all_cells)
    dirs = grid.model_dirs()
    runs = [load_cell(m, c, out / dirs[m] / c.slug) for m in grid.models for c in all_cells]
    notes = [f"{r.model} · {r.label} failed: {r.error}" for r in runs if r.status == "failed"]
    done = [(r, config) for r in runs if (config := r.config)]
    ids = done[0][1].original_ids if done else []
    if differing := [r.label for r, config in done if config.original_ids != ids]:
        notes.append(
            f"cells {', '.join(differing)} ran on other questions than {done[0][0].label}; "
            "comparisons use the questions both answered"
        )
    every = grid.questions() if done else {}
    questions = {q: every[q] for q in ids if q in every}
    if len(questions) < len(ids):
        notes.append(
            f"{len(ids) - len(questions)} question ids of the runs are not in the dataset; "
            "they are left out of the breakdowns"
        )
    # A corrected answer file re-grades every cell; a circular one counts right under every rotation.
    for run, config in done:
        run.graded = grade(run.predictions.values(), questions, config.graphs, circular=config.circular)
        run.predictions = run.graded.counted(config.graphs[0])

    rows = [_row(run, questions) for run in runs]
    rs, seed = grid.bootstrap_resamples, grid.bootstrap_seed
    # Each family Holm-adjusted on its own: every cell against its baseline, and each basis of matched controls.
    versus = [
        (row, run, base)
        for row, run in zip(rows, runs, strict=True)
        if run.config
        and run.cell != baseline
        and (base := next((r for r in runs if r.model == run.model and r.cell == baseline), None))
        and base.config
    ]
    for (row, _, _), c in zip(versus, _family(versus, rs, seed), strict=True):
        row.baseline, row.versus = baseline.label, c
    for basis in MATCHED_BASES:
        controls = []
        for row, run in zip(rows, runs, strict=True):
            # The baseline has none: its comparison with sc at its cost is that sc cell's own row against it.
            control, wanted = matched_control(run, runs, basis) if run.config and run.cell != baseline else (None, "")
            row.matched[basis] = Matched(cell=wanted, accuracy=control and accuracy(scored(control.headline)).accuracy)
            if control:
                controls.append((row, run, control))
        for (row, _, _), c in zip(controls, _family(controls, rs, seed), strict=True):
            row.matched[basis].comparison = c
    single = [q for q, v in questions.items() if not v.multi]
    if unfinished := [
        f"{r.cell} ({r.summary.overall.total}/{len(single)})"
        for r in rows
        if r.summary and r.summary.overall.total < len(single)
    ]:
        notes.append(f"unfinished or with errors: {', '.join(unfinished)}; run the grid again to resume them")
    if missing := sorted({m.cell for r in rows for m in r.matched.values() if m.comparison is None} - {""}):
        notes.append(
            f"no compute-matched control for some cells: add {', '.join(missing)} to the grid "
            f"(the k values to `samples`) to compare each chain with {MATCHED_CONTROL} at equal model calls and at "
            "equal generated tokens"
        )
    if any(
        r.summary and not r.matched["tokens"].cell and r.graph != MATCHED_CONTROL and r.cell != baseline.label
        for r in rows
    ):
        notes.append(
            f"the token-matched control needs {MATCHED_CONTROL}'s generated tokens per sample: add a {MATCHED_CONTROL} "
            "cell to the grid (any k), run it, and run the grid again to see which k matches each chain"
        )
    key = answer_key([questions[q] for q in single])
    return Ablation(grid, out, questions, runs, baseline, rows, notes, key)


def _family(found: list[tuple[Row, CellRun, CellRun]], resamples: int, seed: int) -> list[Comparison]:
    """(row, cell, the cell it is compared with) as one family of paired comparisons on single-answer questions."""
    return compare_family(
        (Pairing(run.label, other.label, run.headline, other.headline) for _, run, other in found),
        resamples=resamples,
        seed=seed,
    )


def summary_of(run: CellRun, questions: dict[str, Question]) -> RunSummary:
    """eval.results.report's RunSummary of one cell (as the table counts it) on the grid's questions."""
    from eval.results.report import summarize

    preds = [p for p in run.predictions.values() if p.question_id in questions]
    return summarize(run.model, "", [run.cell.graph], None, list(questions.values()), preds)


def _row(run: CellRun, questions: dict[str, Question]) -> Row:
    variant = load_prompts(run.cell.base, run.cell.variant) if run.cell.variant else {}
    row = Row(
        model=run.model,
        cell=run.label,
        graph=run.cell.base,
        variant=run.cell.variant,
        language=variant.get("language", ""),
        persona=variant.get("persona", ""),
        retrieval=run.cell.rag,
        samples=run.cell.samples,
        circular=run.cell.circular,
        critic=run.cell.critic,
        status=run.status,
        run_dir=str(run.out),
    )
    if not run.config or not questions:
        return row
    whole = summary_of(run, questions)
    row.summary = whole.graphs[0]
    row.multi = whole.multi[0] if whole.multi else None
    answered = scored(run.headline)
    if run.cell.circular:  # collapsed predictions name an option only when every rotation chose it
        row.consistent = sum(p.answer is not None for p in answered) / len(answered) if answered else None
    # Answered letters against a uniform guess over the options shown (a first look at position bias).
    bias = answered_letters(run.headline.values(), questions)
    row.letter_chi2, row.letter_p, row.letter_note = bias.statistic, bias.p, bias.why
    return row


def load_ablation(out: Path) -> Ablation:
    """Re-read an ablation directory (for the HTML report): its grid from ablation.json, cells from disk."""
    return analyse(saved_plan(out / f"{ABLATION}.json", "grid", Grid, GridError, "an ablation"), out)
