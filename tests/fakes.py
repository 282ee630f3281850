"""Test fakes, for pure graph logic only: anything that needs a model runs on a real small GGUF (see conftest)."""

from __future__ import annotations

from collections.abc import Sequence

from agents.backends.base import Completion, reasoned
from eval.core.schema import Engine, Message, RunConfig


class FakeBackend:
    """Replays scripted chat replies and letter scores; records every call. For pure graph logic only."""

    name = "fake"
    engine = Engine(name="fake", slots=1)

    def __init__(self, replies: Sequence[str] = (), scores: dict[str, float] | None = None):
        self.replies = list(replies)
        self.scores = scores or {"A": -3.0, "B": -0.1, "C": -2.0, "D": -4.0, "E": -5.0}
        self.calls: list[tuple[str, list[Message]]] = []

    def chat(self, messages, *, max_tokens, stop=(), grammar=None, assistant_prefix="", temperature=0.0, seed=None):
        """The next scripted reply: a text, or (text, finish_reason) for one cut at its budget ("length")."""
        self.calls.append(("chat", list(messages)))
        reply = self.replies.pop(0)
        text, finish = reply if isinstance(reply, tuple) else (reply, "stop")
        fields = reasoned(assistant_prefix + text, finish_reason=finish, prefix=assistant_prefix)
        return Completion(prompt_tokens=10, prompt_tokens_evaluated=10, completion_tokens=5, seconds=0.01, **fields)

    def count_tokens(self, text):
        return len(text)

    def score_next(self, messages, candidates, *, assistant_prefix=""):
        self.calls.append(("score", list(messages)))
        scores = {c: self.scores[c] for c in candidates}
        return Completion(max(scores, key=scores.__getitem__), 10, 2, 0, 0.01, scores=scores)


def run_config(graph: str, **options) -> RunConfig:
    """The RunConfig a test builds one graph with: `options` are the strategy's."""
    return RunConfig(
        graphs=[graph],
        model="m",
        model_sha256="",
        data="d",
        data_sha256="",
        question_ids=[],
        options={graph: options},
    )
