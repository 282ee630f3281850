"""--circular: every rotation of the options, mapped back to the original letters, scored as CircularEval does."""

from __future__ import annotations

import json

import pytest
from conftest import TINY
from fakes import FakeBackend

from agents.backends.base import Completion
from eval.api import RunSpec, evaluate
from eval.core.schema import Prediction, Question, rotation_of
from eval.core.shuffle import rotations, unrotated_letter
from eval.data import BUNDLED, load_questions, select
from eval.render.run_page import render
from eval.results.analysis import circular_summary, collapse_rotations
from eval.results.pages import load_run_page

Q = Question(id="q-1", stem="题干", options={"A": "甲", "B": "乙", "C": "丙", "D": "丁"}, answer="C")


def test_rotations_move_every_option_and_the_key_with_it():
    turned = rotations(Q)
    assert [q.id for q in turned] == ["q-1", "q-1@rot1", "q-1@rot2", "q-1@rot3"]
    assert turned[0] is Q
    # Rotation 1 shows the original B, C, D, A at A, B, C, D; the key 丙 moves from C to B.
    assert list(turned[1].options.values()) == ["乙", "丙", "丁", "甲"] and turned[1].answer == "B"
    # Every option visits every position once, and the key always names 丙.
    for position in "ABCD":
        assert sorted(q.options[position] for q in turned) == sorted(Q.options.values())
    assert all(q.options[q.answer] == "丙" for q in turned)
    # Back to the original letters: whatever a rotation chose names the same content in the original question.
    for r, q in enumerate(turned):
        for letter, text in q.options.items():
            assert Q.options[unrotated_letter(letter, 4, r)] == text
    assert rotation_of("q-1@rot3") == ("q-1", 3) and rotation_of("q-1") == ("q-1", 0)
    assert rotation_of("odd@rotten") == ("odd@rotten", 0)


def _answers(by_rotation: list[str | None], q: Question = Q, graph: str = "single") -> dict[str, Prediction]:
    """Predictions of `graph` for q's rotations, answering the letters given (None: named no option)."""
    out = {}
    for r, (turned, answer) in enumerate(zip(rotations(q), by_rotation, strict=True)):
        out[turned.id] = Prediction(
            question_id=turned.id,
            graph=graph,
            answer=answer,
            gold=turned.answer,
            correct=answer == turned.answer,
            parse_status="ok" if answer else "unparsed",
            answer_method="next_token",
            model_calls=1,
            completion_tokens=r,
        )
    return out


def test_collapse_scores_right_only_under_every_rotation():
    # Always the content 丙 (right), always position B (position bias), 丙 three times then 甲.
    faithful = _answers(["C", "B", "A", "D"])
    positional = _answers(["B", "B", "B", "B"])
    wavering = _answers(["C", "B", "A", "A"])
    questions = {Q.id: Q}
    right = collapse_rotations(faithful, questions)["q-1"]
    assert right.correct and right.answer == "C" and right.extras["rotations"] == ["C", "C", "C", "C"]
    assert right.model_calls == 4 and right.completion_tokens == 0 + 1 + 2 + 3  # the rotations' costs summed
    biased = collapse_rotations(positional, questions)["q-1"]
    assert not biased.correct and biased.answer is None and biased.extras["rotations"] == ["B", "C", "D", "A"]
    mostly = collapse_rotations(wavering, questions)["q-1"]
    assert not mostly.correct and mostly.extras["rotations"] == ["C", "C", "C", "D"]
    # A question is left out until every rotation has an answer without an error.
    assert collapse_rotations({k: v for k, v in faithful.items() if k != "q-1@rot2"}, questions) == {}
    failed = faithful | {"q-1@rot2": faithful["q-1@rot2"].model_copy(update={"parse_status": "error"})}
    assert collapse_rotations(failed, questions) == {}


