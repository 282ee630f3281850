"""panel: independent clinician opinions, then a chair who commits by next-token scores; its own option."""

import json

import pytest
from conftest import TINY
from fakes import FakeBackend, run_config

from eval.run.runner import predict
from graphs import build_graph

OPINIONS = ["分析：……\n答案：A", "分析：……\n答案：B", "分析：……\n答案：B"]


def test_each_panellist_answers_alone_and_the_chair_reads_every_opinion(question):
    backend = FakeBackend(replies=list(OPINIONS))
    prediction = predict("panel", build_graph("panel", backend, run_config("panel")), question)
    assert [s.node for s in prediction.trace] == ["opinion", "opinion", "opinion", "aggregate"]
    systems = [s.messages[0].content for s in prediction.trace[:3]]
    assert len(set(systems)) == 3, "each panellist speaks in its own role"
    for step in prediction.trace[:3]:  # independent: no panellist sees another's opinion
        assert len(step.messages) == 2 and not any(o in step.messages[-1].content for o in OPINIONS)
    chair = prediction.trace[3].messages[-1].content
    assert all(opinion in chair for opinion in OPINIONS) and "【内科主治医师】" in chair
    # The fake scores B highest; the first panellist said A: the panel changed the first proposal.
    assert (prediction.answer, prediction.answer_method, prediction.draft_answer) == ("B", "next_token", "A")
    assert prediction.first_proposal == "first panellist" and prediction.extras == {"panel_letters": ["A", "B", "B"]}
    assert prediction.model_calls == 4


def test_the_number_of_panellists_is_the_strategys_own_option(question):
    backend = FakeBackend(replies=list(OPINIONS))
    prediction = predict("panel", build_graph("panel", backend, run_config("panel", panellists=2)), question)
    assert [s.node for s in prediction.trace] == ["opinion", "opinion", "aggregate"]
    with pytest.raises(ValueError, match="panellists"):
        build_graph("panel", backend, run_config("panel", panellists=4))


def test_panel_from_the_command_line_on_the_real_tiny_model(cli, tmp_path):
    out = tmp_path / "run"
    args = ["--graph", "panel", "--panellists", "2", "--draft-tokens", "8", "--model", TINY, "--limit", "2"]
    result = cli(*args, "--n-ctx", "2048", "--out", str(out))
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["options"]["panel"] == {"draft_tokens": 8, "panellists": 2} and manifest["options"]["single"] == {}
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    panel = [p for p in predictions if p["graph"] == "panel"]
    assert len(panel) == 2 and all(p["answer"] for p in panel)  # the chair commits by scores: never unparsed
    assert "## panel vs single (paired, n=2)" in result.stdout
    refused = cli("--graph", "panel", "--panellists", "5", "--out", str(tmp_path / "x"))
    assert refused.returncode == 2 and "--panellists" in refused.stderr and "Traceback" not in refused.stderr
