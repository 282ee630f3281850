"""A run's predictions as every report counts them, read in one place.

report.md and summary.json, the ablation table, the leaderboard, the HTML pages and position_bias all take a run
through `grade` (or `read_graded`, from its directory): every prediction graded against the current key (a
corrected answer file changes the numbers, not the run), a --circular run's rotations collapsed to one prediction
per question, and the headline's questions, the single-answer ones, told apart from multi-answer ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from eval.core.schema import Prediction, Question, RunConfig
from eval.core.shuffle import rotations
from eval.results.analysis import charge_rotations, collapse_rotations, regrade


@dataclass
class GradedGraph:
    """One graph's final predictions, graded against the key."""

    original: dict[str, Prediction]  # by question id, in the options' original order
    # --circular: every rotation's, by rotated id (the original order's among them), and one per original question,
    # right when right under every rotation (eval.results.analysis.collapse_rotations); both empty otherwise.
    rotations: dict[str, Prediction] = field(default_factory=dict)
    circled: dict[str, Prediction] = field(default_factory=dict)


@dataclass
class GradedRun:
    questions: dict[str, Question]  # the originals graded against, by id, in the run's order
    graphs: dict[str, GradedGraph]
    circular: bool = False
    config: RunConfig | None = None
    changed: bool = False  # the dataset, reloaded as the run read it, is not what the run read (its sha256)

    @property
    def single(self) -> dict[str, Question]:
        """The headline's questions: multi-answer ones are scored apart."""
        return {q: v for q, v in self.questions.items() if not v.multi}

    def counted(self, graph: str) -> dict[str, Prediction]:
        """What a table over many runs counts for `graph`: under --circular, one prediction per question that is
        right only when right under every rotation; otherwise the predictions as made."""
        g = self.graphs[graph]
        return g.circled if self.circular else g.original

    def headline(self, graph: str, *, circled: bool = True) -> dict[str, Prediction]:
        """`graph`'s predictions on single-answer questions, errors included (each report says what it does with
        them); `circled=False`: a --circular run's original order instead of its collapsed rotations."""
        found = self.counted(graph) if circled else self.graphs[graph].original
        return {q: p for q, p in found.items() if q in self.questions and not self.questions[q].multi}


def grade(
    predictions: Iterable[Prediction],
    questions: Mapping[str, Question],
    graphs: Sequence[str],
    *,
    circular: bool = False,
    config: RunConfig | None = None,
) -> GradedRun:
    """`predictions` (one per graph and question asked) graded against `questions` (the originals by id; under
    `circular`, each asked under every rotation of its options). Predictions of other graphs or questions are left
    out."""
    asked = {r.id: r for q in questions.values() for r in rotations(q)} if circular else questions
    found: dict[str, dict[str, Prediction]] = {g: {} for g in graphs}
    for p in predictions:
        if p.graph in found and p.question_id in asked:
            found[p.graph][p.question_id] = regrade(p, asked[p.question_id])
    graded = {
        g: GradedGraph(
            # Under --circular each costs every rotation of its question (eval.results.analysis.charge_rotations).
            original={q: p for q, p in (charge_rotations(preds) if circular else preds).items() if q in questions},
            rotations=preds if circular else {},
            circled=collapse_rotations(preds, questions) if circular else {},
        )
        for g, preds in found.items()
    }
    return GradedRun(dict(questions), graded, circular, config)


def read_graded(
    run_dir: Path,
    questions: Mapping[str, Question] | None = None,
    *,
    config: RunConfig | None = None,
    graphs: Sequence[str] | None = None,
) -> GradedRun:
    """A run directory's final predictions, graded (`grade`). `questions`: the originals by id to grade against
    (default: the run's own, reloaded exactly as it read them; `changed` then says whether they still are what it
    read). `config`: its manifest, when the caller has read it. Read-only: a run in progress is read as far as its
    finished lines go. RunDirError for an unreadable directory, DataError for questions that cannot be reloaded."""
    from eval.core.store import read_manifest, read_predictions

    config = config or read_manifest(run_dir)
    changed = False
    if questions is None:
        from eval.data import load_for_config, questions_sha256

        loaded = load_for_config(config).questions
        changed = questions_sha256(loaded) != config.data_sha256
        asked = {q.id: q for q in loaded}
        questions = {q: asked[q] for q in config.original_ids}
    run = grade(
        read_predictions(run_dir).values(),
        questions,
        graphs or config.graphs,
        circular=config.circular,
        config=config,
    )
    run.changed = changed
    return run
