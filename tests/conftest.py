"""Shared fixtures: the real tiny model (SmolLM2-135M, installed from PyPI) and a scripted fake backend."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from agents.backends.base import Completion
from eval.models import ModelError, resolve_model
from eval.schema import Message, Question

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


class FakeBackend:
    """Replays scripted chat replies and letter scores; records every call. For pure graph logic only."""

    name = "fake"

    def __init__(self, replies: Sequence[str] = (), scores: dict[str, float] | None = None):
        self.replies = list(replies)
        self.scores = scores or {"A": -3.0, "B": -0.1, "C": -2.0, "D": -4.0, "E": -5.0}
        self.calls: list[tuple[str, list[Message]]] = []

    def chat(self, messages, *, max_tokens, stop=(), grammar=None, assistant_prefix="", temperature=0.0, seed=None):
        self.calls.append(("chat", list(messages)))
        return Completion(assistant_prefix + self.replies.pop(0), 10, 10, 5, 0.01)

    def count_tokens(self, text):
        return len(text)

    def score_next(self, messages, candidates, *, assistant_prefix=""):
        self.calls.append(("score", list(messages)))
        scores = {c: self.scores[c] for c in candidates}
        return Completion(max(scores, key=scores.__getitem__), 10, 2, 0, 0.01, scores=scores)


@pytest.fixture
def cli():
    """Run `python -m eval.agentic ...` as a user would; returns the CompletedProcess."""
    import subprocess

    def run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "eval.agentic", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
        )

    return run
