"""The CLI end to end on the real tiny model: both graphs, traces, JSONL, report, resume, clear errors."""

import json

from conftest import TINY

ARGS = ("--model", TINY, "--limit", "3", "--draft-tokens", "48", "--critique-tokens", "32", "--n-ctx", "2048")


def test_reflect_vs_single_end_to_end_and_resume(cli, tmp_path):
    out = tmp_path / "run"
    result = cli("--graph", "reflect", *ARGS, "--out", str(out))
    assert result.returncode == 0, result.stderr
    lines = (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    predictions = [json.loads(line) for line in lines]
    assert sorted((p["graph"], p["question_id"]) for p in predictions) == sorted(
        (g, q) for g in ("reflect", "single") for q in {p["question_id"] for p in predictions}
    )
    assert len(predictions) == 6
    for p in predictions:
        nodes = [s["node"] for s in p["trace"]]
        assert nodes == (["draft", "critique", "extract"] if p["graph"] == "reflect" else ["answer"])
        assert p["answer"] in list("ABCDE") and p["parse_status"] == "ok"
        for i, step in enumerate(p["trace"]):
            # Stored linearly: a step that continues an earlier one's conversation keeps only what it adds.
            assert step["messages"] and (step["messages"][0]["role"] == "system") == (step["continues"] is None)
            assert step["continues"] is None or step["continues"] < i
            assert step["prompt_tokens"] > 0 and step["seconds"] > 0
        assert p["prompt_tokens"] == sum(s["prompt_tokens"] for s in p["trace"])
        assert p["correct"] == (p["answer"] == p["gold"])
    from eval.core.store import read_predictions

    for p in read_predictions(out).values():  # read back whole
        assert all(step.messages[0].role == "system" and step.continues is None for step in p.trace)
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "## reflect vs single (paired, n=3)" in report and "McNemar" in report
    assert report.strip() in result.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["graphs"] == ["reflect", "single"] and len(manifest["question_ids"]) == 3
    assert manifest["engine"]["name"] == "llama-cpp-python" and manifest["engine"]["slots"] == 1
    assert "## Engine" in report and "No prediction shared a batch with another question" in report

    again = cli("--graph", "reflect", *ARGS, "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines() == lines, (
        "resume must not redo or duplicate"
    )

    changed = cli("--graph", "reflect", *ARGS, "--seed", "7", "--out", str(out))
    assert changed.returncode == 2 and "changed: seed" in changed.stderr and "Traceback" not in changed.stderr


def test_filters_and_no_baseline(cli, tmp_path):
    out = tmp_path / "run"
    result = cli(
        "--graph",
        "single",
        "--baseline",
        "none",
        "--model",
        TINY,
        "--specialty",
        "neurology",
        "--level",
        "senior",
        "--limit",
        "2",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [p["question_id"] for p in predictions] == ["neuro-sen-01", "neuro-sen-02"]
    assert "| single |" in result.stdout and "paired" not in result.stdout


def test_user_errors_are_one_clear_line(cli, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1"}\n', encoding="utf-8")
    cases = [
        (("--graph", "nope"), "unknown graph 'nope'"),
        (("--data", str(bad), "--model", TINY), f"{bad}:1: field 'stem'"),
        (("--model", str(tmp_path / "missing.gguf")), "no such file"),
    ]
    for args, message in cases:
        result = cli(*args, "--out", str(tmp_path / "r"))
        assert result.returncode == 2, result.stderr
        assert message in result.stderr and "Traceback" not in result.stderr


def test_unknown_prompt_variant_is_refused_before_anything_is_written(cli, tmp_path):
    result = cli(
        "--graph", "cot", "--baseline", "none", "--prompt-variant", "xx", "--model", TINY, "--out", str(tmp_path / "r")
    )
    assert result.returncode == 2 and "no prompt variant 'xx'" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "r").exists()


def test_base_url_is_never_ignored(tmp_path, capsys):
    """--base-url selects the OpenAI backend (a dead port: the server-down error, not an in-process run); with
    --backend llama it is an error, in the Python API and in a grid's or a leaderboard's flags too."""
    import pytest
    from pydantic import ValidationError

    from eval import ablate, agentic, leaderboard
    from eval.api import RunSpec
    from eval.run.serve import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    refused = "--base-url needs --backend openai (--backend llama evaluates in-process)"
    assert RunSpec(base_url=url).backend == "openai"
    with pytest.raises(ValidationError, match=refused.replace("(", r"\(").replace(")", r"\)")):
        RunSpec(base_url=url, backend="llama")

    assert agentic.main(["--base-url", url, "--limit", "2", "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.startswith(f"error: no server answers at {url}/models")
    assert not (tmp_path / "r").exists()
    with pytest.raises(SystemExit) as stopped:
        agentic.main(["--backend", "llama", "--base-url", url, "--out", str(tmp_path / "r")])
    assert stopped.value.code == 2 and capsys.readouterr().err.endswith(f"error: {refused}\n")

    grid = tmp_path / "grid.toml"
    grid.write_text(f'graphs = ["single"]\nextra_args = ["--backend", "llama", "--base-url", "{url}"]\n')
    assert ablate.main([str(grid), "--out", str(tmp_path / "grid")]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"error: {grid}: extra_args: {refused}"
    spec = tmp_path / "board.toml"
    spec.write_text(f'models = ["{TINY}"]\nlimit = 2\nextra_args = ["--base-url", "{url}"]\n')
    assert leaderboard.main([str(spec), "--out", str(tmp_path / "board")]) == 1
    assert f"{TINY} · single did not run: no server answers at {url}/models" in capsys.readouterr().out
