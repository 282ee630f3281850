"""pride: the position prior estimated from rotated calibration questions, removed from single-shot scores."""

from __future__ import annotations

import json
import math

import pytest
from conftest import TINY
from fakes import FakeBackend

from agents.backends.base import Completion
from agents.nodes.debias import log_probs, position_prior
from eval.api import RunSpec, evaluate
from eval.data import BUNDLED, load_questions, select

PRIOR = [0.1, 0.6, 0.15, 0.15]  # a model that favours position B


def _observed(content: list[float], r: int) -> list[float]:
    """log P(position i) under rotation r: prior(i) x content preference of the option shown there, normalised."""
    n = len(content)
    weights = [PRIOR[i] * content[(i + r) % n] for i in range(n)]
    return [math.log(w / sum(weights)) for w in weights]


def test_the_prior_is_recovered_exactly_whatever_the_content_preference():
    for content in ([0.25] * 4, [0.7, 0.1, 0.1, 0.1], [0.05, 0.05, 0.1, 0.8]):
        estimated = position_prior([_observed(content, r) for r in range(4)])
        assert [math.exp(x) for x in estimated] == pytest.approx(PRIOR)
    # Letters a server left out of its top log-probabilities count as nearly impossible, and the rest renormalise.
    assert [math.exp(x) for x in log_probs({"A": math.log(0.2), "B": math.log(0.2)}, "ABC")] == pytest.approx(
        [0.5, 0.5, 0.0], abs=1e-9
    )


class BiasedReader(FakeBackend):
    """Knows each question's answer text (content weight 0.4 against 0.15 for each other option) but multiplies
    every position by PRIOR (extended for five options): single-shot mostly answers B."""

    def __init__(self, key_texts: set[str]):
        super().__init__()
        self.key_texts = key_texts

    def score_next(self, messages, candidates, *, assistant_prefix=""):
        self.calls.append(("score", list(messages)))
        prior = [*PRIOR, 0.1][: len(candidates)]
        shown = {line[0]: line[3:] for line in messages[-1].content.splitlines() if line[1:3] == ". "}
        weights = [p * (0.4 if shown[c] in self.key_texts else 0.15) for p, c in zip(prior, candidates, strict=True)]
        scores = {c: math.log(w / sum(weights)) for c, w in zip(candidates, weights, strict=True)}
        return Completion(max(scores, key=scores.__getitem__), 10, 2, 0, 0.01, scores=scores)


def test_pride_removes_a_position_bias_single_falls_for(tmp_path):
    questions = select(load_questions(BUNDLED), limit=14)
    backend = BiasedReader({q.options[q.answer] for q in questions})
    result = evaluate(
        RunSpec(graph="pride", baseline="single", calibration=3, out=tmp_path / "run"),
        questions=questions,
        backend=backend,
    )
    pride, single = (g.overall for g in result.summary.graphs)
    # single: B wherever the key is not B (0.6 x 0.15 beats 0.1 x 0.4); pride: the key every time.
    assert single.correct == sum(q.answer == "B" for q in questions) and pride.correct == 14
    lines = [json.loads(line) for line in (result.out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    debiased = [p for p in lines if p["graph"] == "pride"]
    calibrated = [p for p in debiased if p["trace"][0]["node"] == "calibrate"]
    assert len(calibrated) == 3 and all(p["model_calls"] == 5 for p in calibrated)  # five rotations each
    assert all(p["model_calls"] == 1 for p in debiased if p not in calibrated)
    five = [*PRIOR, 0.1]
    assert [math.exp(x) for x in debiased[0]["extras"]["prior"]] == pytest.approx([p / sum(five) for p in five])
    # What debiasing changed, as any chain's first proposal -> final: B before, the key after.
    flips = result.summary.graphs[0].draft_to_final
    assert flips.first == "before debiasing" and flips.wrong_to_right == 14 - single.correct


def test_pride_on_a_real_tiny_model(tmp_path, tiny_backend):
    questions = select(load_questions(BUNDLED), limit=2)
    spec = RunSpec(graph="pride", baseline="none", model=TINY, calibration=1, out=tmp_path / "run", n_ctx=2048)
    result = evaluate(spec, questions=questions, backend=tiny_backend)
    lines = [json.loads(line) for line in (result.out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 2 and sorted(p["model_calls"] for p in lines) == [1, len(questions[0].options)]
    prior = lines[0]["extras"]["prior"]
    assert len(prior) == 5 and sum(math.exp(x) for x in prior) == pytest.approx(1.0)


class Silent(FakeBackend):
    """Returns no option among its log-probabilities (a server's top-k without them), or commits by a grammar."""

    def __init__(self, method: str = "next_token"):
        super().__init__()
        self.method = method

    def score_next(self, messages, candidates, *, assistant_prefix=""):
        self.calls.append(("score", list(messages)))
        scores = {c: -math.inf for c in candidates} if self.method == "next_token" else {"A": 0.0}
        return Completion("A", 10, 2, 0, 0.01, scores=scores, method=self.method)


def test_no_probabilities_is_unparsed_and_a_grammar_is_refused(tmp_path):
    from agents.backends.base import BackendError
    from agents.nodes.debias import Calibration, debiased_node
    from agents.prompts import load_prompts

    questions = select(load_questions(BUNDLED), limit=2)
    update = debiased_node(
        {"question": questions[0]}, backend=Silent(), prompts=load_prompts("single"), calibration=Calibration()
    )
    assert update["answer"] is None and len(update["trace"]) == 1
    with pytest.raises(BackendError, match="pride needs next-token log-probabilities, but the backend committed by"):
        spec = RunSpec(graph="pride", baseline="none", out=tmp_path / "run")
        evaluate(spec, questions=questions, backend=Silent("grammar"))
