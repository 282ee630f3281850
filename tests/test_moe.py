"""Mixture-of-Experts models: GGUF inspection, and a tiny generated Mixtral-architecture model run end to end.

The tiny MoE model (eval.tinymoe: 2 layers, 8 experts, 2 used per token, random weights) is written once per
session in a few tenths of a second; its answers are noise, so nothing here asserts accuracy.
"""

from __future__ import annotations

import json
import math
import subprocess

import pytest
from conftest import run_main, run_process

from eval.core.cache import sha256_file
from eval.core.schema import Message
from eval.models import ModelError
from eval.models.gguf import ModelInfo, inspect_gguf
from eval.tinymoe import TinyMoEConfig

LETTERS = list("ABCDE")


def models_cli(*args: str) -> subprocess.CompletedProcess:
    return run_main("eval.models", *args)


# -- inspection ----------------------------------------------------------------------------


def test_inspect_tiny_moe(tiny_moe):
    info = inspect_gguf(tiny_moe)
    config = TinyMoEConfig()
    assert info.architecture == "llama"
    assert info.is_moe and info.n_experts == 8 and info.n_experts_used == 2
    assert info.n_layers == config.n_layers and info.context_length == config.context_length
    assert info.has_chat_template
    assert info.quantization == "F16" and info.quantization_source == "file_type"
    # Per layer: gate, up and down stacks of 8 experts, each n_embd x n_ff.
    assert info.expert_params == config.n_layers * 3 * config.n_experts * config.n_embd * config.n_ff
    assert 0 < info.active_params < info.total_params
    assert info.active_params == info.total_params - info.expert_params * 6 // 8
    assert info.total_params == sum(info.tensor_types.values())
    assert info.sha256 == sha256_file(tiny_moe) and info.file_size == tiny_moe.stat().st_size
    # The chat template is read for thinking detection but never written into manifests.
    assert info.chat_template and "chat_template" not in info.model_dump()
    assert ModelInfo.model_validate_json(info.model_dump_json()) == info.model_copy(update={"chat_template": ""})
    assert json.loads(info.model_dump_json())["is_moe"] is True
    assert inspect_gguf(tiny_moe, sha256=False).sha256 is None


def test_header_reader_agrees_with_the_stock_reader(tiny_moe):
    """The fast reader only skips the contents of long string arrays; everything else is what gguf reads."""
    from gguf import GGUFReader, GGUFValueType

    from eval.models.gguf import _array_len, _HeaderReader

    fast, stock = _HeaderReader(tiny_moe), GGUFReader(tiny_moe)
    assert list(fast.fields) == list(stock.fields)
    for key, field in stock.fields.items():
        if field.types[:2] == [GGUFValueType.ARRAY, GGUFValueType.STRING] and len(field.data) > _HeaderReader._LONG:
            assert _array_len(fast.fields[key]) == len(field.data), key
        else:
            assert fast.fields[key].contents() == field.contents(), key
    assert [(t.name, t.tensor_type, t.shape.tolist(), t.n_elements, t.data_offset) for t in fast.tensors] == [
        (t.name, t.tensor_type, t.shape.tolist(), t.n_elements, t.data_offset) for t in stock.tensors
    ]
    assert fast.data_offset == stock.data_offset


def test_inspect_dense_model(tiny_model):
    info = inspect_gguf(tiny_model, sha256=False)
    assert not info.is_moe and info.n_experts == 0 and info.expert_params == 0
    assert info.active_params == info.total_params > 100_000_000
    assert info.architecture == "llama" and info.quantization == "Q4_1" and info.has_chat_template
    assert info.n_layers == 30 and info.context_length == 8192


def test_inspect_cli(tiny_moe):
    text = models_cli("inspect", str(tiny_moe))
    assert text.returncode == 0, text.stderr
    assert "8 per layer, 2 used per token" in text.stdout and "F16" in text.stdout and "llama" in text.stdout
    as_json = models_cli("inspect", str(tiny_moe), "--json", "--no-sha256")
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["is_moe"] is True and data["n_experts"] == 8 and data["n_experts_used"] == 2 and data["sha256"] is None
    assert ModelInfo.model_validate(data).active_params == data["active_params"]


def test_inspect_packaged_name():
    result = models_cli("inspect", "smollm2-135m", "--json", "--no-sha256")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["is_moe"] is False


