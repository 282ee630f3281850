"""--check-determinism: a seeded sample of a run's questions re-made at concurrency 1, answers compared."""

from __future__ import annotations

import json

import pytest
from fakes import FakeBackend

from agents.backends.base import BackendError
from eval.api import RunSpec, evaluate
from eval.data import DataError


class Drifting(FakeBackend):
    """Answers B for the first `steady` letters it scores, then C: a backend whose answers change between runs."""

    def __init__(self, steady: int):
        super().__init__()
        self.steady = steady
        self.scored = 0

    def score_next(self, messages, candidates, *, assistant_prefix=""):
        self.scored += 1
        if self.scored > self.steady:
            self.scores = {**self.scores, "C": 0.0}
        return super().score_next(messages, candidates, assistant_prefix=assistant_prefix)


def test_check_determinism_reports_the_answers_that_changed(tmp_path):
    spec = RunSpec(graph="single", baseline="none", limit=6, check_determinism=4, out=tmp_path / "run")
    result = evaluate(spec, backend=Drifting(steady=6))  # the run's 6 answers are B, every re-made one C
    d = result.summary.determinism
    assert d.compared == {"single": 4} and len(d.changed["single"]) == 4 and d.shared_batch == 0
    remade = (tmp_path / "run" / "determinism" / "predictions.jsonl").read_text().splitlines()
    ids = [json.loads(line)["question_id"] for line in remade]
    assert sorted(d.changed["single"]) == sorted(ids) and len(set(ids)) == 4
    check = "Determinism check: 4 answers re-made at concurrency 1 (0 of them first made sharing a batch); 4 changed"
    assert check in result.markdown
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["determinism"]["changed"]["single"]

    steady = evaluate(spec.model_copy(update={"out": tmp_path / "steady"}), backend=Drifting(steady=100))
    assert steady.summary.determinism.total_changed == 0 and "; 0 changed" in steady.markdown


def test_check_determinism_samples_only_answered_questions_and_at_most_the_run(tmp_path):
    spec = RunSpec(graph="single", baseline="none", limit=3, check_determinism=10, out=tmp_path / "run")
    d = evaluate(spec, backend=Drifting(steady=100)).summary.determinism
    assert d.compared == {"single": 3}  # K larger than the run: every question, once

    class Failing(Drifting):
        def score_next(self, messages, candidates, *, assistant_prefix=""):
            raise BackendError("the model is gone")

    failed = RunSpec(graph="single", baseline="none", limit=2, check_determinism=2, out=tmp_path / "failed")
    with pytest.raises(DataError, match="no question has a finished answer"):
        evaluate(failed, backend=Failing(steady=0))
    assert (tmp_path / "failed" / "report.md").exists()  # the run's own report is saved before the check
