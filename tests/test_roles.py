"""Model roles: reflect's critic and extractor (panel's chair) played by another model than the drafter."""

from __future__ import annotations

import json

import pytest
from conftest import TINY
from fakes import FakeBackend, run_config

from eval.api import RunSpec, evaluate
from eval.core.store import RunDirError
from eval.data import BUNDLED, load_questions, select
from eval.models import ModelError
from eval.run.runner import predict
from graphs import build_graph

CONFIG = run_config("reflect")


def test_each_role_calls_its_own_model(question):
    drafter = FakeBackend(replies=["初稿：答案A"], scores={"A": -0.1, "B": -3.0, "C": -3.0, "D": -3.0, "E": -3.0})
    critic = FakeBackend(replies=["草稿有误，建议答案：B"])
    extractor = FakeBackend()  # its scores favour B
    graph = build_graph("reflect", drafter, CONFIG, roles={"critic": critic, "extract": extractor})
    prediction = predict("reflect", graph, question)
    assert [kind for kind, _ in drafter.calls] == ["chat"]  # the draft only
    assert [kind for kind, _ in critic.calls] == ["chat"]  # the critique, reading the drafter's draft
    assert "初稿：答案A" in critic.calls[0][1][-2].content
    assert [kind for kind, _ in extractor.calls] == ["score"]  # the letter
    assert (prediction.draft_answer, prediction.answer) == ("A", "B")

    # Without roles, the drafter plays every part (self-critique): the same three calls on one model.
    alone = FakeBackend(replies=["初稿：答案A", "建议答案：B"])
    predict("reflect", build_graph("reflect", alone, CONFIG), question)
    assert [kind for kind, _ in alone.calls] == ["chat", "chat", "score"]


def test_a_role_the_strategy_lacks_is_refused_in_one_line(tmp_path, cli):
    with pytest.raises(ModelError, match="strategy cot has no critic"):
        evaluate(RunSpec(graph="cot", critic_model=TINY, out=tmp_path / "x"), backend=FakeBackend())
    result = cli("--graph", "single", "--extract-model", TINY, "--out", str(tmp_path / "y"))
    assert result.returncode == 2 and "strategy single has no extract (it has no model roles)" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bigger_critic_in_process_is_recorded_and_resumes(tmp_path, tiny_backend):
    """SmolLM2-135M drafts and extracts; Qwen2.5-Coder-0.5B (the default model) critiques, loaded beside it."""
    questions = select(load_questions(BUNDLED), limit=1)
    spec = RunSpec(
        graph="reflect", baseline="none", model=TINY, critic_model="qwen2.5-coder-0.5b", out=tmp_path / "run",
        draft_tokens=16, critique_tokens=16, n_ctx=2048, n_threads=2,
    )  # fmt: skip
    result = evaluate(spec, questions=questions, backend=tiny_backend)
    manifest = json.loads((result.out / "manifest.json").read_text(encoding="utf-8"))
    critic = manifest["roles"]["critic"]
    assert critic["spec"] == "qwen2.5-coder-0.5b" and critic["model"].endswith(".gguf") and critic["model_sha256"]
    assert "extract" not in manifest["roles"]
    assert result.markdown.splitlines()[2].startswith("Model `") and "· critic `qwen2.5-coder-0.5b`" in result.markdown
    (line,) = (result.out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    trace = json.loads(line)["trace"]
    assert [s["node"] for s in trace] == ["draft", "critique", "extract"]
    # Another critic is another run: the manifest refuses to resume it.
    with pytest.raises(RunDirError, match="roles"):
        evaluate(spec.model_copy(update={"critic_model": TINY}), questions=questions, backend=tiny_backend)


def test_the_critic_may_be_an_endpoint(tmp_path, tiny_backend, llama_server):
    """In-process drafter, critic on llama-server (the same tiny model, so its critique differs only by engine)."""
    questions = select(load_questions(BUNDLED), limit=1)
    spec = RunSpec(
        graph="reflect", baseline="none", model=TINY, critic_model=llama_server, out=tmp_path / "run",
        draft_tokens=8, critique_tokens=8, n_ctx=2048,
    )  # fmt: skip
    result = evaluate(spec, questions=questions, backend=tiny_backend)
    manifest = json.loads((result.out / "manifest.json").read_text(encoding="utf-8"))
    critic = manifest["roles"]["critic"]
    # The endpoint as given, and the model it said it serves (another model behind the URL is another run).
    assert (
        critic["spec"] == llama_server and critic["model"].startswith("openai:") and critic["model"].endswith(".gguf")
    )
    assert result.summary.graphs[0].errors == 0
