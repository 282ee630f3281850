"""Costs computed once (issue 26, item 2): every model call a question causes is in its calls, tokens and seconds,
all three counted from its trace, and a --circular question costs all its rotations. Real tiny model, in-process."""

from __future__ import annotations

import json

import pytest
from conftest import TINY

from eval.api import RunSpec, evaluate
from eval.core.store import read_predictions
from eval.data import BUNDLED, load_questions, select


def _summary(out) -> dict:
    return json.loads((out / "summary.json").read_text(encoding="utf-8"))["graphs"][0]


def test_pride_charges_its_calibration_to_the_questions_it_answers(tmp_path, tiny_backend):
    """The calibration rotations run before the graph: their seconds were left out (5.0 calls/q at 0.00 s/q)."""
    questions = select(load_questions(BUNDLED), limit=3)
    spec = RunSpec(graph="pride", baseline="none", model=TINY, calibration=2, out=tmp_path / "run", n_ctx=2048)
    result = evaluate(spec, questions=questions, backend=tiny_backend)
    predictions = list(read_predictions(result.out).values())
    assert sorted(p.model_calls for p in predictions) == [1, 5, 5]  # two calibrated (every rotation), one pass
    for p in predictions:
        assert p.model_calls == len(p.trace) and p.seconds > 0
        assert p.seconds == pytest.approx(sum(s.seconds for s in p.trace))
        assert p.prompt_tokens == sum(s.prompt_tokens for s in p.trace)
    calibrated = [p for p in predictions if p.model_calls == 5]
    assert all(s.node == "calibrate" for p in calibrated for s in p.trace)
    seconds = sum(p.seconds for p in predictions) / len(predictions)
    assert result.summary.graphs[0].seconds_per_q == pytest.approx(seconds)
    assert _summary(result.out)["seconds_per_q"] == pytest.approx(seconds)
    assert f"| {seconds:.2f} |" in (result.out / "report.md").read_text(encoding="utf-8")


def test_a_circular_question_costs_every_rotation(tmp_path, tiny_backend):
    """The headline is the original order's answer, but the question was asked under every rotation: its calls,
    tokens and seconds are theirs together (report.md and summary.json showed one rotation's)."""
    questions = select(load_questions(BUNDLED), limit=2)
    rotations = len(questions[0].options)
    assert all(len(q.options) == rotations for q in questions)
    spec = RunSpec(graph="single", baseline="none", model=TINY, out=tmp_path / "plain", n_ctx=2048)
    plain = evaluate(spec, questions=questions, backend=tiny_backend).summary.graphs[0]
    spec = spec.model_copy(update={"out": tmp_path / "circular", "circular": True})
    result = evaluate(spec, questions=questions, backend=tiny_backend)
    circular = result.summary.graphs[0]
    assert plain.calls_per_q == 1 and circular.calls_per_q == rotations * plain.calls_per_q
    predictions = read_predictions(result.out).values()
    assert len(predictions) == rotations * len(questions)
    assert circular.seconds_per_q == pytest.approx(sum(p.seconds for p in predictions) / len(questions))
    assert circular.prompt_tokens_per_q == sum(p.prompt_tokens for p in predictions) / len(questions)
    assert _summary(result.out)["calls_per_q"] == rotations
    assert f"| {rotations:.1f} |" in (result.out / "report.md").read_text(encoding="utf-8")
    # The accuracy is still the original order's alone.
    original = [p for p in predictions if "@rot" not in p.question_id]
    assert circular.overall.correct == sum(p.correct for p in original)
