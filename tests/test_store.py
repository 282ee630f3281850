import pytest

from eval.core.schema import Message, Prediction, RunConfig, TraceStep
from eval.core.store import RunDirError, RunStore, compact, expand, read_predictions

CONFIG = RunConfig(graphs=["single"], model="m", model_sha256="x", data="d", data_sha256="y", question_ids=["a", "b"])


def pred(qid: str, status: str = "ok") -> Prediction:
    return Prediction(
        question_id=qid,
        graph="single",
        answer="A",
        gold="A",
        correct=True,
        parse_status=status,
        answer_method="next_token",
    )


def test_resume_sees_finished_predictions_and_retries_errors(tmp_path):
    store = RunStore(tmp_path, CONFIG)
    store.append(pred("a"))
    store.append(pred("b", status="error"))
    store.close()
    store = RunStore(tmp_path, CONFIG)
    assert store.done() == {("single", "a")}
    store.append(pred("b"))
    assert store.done() == {("single", "a"), ("single", "b")}
    assert len(store.predictions()) == 2


def test_torn_last_line_is_dropped(tmp_path):
    store = RunStore(tmp_path, CONFIG)
    store.append(pred("a"))
    store.close()
    with open(store.path, "a") as f:
        f.write(pred("b").model_dump_json()[:40])  # killed mid-write
    store = RunStore(tmp_path, CONFIG)
    assert store.done() == {("single", "a")}
    store.append(pred("b"))
    assert len(store.path.read_text().splitlines()) == 2


def test_different_config_is_refused_unless_fresh(tmp_path):
    RunStore(tmp_path, CONFIG).close()
    changed = CONFIG.model_copy(update={"seed": 1})
    with pytest.raises(RunDirError, match="changed: seed"):
        RunStore(tmp_path, changed)
    store = RunStore(tmp_path, changed, fresh=True)
    assert store.done() == set()


def test_second_process_on_the_same_directory_is_refused(tmp_path):
    first = RunStore(tmp_path, CONFIG)
    with pytest.raises(RunDirError, match="in use"):
        RunStore(tmp_path, CONFIG)
    first.close()
    RunStore(tmp_path, CONFIG).close()


def test_line_separator_characters_in_outputs_survive_resume(tmp_path):
    # A model may emit U+2028 / U+0085; str.splitlines() would cut such a record in two and lose it on resume.
    store = RunStore(tmp_path, CONFIG)
    p = pred("a").model_copy(update={"error": "第一行\u2028第二行\x85第三行"})
    store.append(p)
    store.close()
    assert RunStore(tmp_path, CONFIG).predictions()[("single", "a")] == p


def chain(rounds: int) -> Prediction:
    """A reflect-like trace: each step's conversation is the previous one's plus a reply and a new request."""
    conversation = [Message(role="system", content="你是医生。"), Message(role="user", content="题目" * 200)]
    steps = []
    for i in range(rounds):
        steps.append(TraceStep(node=f"step{i}", messages=list(conversation), output=f"回答{i}" * 50))
        conversation += [Message(role="assistant", content=f"回答{i}" * 50), Message(role="user", content=f"追问{i}")]
    steps.append(TraceStep(node="again", messages=steps[-1].messages, output="同一提示"))  # e.g. sc's k samples
    steps.append(TraceStep(node="retrieve", messages=[Message(role="user", content="检索")], output="2 passages"))
    return Prediction(
        question_id="q", graph="reflect", answer="A", gold="A", correct=True, parse_status="ok",
        answer_method="next_token", trace=steps,
    )  # fmt: skip


def test_traces_are_stored_linearly_and_read_back_whole(tmp_path):
    sizes = {}
    for rounds in (5, 10, 20):
        prediction = chain(rounds)
        store = RunStore(tmp_path / str(rounds), CONFIG)
        store.append(prediction)
        store.close()
        assert read_predictions(tmp_path / str(rounds))[("reflect", "q")] == prediction
        sizes[rounds] = (tmp_path / str(rounds) / "predictions.jsonl").stat().st_size
        assert sizes[rounds] < len(prediction.model_dump_json().encode()) / 2
    # Each round adds about the same number of bytes: twice the rounds, about twice the size (whole steps: 4x).
    assert sizes[20] - sizes[10] < 1.2 * 2 * (sizes[10] - sizes[5])
    assert compact(chain(3)).trace[3].messages == [] and compact(chain(3)).trace[3].continues == 2
    assert compact(chain(3)).trace[4].continues is None  # another conversation: stored whole
    assert expand(compact(chain(4))) == chain(4)
