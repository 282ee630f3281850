"""What the HTML page of a run or an ablation shows, read from its directory: its columns (a run's graphs, an
ablation's cells) with their graded predictions and summaries, the paired comparisons and the headline rows, all from
eval.results (graded, report, ablation). eval.render.run_page draws it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from eval.core.schema import (
    LETTERS,
    Comparison,
    GraphSummary,
    MultiQuestion,
    Prediction,
    Question,
    RunConfig,
    RunSummary,
)
from eval.render.figures import ReportError
from eval.render.fmt import model_text
from eval.results.analysis import answered_letters, budget_text, key_text, letter_p_text
from eval.results.graded import grade

STAND_IN = "(question text unavailable)"  # the stem of a question the dataset could not supply: its options are guessed


@dataclass
class Column:
    """One graph of a run, or one cell of an ablation: what the page shows side by side."""

    key: str
    title: str
    graph: str  # registry name, +rag included
    model: str
    config: RunConfig
    predictions: dict[str, Prediction]  # question id -> final prediction, graded
    headline: dict[str, Prediction]  # of those, the ones the figures count (eval.results.graded.GradedRun.headline)
    summary: GraphSummary
    group: str = ""  # colour group in the figures (the model, in an ablation)


@dataclass
class Page:
    """What the page shows; eval/render/templates/report.html.j2 draws it."""

    title: str
    kind: str  # "run" or "ablation": which lines under the title and which headline table
    meta: dict  # the facts for the lines under the title (eval/render/templates/_meta.html.j2)
    questions: dict[str, Question]
    columns: list[Column]
    # Paired against the baseline, (column title, baseline title, comparison): as report.md or the ablation table has
    # them, Holm-adjusted over the same family.
    comparisons: list[tuple[str, str, Comparison]]
    # The headline table's rows: a run's, one per column ({title, summary, letters, budget: its outputs at the token
    # budget}); an ablation's, eval.results.ablation.Row (one per model x cell).
    rows: list = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # A run's RunSummary, for the sections beyond the headline: circular evaluation, multi-answer questions.
    summary: RunSummary | None = None


# -- loading ----------------------------------------------------------------------------------


def read_run(run_dir: Path) -> tuple[RunConfig, dict[tuple[str, str], Prediction]]:
    """The manifest and the final prediction per (graph, question), read through eval.core.store.

    Read-only: a run still in progress is read as far as its finished lines go.
    """
    from eval.core.store import RunDirError, read_manifest, read_predictions

    try:
        return read_manifest(run_dir), read_predictions(run_dir)
    except RunDirError as e:
        raise ReportError(str(e)) from None


def run_questions(
    config: RunConfig, predictions: Sequence[Prediction], data: Path | None, fmt: str
) -> tuple[dict[str, Question], list[str]]:
    """The run's questions from its dataset; stand-ins (no text, specialty 'other') when it cannot be read."""
    from eval.data import DataError, load_for_config, load_questions, questions_sha256

    notes = []
    source = data or Path(config.data)
    try:
        if data is None:  # read exactly as the run did: its format, key, field map, mapping and encoding
            run_order = load_for_config(config).questions
            loaded = {q.id: q for q in run_order}
            if questions_sha256(run_order) != config.data_sha256:
                notes.append(f"{source} changed since the run; question texts shown are today's")
        else:
            # Every kind: the run's question ids say which of them it answered.
            loaded = {q.id: q for q in load_questions(source, fmt, multi="include")}
    except (DataError, OSError, ValueError) as e:
        loaded = {}
        notes.append(
            f"could not read the questions from {source} ({e}); pass --data/--format to show their text and breakdowns"
        )
    questions: dict[str, Question] = {}
    by_id = {p.question_id: p for p in predictions}
    for qid in config.question_ids:
        if qid in loaded:
            questions[qid] = loaded[qid]
        elif qid in by_id:
            gold = by_id[qid].gold
            shown = max((LETTERS.index(x) + 1 for x in gold if x in LETTERS), default=len(LETTERS))
            kind = MultiQuestion if len(gold) > 1 else Question
            questions[qid] = kind(
                id=qid, stem=STAND_IN, options={k: "?" for k in LETTERS[: max(shown, 2)]}, answer=gold
            )
    return questions, notes


