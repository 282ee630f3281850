"""python -m eval.export inspect: a real tiny run as Inspect AI eval logs, read back with inspect_ai and listed by a
real `inspect view` server; the trace's pieces a tiny model never produces (reasoning, retrieval, errors) from a
synthetic run; bad input."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from eval.api import RunSpec, evaluate
from eval.core.schema import Message, Prediction, RetrievedPassage, RunConfig, TraceStep
from eval.core.store import RunStore, read_predictions
from eval.data import BUNDLED, load_questions, select
from eval.export import main

inspect_log = pytest.importorskip("inspect_ai.log", reason="the export needs inspect-ai: pip install -e '.[inspect]'")
from inspect_ai.event import InfoEvent, ModelEvent, SpanBeginEvent  # noqa: E402
from inspect_ai.model import ContentReasoning  # noqa: E402

FIELDS = {"model", "strategy", "specialty", "level", "parse_status", "calls", "prompt_tokens", "completion_tokens",
          "seconds", "answer", "key"}  # fmt: skip


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_backend) -> Path:
    """reflect and its single baseline on 3 bundled questions, the real tiny model, tiny budgets."""
    out = tmp_path_factory.mktemp("inspect") / "run"
    spec = RunSpec(graph="reflect", limit=3, draft_tokens=8, critique_tokens=8, n_ctx=2048, out=out)
    evaluate(spec, backend=tiny_backend)
    return out


def read_logs(directory: Path) -> dict:
    """The logs in `directory` by task (graph)."""
    logs = [inspect_log.read_eval_log(str(path), resolve_attachments=True) for path in sorted(directory.glob("*.eval"))]
    return {log.eval.task: log for log in logs}


def test_a_real_run_reads_back_as_one_inspect_log_per_graph(tiny_run, tiny_model, tmp_path, capsys, own_logging):
    assert main(["inspect", str(tiny_run), "--out", str(tmp_path / "logs")]) == 0
    written = capsys.readouterr().out.split()
    logs = read_logs(tmp_path / "logs")
    assert sorted(logs) == ["reflect", "single"] and len(written) == 2
    predictions = read_predictions(tiny_run)
    questions = {q.id: q for q in select(load_questions(BUNDLED), limit=3)}
    summary = json.loads((tiny_run / "summary.json").read_text(encoding="utf-8"))
    for graph, log in logs.items():
        assert log.status == "success" and log.eval.model.endswith(tiny_model.name)
        assert [s.id for s in log.samples] == list(questions)  # one sample per question, in run order
        accuracy = next(g["overall"]["accuracy"] for g in summary["graphs"] if g["graph"] == graph)
        assert log.results.scores[0].metrics["accuracy"].value == pytest.approx(accuracy)  # Inspect's own metric
        assert log.results.completed_samples == 3
        for sample in log.samples:
            p, q = predictions[(graph, sample.id)], questions[sample.id]
            assert sample.scores["choice"].value == ("C" if p.correct else "I")
            assert sample.scores["choice"].answer == (p.answer or "") and sample.target == q.answer
            assert sample.input == q.stem and sample.choices == list(q.options.values())
            assert sample.metadata.keys() >= FIELDS
            assert (sample.metadata["strategy"], sample.metadata["specialty"], sample.metadata["level"]) == (
                graph,
                q.specialty,
                q.level,
            )
            assert sample.metadata["calls"] == p.model_calls == len(p.trace)
            # Every step's reply is an assistant message; the conversation each step continues is not repeated.
            replies = [m.text for m in sample.messages if m.role == "assistant"]
            assert replies == [step.output for step in p.trace]
            assert [m.role for m in sample.messages][:2] == ["system", "user"]
            assert sum(m.role == "system" for m in sample.messages) == 1
            model_events = [e for e in sample.events if isinstance(e, ModelEvent)]
            # The transcript: each step's model call with its whole conversation, in a span named after its node.
            assert [[m.text for m in e.input] for e in model_events] == [
                [m.content for m in s.messages] for s in p.trace
            ]
            assert [e.name for e in sample.events if isinstance(e, SpanBeginEvent)] == [s.node for s in p.trace]
    reflect = logs["reflect"].samples[0]
    assert [m.role for m in reflect.messages] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
        "assistant",
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_inspect_view_lists_the_exported_logs(tiny_run, tmp_path, capsys, own_logging):
    """The exported folder served by a real `inspect view`: its log list (the viewer's /api/logs) names our files."""
    logs = tmp_path / "logs"
    assert main(["inspect", str(tiny_run), "--out", str(logs)]) == 0
    written = capsys.readouterr().out.split()
    port = free_port()
    command = [sys.executable, "-m", "inspect_ai", "view", "--log-dir", str(logs), "--port", str(port)]
    server = subprocess.Popen(
        [*command, "--host", "127.0.0.1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline, listing = time.monotonic() + 60, None
        while listing is None and time.monotonic() < deadline and server.poll() is None:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/api/logs", timeout=5)
                listing = response.json() if response.status_code == 200 else None
            except httpx.TransportError:
                time.sleep(0.5)
        assert listing is not None, f"inspect view did not answer: {server.poll()}"
        with capsys.disabled():  # the check's output, for the record
            print(f"\nGET /api/logs -> {json.dumps(listing, ensure_ascii=False)}")
        listed = {entry["name"].removeprefix("file://"): entry["task"] for entry in listing["files"]}
        assert listed == {str(Path(w).resolve()): Path(w).name.split("_")[1] for w in written}
        assert sorted(listed.values()) == ["reflect", "single"]
        # The viewer reads a listed log whole through the same server.
        name = next(iter(listing["files"]))["name"]
        log = httpx.get(f"http://127.0.0.1:{port}/api/logs/{name.removeprefix('file://')}", timeout=30).json()
        assert len(log["samples"]) == 3
    finally:
        server.terminate()
        server.wait(timeout=30)


# -- what a tiny model's run does not show: reasoning, retrieval, an error, an unfinished run ------------------


def synthetic_run(out: Path, data: str) -> None:
    config = RunConfig(
        graphs=["reflect+rag", "single"],
        model="m.gguf",
        model_sha256="",
        data=data,
        data_sha256="",
        question_ids=["q0", "q1", "q2"],
    )
    store = RunStore(out, config)
    system, user = Message(role="system", content="你是医生。"), Message(role="user", content="题目：……\n请作答。")
    retrieve = TraceStep(
        node="retrieve",
        messages=[Message(role="user", content="胸痛")],
        output="1 of 1 passages",
        passages=[RetrievedPassage(id="p", source="guide.md", title="指南", score=0.5, text="要点")],
    )
    draft = TraceStep(
        node="draft", messages=[system, user], output="答案：A", reasoning="先想一想", reasoning_tokens=4,
        finish_reason="stop", prompt_tokens=50, prompt_tokens_evaluated=20, completion_tokens=9, seconds=1.5,
    )  # fmt: skip
    extract = TraceStep(
        node="extract",
        messages=[system, user, Message(role="assistant", content="答案：A"), Message(role="user", content="字母？")],
        output="A",
        scores={"A": -0.1, "B": -2.5, "C": -7.0},
    )
    store.append(
        Prediction(
            question_id="q0",
            graph="reflect+rag",
            answer="A",
            gold="A",
            correct=True,
            parse_status="ok",
            answer_method="next_token",
            trace=[retrieve, draft, extract],
            model_calls=2,
            prompt_tokens=50,
            prompt_tokens_evaluated=20,
            completion_tokens=9,
            reasoning_tokens=4,
            seconds=1.5,
        )
    )
    store.append(
        Prediction(
            question_id="q1",
            graph="reflect+rag",
            answer=None,
            gold="B",
            correct=False,
            parse_status="error",
            answer_method="none",
            error="server went away",
        )
    )
    store.close()


def test_reasoning_retrieval_and_errors_in_the_log(tmp_path, capsys, own_logging):
    synthetic_run(tmp_path / "run", data=str(tmp_path / "gone.jsonl"))
    assert main(["inspect", str(tmp_path / "run"), "--out", str(tmp_path / "one.eval")]) == 0
    captured = capsys.readouterr()
    assert "could not read the questions" in captured.err and "single: no predictions yet" in captured.err
    log = inspect_log.read_eval_log(str(tmp_path / "one.eval"), resolve_attachments=True)
    assert log.status == "started"  # q2 has no prediction, q1 only a transient error: the run is not finished
    ok, error = log.samples
    # The retrieval is an info event holding its passages, not a message; the draft's thinking is kept apart.
    assert [m.role for m in ok.messages] == ["system", "user", "assistant", "user", "assistant"]
    assert isinstance(ok.messages[2].content[0], ContentReasoning) and ok.messages[2].content[0].reasoning == "先想一想"
    assert ok.messages[2].text == "答案：A"
    (info,) = [e for e in ok.events if isinstance(e, InfoEvent)]
    assert info.data["passages"][0]["title"] == "指南"
    scoring = [e for e in ok.events if isinstance(e, ModelEvent)][-1].output.choices[0].logprobs.content[0]
    assert [(t.token, t.logprob) for t in scoring.top_logprobs] == [("A", -0.1), ("B", -2.5), ("C", -7.0)]
    assert ok.model_usage["m.gguf"].input_tokens_cache_read == 30 and ok.model_usage["m.gguf"].reasoning_tokens == 4
    assert ok.input == "题目：……\n请作答。" and ok.metadata["specialty"] is None  # the data is gone: the prompt
    assert error.error.message == "server went away" and error.scores is None
    assert log.results.completed_samples == 1 and log.results.scores[0].metrics["accuracy"].value == 1.0


@pytest.mark.parametrize(
    ("setup", "args", "says"),
    [
        (None, [], "not a run directory"),
        ("manifest", [], "no predictions yet"),
        ("run", ["--out", "x.eval"], "a file holds one graph's log"),
        ("run", ["--graph", "cot"], "--graph cot: not a graph of this run"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, own_logging, setup, args, says):
    run = tmp_path / "run"
    if setup == "manifest":
        RunStore(run, RunConfig(graphs=["single"], model="m.gguf", model_sha256="", data="d", data_sha256="",
                                question_ids=["q0"])).close()  # fmt: skip
    elif setup == "run":
        synthetic_run(run, data="d")
        store = RunStore(run, RunConfig.model_validate_json((run / "manifest.json").read_text()))
        store.append(Prediction(question_id="q0", graph="single", answer="A", gold="A", correct=True,
                                parse_status="ok", answer_method="next_token"))  # fmt: skip
        store.close()
    args = [a if a != "x.eval" else str(tmp_path / a) for a in args]
    assert main(["inspect", str(run), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and says in err, err


def test_without_inspect_ai_it_says_so_in_one_line(tmp_path, capsys, monkeypatch, own_logging):
    monkeypatch.delitem(sys.modules, "eval.render.inspect_log", raising=False)
    for name in [m for m in sys.modules if m.partition(".")[0] == "inspect_ai"] or ["inspect_ai"]:
        monkeypatch.setitem(sys.modules, name, None)  # importing inspect_ai now fails as if it were not installed
    assert main(["inspect", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: inspect-ai is not installed: pip install 'clinical-eval[inspect]' (or pip install inspect-ai)"
