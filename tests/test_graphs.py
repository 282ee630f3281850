"""Graph wiring with a scripted backend (pure logic; the real model is exercised in test_cli and test_llamacpp)."""

from conftest import FakeBackend

from eval.runner import predict
from eval.schema import RunConfig
from graphs import get_graph

CONFIG = RunConfig(graphs=["reflect"], model="m", model_sha256="", data="d", data_sha256="", question_ids=[])


def test_reflect_runs_draft_critique_extract_and_keeps_the_trace(question):
    backend = FakeBackend(replies=["下壁导联ST抬高……\n答案：A", "遗漏了下壁导联……\n建议答案：B"])
    prediction = predict("reflect", get_graph("reflect")(backend, CONFIG), question)
    assert [s.node for s in prediction.trace] == ["draft", "critique", "extract"]
    assert (prediction.answer, prediction.correct, prediction.parse_status, prediction.answer_method) == ("B", True, "ok", "next_token")
    assert prediction.draft_answer == "A"
    draft, critique, extract = prediction.trace
    # Each node's prompt extends the previous one: the critique sees the draft, the extraction sees both.
    assert draft.output in critique.messages[-2].content
    assert critique.output == extract.messages[-2].content
    assert extract.messages[: len(critique.messages)] == critique.messages
    assert extract.scores == backend.scores
    assert prediction.model_calls == 3 and prediction.completion_tokens == 10


def test_single_is_one_scoring_call(question):
    backend = FakeBackend(scores={"A": -0.2, "B": -1.0, "C": -2.0, "D": -3.0, "E": -4.0})
    prediction = predict("single", get_graph("single")(backend, CONFIG), question)
    assert [kind for kind, _ in backend.calls] == ["score"]
    assert (prediction.answer, prediction.correct) == ("A", False)
    assert question.stem in prediction.trace[0].messages[-1].content


def test_a_failing_backend_is_recorded_as_an_error_not_raised(question):
    class Broken(FakeBackend):
        def chat(self, *a, **k):
            raise RuntimeError("server went away")

    prediction = predict("reflect", get_graph("reflect")(Broken(), CONFIG), question)
    assert prediction.parse_status == "error" and prediction.answer is None
    assert "server went away" in prediction.error


def test_reflect_rounds_revise_until_the_critic_agrees(question):
    rounds = CONFIG.model_copy(update={"rounds": 3})
    backend = FakeBackend(replies=["……\n答案：A", "应为B。\n建议答案：B", "改为B。\n答案：B", "同意。\n建议答案：B"])
    prediction = predict("reflect", get_graph("reflect")(backend, rounds), question)
    assert [s.node for s in prediction.trace] == ["draft", "critique", "revise", "critique", "extract"]
    assert prediction.draft_answer == "A"  # the first proposal, for draft -> final flips
    revise = prediction.trace[2]
    assert revise.messages[-2].content.endswith("建议答案：B")  # the revision sees the critique


def test_reflect_rounds_are_bounded(question):
    rounds = CONFIG.model_copy(update={"rounds": 2})
    backend = FakeBackend(replies=["答案：A", "建议答案：B", "答案：C", "建议答案：D"])
    prediction = predict("reflect", get_graph("reflect")(backend, rounds), question)
    assert [s.node for s in prediction.trace] == ["draft", "critique", "revise", "critique", "extract"]


def test_reflect_stops_at_once_when_the_critic_finds_nothing_to_change(question):
    rounds = CONFIG.model_copy(update={"rounds": 3})
    backend = FakeBackend(replies=["答案：B", "推理正确。\n建议答案：B"])
    prediction = predict("reflect", get_graph("reflect")(backend, rounds), question)
    assert [s.node for s in prediction.trace] == ["draft", "critique", "extract"]