def test_circular_summary_counts_as_circular_eval():
    """Four questions: right every time; position-biased (right once); right three times of four; unparsed once."""
    qs = [Q.model_copy(update={"id": f"q-{i}"}) for i in range(4)]
    predictions = (
        _answers(["C", "B", "A", "D"], qs[0])
        | _answers(["C", "C", "C", "C"], qs[1])  # position C: right in the original order only
        | _answers(["C", "B", "A", "A"], qs[2])
        | _answers(["C", None, "A", "D"], qs[3])
    )
    ids = [q.id for q in qs]
    c = circular_summary("single", predictions, {q.id: q for q in qs}, ids)
    assert c.n == 4 and c.original.correct == 4 and c.circular.correct == 1  # only q-0
    assert c.every_rotation == pytest.approx((4 + 1 + 3 + 3) / 16)
    assert c.consistent.correct == 1  # q-0; q-3's unparsed rotation is not a choice
    # Agreement: 4/4, 1/4 (each rotation a different content), 3/4, 3/4 (the unparsed rotation agrees with none).
    assert c.agreement == pytest.approx((1 + 0.25 + 0.75 + 0.75) / 4)
    silent = circular_summary("single", _answers([None] * 4, qs[0]), {qs[0].id: qs[0]}, [qs[0].id])
    assert silent.agreement == 0 and silent.consistent.correct == 0
    assert (c.versus_original.right_to_wrong, c.versus_original.wrong_to_right) == (3, 0)
    assert c.versus_original.difference == pytest.approx(-0.75)


class ContentBackend(FakeBackend):
    """Scores the option whose text is the question's key highest, wherever it stands: no position bias."""

    def __init__(self, key_texts: set[str]):
        super().__init__()
        self.key_texts = key_texts

    def score_next(self, messages, candidates, *, assistant_prefix=""):
        self.calls.append(("score", list(messages)))
        lines = messages[-1].content.splitlines()
        shown = {line[0]: line[3:] for line in lines if line[:1] in candidates and line[1:3] == ". "}
        scores = {c: 0.0 if shown.get(c) in self.key_texts else -5.0 for c in candidates}
        return Completion(max(scores, key=scores.__getitem__), 10, 2, 0, 0.01, scores=scores)


def test_a_circular_run_scores_content_not_positions(tmp_path):
    questions = select(load_questions(BUNDLED), limit=4)
    options = sum(len(q.options) for q in questions)
    faithful = ContentBackend({q.options[q.answer] for q in questions})
    result = evaluate(
        RunSpec(graph="single", baseline="none", circular=True, out=tmp_path / "faithful"),
        questions=questions,
        backend=faithful,
    )
    assert len(faithful.calls) == options  # every rotation asked once
    (c,) = result.summary.circular
    assert (c.n, c.original.correct, c.circular.correct, c.consistent.correct) == (4, 4, 4, 4)
    assert result.summary.graphs[0].overall.total == 4  # the headline is the original order's
    assert "## Circular evaluation" in result.markdown
    manifest = json.loads((result.out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["circular"] and len(manifest["question_ids"]) == options
    page = load_run_page(result.out)  # the HTML report: the original order's headline and the circular table
    assert len(page.questions) == 4 and page.summary.circular[0].circular.correct == 4
    assert "Circular evaluation: every rotation of the options" in render(page)

    biased = evaluate(
        RunSpec(graph="single", baseline="none", circular=True, out=tmp_path / "biased"),
        questions=questions,
        backend=FakeBackend(),  # always B
    )
    (c,) = biased.summary.circular
    assert c.circular.correct == 0 and c.consistent.correct == 0 and c.agreement < 0.5
    assert c.original.correct == sum(q.answer == "B" for q in questions)


def test_circular_run_with_a_baseline_pairs_circular_accuracies(tmp_path, tiny_backend):
    """A real tiny model: single and cot under every rotation, compared paired on circular accuracy; resumable."""
    questions = select(load_questions(BUNDLED), limit=2)
    spec = RunSpec(
        graph="cot", baseline="single", circular=True, out=tmp_path / "run", draft_tokens=8, model=TINY, n_ctx=2048
    )
    result = evaluate(spec, questions=questions, backend=tiny_backend)
    assert [c.graph for c in result.summary.circular] == ["cot", "single"]
    (comparison,) = result.summary.circular_comparisons
    assert comparison.n == 2 and comparison.holm_p is not None
    lines = (result.out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2 * sum(len(q.options) for q in questions)
    again = evaluate(spec, questions=questions, backend=tiny_backend)  # everything done: nothing is re-asked
    assert (result.out / "predictions.jsonl").read_text(encoding="utf-8").splitlines() == lines
    assert again.summary.circular == result.summary.circular