def load_run_page(run_dir: Path, data: Path | None = None, fmt: str = "auto") -> Page:
    from eval.results.report import batching_note, summarize_run

    config, found = read_run(run_dir)
    questions, notes = run_questions(config, list(found.values()), data, fmt)
    graphs = config.graphs
    baseline = graphs[1] if len(graphs) > 1 else None
    # Under --circular the headline and the question list are the original order's; the rotations feed the
    # circular table.
    questions = {q: questions[q] for q in config.original_ids if q in questions}
    circular = config.circular and not any(q.stem == STAND_IN for q in questions.values())
    if config.circular and not circular:
        notes.append("the circular table needs the questions' options, which could not be read: it is left out")
    run = grade(found.values(), questions, graphs, circular=circular, config=config)
    summary = summarize_run(Path(config.model).name, config.data, run, baseline, engine=config.engine)
    columns = [
        Column(
            key=g.graph,
            title=g.graph,
            graph=g.graph,
            model=Path(config.model).name,
            config=config,
            predictions=run.graphs[g.graph].original,
            headline=run.headline(g.graph, circled=False),
            summary=g,
        )
        for g in summary.graphs
    ]
    comparisons = [(c.graph, c.baseline, c) for c in summary.comparisons]
    model = Path(config.model).name + (f" ({model_text(config.model_info)})" if config.model_info else "")
    meta = {
        "model": model,
        "config": config,
        # Each strategy's options as the manifest recorded them (none for a run made before they were recorded).
        "options": "; ".join(
            f"{name} {', '.join(f'{k} {v}' for k, v in values.items())}"
            for name, values in config.options.items()
            if values
        ),
        "key": key_text(summary.key) if summary.key else "",  # as report.md: a summary without a key has no line
    }
    if summary.batched:
        notes.append(batching_note(summary.batched, summary.scored * len(summary.graphs)))
    for c in columns:
        if (finished := sum(p.parse_status != "error" for p in c.predictions.values())) < len(questions):
            notes.append(
                f"{c.title}: {finished} of {len(questions)} questions finished"
                " (the run is incomplete or has errors; rerun it to resume)"
            )
    rows = [
        {
            "title": c.title,
            "summary": c.summary,
            "letters": _letter_p(c, questions),
            "budget": budget_text(c.summary.budget),
        }
        for c in columns
    ]
    page = Page(" vs ".join(graphs), "run", meta, questions, columns, comparisons, rows, notes)
    page.summary = summary
    return page


def load_ablation_page(out: Path) -> Page:
    from eval.results.ablation import load_ablation

    ablation = load_ablation(out)
    several = len(ablation.grid.models) > 1
    names = ablation.grid.model_dirs()  # unique, as the cells' directories are named

    def title(model: str, cell: str) -> str:
        return f"{names[model]} · {cell}" if several else cell

    columns = [
        Column(
            title(row.model, row.cell),
            title(row.model, row.cell),
            run.cell.graph,
            run.model,
            run.config,
            run.predictions,
            run.headline,
            row.summary,
            group=names[run.model],
        )
        for run, row in zip(ablation.runs, ablation.rows, strict=True)
        if run.config and row.summary
    ]
    comparisons = [
        (title(row.model, row.cell), title(row.model, row.baseline), row.versus) for row in ablation.rows if row.versus
    ]
    meta = {
        "grid": ablation.grid,
        "baseline": ablation.baseline.label,
        "several": several,  # models: each headline row names its model
        "key": key_text(ablation.key),
    }
    return Page(
        f"Ablation: {out.name}",
        "ablation",
        meta,
        ablation.questions,
        columns,
        comparisons,
        ablation.rows,
        list(ablation.notes),
    )


def _letter_p(column: Column, questions: dict[str, Question]) -> str:
    """The letter test over the questions whose options are known (a stand-in's are guessed)."""
    known = {qid: q for qid, q in questions.items() if q.stem != STAND_IN}
    bias = answered_letters(column.headline.values(), known)
    return letter_p_text(bias.p, bias.why)
