"""Graph wiring with a scripted backend (pure logic; the real model is exercised in test_cli and test_llamacpp)."""

from typing import ClassVar

import pytest
from fakes import FakeBackend, run_config

from eval.run.runner import predict
from graphs import build_graph
from graphs.reflect import after_critique

CONFIG = run_config("reflect")


class ReadsTheCritique(FakeBackend):
    """Scores favour D only when the critique is among the messages scored: an extraction that ignored it (or read
    the draft alone) would answer B, the fake's default, or A, the draft's letter."""

    CRITIQUE = "两上肢血压不等、疼痛向背部放射，提示肺栓塞可能性大。\n建议答案：D"
    WITH_CRITIQUE: ClassVar[dict[str, float]] = {"A": -2.0, "B": -1.5, "C": -3.0, "D": -0.2, "E": -5.0}

    def score_next(self, messages, candidates, *, assistant_prefix=""):
        if any(self.CRITIQUE in m.content for m in messages):
            self.scores = self.WITH_CRITIQUE
        return super().score_next(messages, candidates, assistant_prefix=assistant_prefix)


def test_reflect_runs_draft_critique_extract_and_keeps_the_trace(question):
    backend = ReadsTheCritique(replies=["下壁导联ST抬高……\n答案：A", ReadsTheCritique.CRITIQUE])
    prediction = predict("reflect", build_graph("reflect", backend, CONFIG), question)
    assert [s.node for s in prediction.trace] == ["draft", "critique", "extract"]
    # D: neither the draft's A nor the fake's default B, so the extraction read the critique.
    assert (prediction.answer, prediction.correct, prediction.answer_method) == ("D", False, "next_token")
    assert prediction.draft_answer == "A"
    draft, critique, extract = prediction.trace
    # Each node's prompt extends the previous one: the critique sees the draft, the extraction sees both.
    assert draft.output in critique.messages[-2].content
    assert critique.output == extract.messages[-2].content
    assert extract.messages[: len(critique.messages)] == critique.messages
    assert extract.scores == ReadsTheCritique.WITH_CRITIQUE
    assert prediction.model_calls == 3 and prediction.completion_tokens == 10


def test_the_draft_letter_is_parsed_with_the_option_texts(question):
    backend = FakeBackend(replies=["下壁导联ST段抬高。\n答案：急性下壁心肌梗死", "同意。\n建议答案：B"])
    prediction = predict("reflect", build_graph("reflect", backend, CONFIG), question)
    assert prediction.draft_answer == "B"


def test_single_is_one_scoring_call(question):
    backend = FakeBackend(scores={"A": -0.2, "B": -1.0, "C": -2.0, "D": -3.0, "E": -4.0})
    prediction = predict("single", build_graph("single", backend, CONFIG), question)
    assert [kind for kind, _ in backend.calls] == ["score"]
    assert (prediction.answer, prediction.correct) == ("A", False)
    assert question.stem in prediction.trace[0].messages[-1].content


def test_a_failing_backend_is_recorded_as_an_error_not_raised(question):
    class Broken(FakeBackend):
        def chat(self, *a, **k):
            raise RuntimeError("server went away")

    prediction = predict("reflect", build_graph("reflect", Broken(), CONFIG), question)
    assert prediction.parse_status == "error" and prediction.answer is None
    assert "server went away" in prediction.error


def test_reflect_rounds_revise_until_the_critic_agrees(question):
    rounds = CONFIG.model_copy(update={"options": {"reflect": {"rounds": 3}}})
    backend = FakeBackend(replies=["……\n答案：A", "应为B。\n建议答案：B", "改为B。\n答案：B", "同意。\n建议答案：B"])
    prediction = predict("reflect", build_graph("reflect", backend, rounds), question)
    assert [s.node for s in prediction.trace] == ["draft", "critique", "revise", "critique", "extract"]
    assert prediction.draft_answer == "A"  # the first proposal, for draft -> final flips
    revise = prediction.trace[2]
    assert revise.messages[-2].content.endswith("建议答案：B")  # the revision sees the critique


def test_reflect_rounds_are_bounded(question):
    rounds = CONFIG.model_copy(update={"options": {"reflect": {"rounds": 2}}})
    backend = FakeBackend(replies=["答案：A", "建议答案：B", "答案：C", "建议答案：D"])
    prediction = predict("reflect", build_graph("reflect", backend, rounds), question)
    assert [s.node for s in prediction.trace] == ["draft", "critique", "revise", "critique", "extract"]


def test_reflect_stops_at_once_when_the_critic_finds_nothing_to_change(question):
    rounds = CONFIG.model_copy(update={"options": {"reflect": {"rounds": 3}}})
    backend = FakeBackend(replies=["答案：B", "推理正确。\n建议答案：B"])
    prediction = predict("reflect", build_graph("reflect", backend, rounds), question)
    assert [s.node for s in prediction.trace] == ["draft", "critique", "extract"]


def test_reflect_rounds_revise_when_the_critic_proposes_first_and_then_discusses_the_draft(question):
    rounds = CONFIG.model_copy(update={"options": {"reflect": {"rounds": 3}}})
    critique = "建议答案：C\n理由：草稿答案B忽略了两上肢血压不等，选B是错误的。"
    backend = FakeBackend(replies=["……\n答案：B", critique, "改为C。\n答案：C", "同意。\n建议答案：C"])
    prediction = predict("reflect", build_graph("reflect", backend, rounds), question)
    assert [s.node for s in prediction.trace] == ["draft", "critique", "revise", "critique", "extract"]


@pytest.mark.parametrize(
    ("critique", "route"),
    [
        ("草稿答案B有误，遗漏了背痛。\n建议答案：C", "revise"),
        ("建议答案：C。草稿答案B有误。", "revise"),
        ("草稿答案B不对，应为C。", "revise"),
        ("草稿推理正确，维持原答案B。", "extract"),
        ("C和D都有可能。\n建议答案：C、D", "extract"),  # ambiguous: nothing to revise towards
    ],
)
def test_after_critique_reads_the_critics_own_proposal(question, critique, route):
    state = {"question": question, "critique": critique, "proposal": "B", "revisions": 0}
    assert after_critique(state, rounds=3) == route