@pytest.mark.parametrize(
    "kind", ["missing", "empty", "not-gguf", "truncated-header", "truncated-data", "garbage", "directory"]
)
def test_bad_files_give_one_error_line(tiny_moe, tmp_path, kind):
    path = tmp_path / "bad.gguf"
    data = tiny_moe.read_bytes()
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "not-gguf":
        path.write_bytes(b"<html>not a model</html>")
    elif kind == "truncated-header":
        path.write_bytes(data[:5000])
    elif kind == "truncated-data":
        path.write_bytes(data[: len(data) - 1000])
    elif kind == "garbage":
        path.write_bytes(b"GGUF" + bytes(range(256)) * 16)
    elif kind == "directory":
        path.mkdir()
    result = models_cli("inspect", str(path))
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    if kind not in ("missing", "directory"):
        with pytest.raises(ModelError):
            inspect_gguf(path)


# -- the tiny MoE model in llama.cpp ---------------------------------------------------------


@pytest.fixture(scope="module")
def moe_backend(tiny_moe):
    from agents.backends.llamacpp import LlamaCppBackend

    return LlamaCppBackend(tiny_moe, n_ctx=1024, n_threads=1)


def test_tiny_moe_scores_and_generates(moe_backend):
    messages = [
        Message(role="system", content="你是一名经验丰富的临床医师。"),
        Message(
            role="user",
            content=(
                "男，60岁。突发胸痛2小时，心电图示下壁ST段抬高（≥0.2 mV）。最可能的诊断是\n"
                "A. 急性心包炎\nB. 急性下壁心肌梗死\nC. 主动脉夹层\nD. 肺栓塞\nE. 气胸"
            ),
        ),
    ]
    scored = moe_backend.score_next(messages, LETTERS, assistant_prefix="答案：")
    assert sorted(scored.scores) == LETTERS and all(math.isfinite(v) and v < 0 for v in scored.scores.values())
    assert scored.text in LETTERS and scored.prompt_tokens > 0
    reply = moe_backend.chat(messages, max_tokens=12, assistant_prefix="分析：")
    assert reply.text.startswith("分析：") and reply.completion_tokens > 0
    again = moe_backend.chat(messages, max_tokens=12, assistant_prefix="分析：")
    assert again.text == reply.text, "greedy decoding is deterministic"


def test_tinymoe_cli_is_reproducible(tiny_moe, tmp_path):
    out = tmp_path / "again.gguf"
    # Another process, so another hash seed: the bytes must not depend on one.
    result = run_process("eval.tinymoe", out, timeout=120)
    assert result.returncode == 0, result.stderr
    assert sha256_file(out) == sha256_file(tiny_moe), "same seed, same bytes"


def test_agentic_cli_on_tiny_moe(cli, tiny_moe, tmp_path):
    out = tmp_path / "run"
    args = (
        "--graph",
        "reflect",
        "--model",
        str(tiny_moe),
        "--limit",
        "2",
        "--draft-tokens",
        "16",
        "--critique-tokens",
        "16",
    )
    result = cli(*args, "--n-ctx", "1024", "--n-threads", "1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(predictions) == 4
    assert sorted(p["graph"] for p in predictions) == ["reflect", "reflect", "single", "single"]
    for p in predictions:
        assert p["error"] is None and p["parse_status"] == "ok" and p["answer"] in LETTERS
        nodes = [s["node"] for s in p["trace"]]
        assert nodes == (["draft", "critique", "extract"] if p["graph"] == "reflect" else ["answer"])
    assert (out / "report.md").is_file() and (out / "summary.json").is_file()
    assert json.loads((out / "manifest.json").read_text())["model_sha256"] == sha256_file(tiny_moe)
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["model_info"]["n_experts"], manifest["model_info"]["n_experts_used"]) == (8, 2)
    assert "MoE: 8 experts, 2 used per token" in (out / "report.md").read_text(encoding="utf-8")


def test_memory_plan_counts_weights_and_kv_cache_and_refuses_what_cannot_fit(tiny_moe, monkeypatch):
    from eval.models import ModelError
    from eval.models import gguf as gguf_info

    info = gguf_info.inspect_gguf(tiny_moe, sha256=False)
    small_host, _ = gguf_info.memory_needed(info, n_ctx=512)
    big_host, _ = gguf_info.memory_needed(info, n_ctx=8192)
    assert big_host > small_host > info.file_size
    host, gpu = gguf_info.memory_needed(info, n_ctx=512, n_gpu_layers=-1)
    assert gpu > info.file_size * 0.9 and host < small_host
    monkeypatch.setattr(gguf_info, "available_memory", lambda: 1024**2)
    with pytest.raises(ModelError, match=r"needs about .* GiB of RAM .* lower --n-ctx"):
        gguf_info.check_fits(info, n_ctx=512)
