"""The model interface graphs call. Graphs never know which implementation they run on."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from eval.schema import Engine, Message


class BackendError(Exception):
    """The model cannot be loaded or cannot take a prompt; the message says why."""


class Unreachable(BackendError):
    """A server could not be reached at all (refused, reset or timed out connections), even after retries."""


@contextlib.contextmanager
def quiet_stderr():
    # llama.cpp prints its load log from C straight to fd 2; keep the terminal for our own logs.
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


# Leading whitespace and the tokenizers' visible space markers: SentencePiece's "▁", GPT-2 byte-level BPE's "Ġ".
_TOKEN_SPACE = " \t\r\n▁Ġ"


def letter_of_token(text: str) -> str:
    """What a token spells as an answer: " A", "▁A", "ĠA" and "A" all spell "A".

    Both backends count a token toward option X exactly when this returns X, so they score the same tokens.
    """
    return text.lstrip(_TOKEN_SPACE).rstrip()


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    prompt_tokens_evaluated: int
    completion_tokens: int
    seconds: float
    scores: dict[str, float] | None = None
    method: str = "next_token"  # how score_next committed: next_token | grammar | json | regex


class Backend(Protocol):
    name: str
    engine: Engine  # what computes the answers, for the manifest

    def chat(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int,
        stop: Sequence[str] = (),
        grammar: str | None = None,
        assistant_prefix: str = "",
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> Completion:
        """Greedy (or seeded) chat completion; `grammar` is a GBNF grammar constraining the reply.

        The reply is primed with `assistant_prefix`, which the returned text includes. `temperature` > 0
        samples instead of decoding greedily, drawing from `seed` (None: the backend's own seed).
        """
        ...

    def score_next(
        self, messages: Sequence[Message], candidates: Sequence[str], *, assistant_prefix: str = ""
    ) -> Completion:
        """Log-probability of each candidate as the next token of the assistant's reply, in one forward pass.

        The reply is primed with `assistant_prefix` (e.g. "答案："); `scores` maps candidate -> log-probability.
        """
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens `text` takes in this model's vocabulary (to trim retrieved context to fit the window)."""
        ...
