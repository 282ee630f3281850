"""The model interface graphs call. Graphs never know which implementation they run on."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel

from agents.reasoning import split_reasoning
from eval.core.schema import Engine, FinishReason, Message


class BackendError(Exception):
    """The model cannot be loaded or cannot take a prompt; the message says why."""


class Unreachable(BackendError):
    """A server could not be reached at all (refused, reset or timed out connections), even after retries."""


class PermanentError(BackendError):
    """The model can never take this prompt (it cannot fit the context window, or the vocabulary cannot spell an
    option): asking again cannot help."""


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
    text: str  # the reply outside any thinking: what an answer is read from
    prompt_tokens: int
    prompt_tokens_evaluated: int
    completion_tokens: int  # every generated token, thinking included
    seconds: float
    scores: dict[str, float] | None = None
    method: str = "next_token"  # how score_next committed: next_token | grammar | json | regex
    # Why generation stopped: "stop" (the model ended its reply or hit a stop string), "length" (the token budget ran
    # out: the reply is cut), "error" (the engine said so); None for scoring, which generates nothing.
    finish_reason: FinishReason | None = None
    reasoning: str = ""  # a reasoning model's thinking, kept apart from `text` (never parsed for the answer)
    reasoning_tokens: int = 0  # of completion_tokens, those spent thinking
    # False when the reply ends inside its thinking, or its thinking ended with nothing after it: no answer can follow
    reasoning_finished: bool = True


def reasoned(
    raw: str, *, finish_reason: FinishReason | None, prefix: str = "", opened: bool = False, reasoning: str = ""
) -> dict[str, Any]:
    """Completion fields for a generated reply (primed with `prefix`): its thinking split off, a server's separate
    reasoning field first. Thinking that ended with nothing after it (but the prefix) did not finish into an answer."""
    split = split_reasoning(raw, opened=opened and not reasoning)
    thought = "\n\n".join(x for x in (reasoning.strip(), split.reasoning) if x)
    said = split.answer.removeprefix(prefix.strip()).strip() if prefix.strip() else split.answer
    return {
        "text": split.answer,
        "reasoning": thought,
        "reasoning_finished": split.finished and not (thought and not said),
        "finish_reason": finish_reason,
    }


class Backend(Protocol):
    # Read-only: a server's backend derives both from its address and what probing found
    @property
    def name(self) -> str: ...

    @property
    def engine(self) -> Engine:
        """What computes the answers, for the manifest."""
        ...

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


@dataclass(frozen=True)
class Recorded:
    """What a run records of the model its backend runs."""

    model: str  # in the manifest: the GGUF's path, or what names the model behind an endpoint
    label: str  # in the default run directory's name
    shown: str  # in the report
    engine: Engine
    scoring: str = ""  # how a server was asked to commit to letters (--scoring), for the manifest
    prompts: str = ""  # added to the prompts version: instructions the backend adds to every prompt


class Registered:
    """A backend class that `--backend KIND` selects (agents/backends/__init__.py lists them): its flags, how a run
    opens it and what the run records of it. `spec` is any object with every flag as an attribute (eval.api.RunSpec).
    """

    kind: ClassVar[str]  # --backend KIND
    about: ClassVar[str]  # what it does, for --help and messages: "evaluates in-process"
    options: ClassVar[type[BaseModel] | None] = None  # its own flags, added to RunSpec as a strategy's options are
    # The options that say where the model is and how to reach it (a leaderboard entry's own keys); the first, given,
    # selects this backend
    endpoint: ClassVar[tuple[str, ...]] = ()
    served: ClassVar[str] = ""  # of those, the one that names the model it serves (what a leaderboard labels it by)
    # It loads the GGUF here: a run needs one (the packaged default unless given), evaluates one stream at a time, and
    # loads it once the run directory has accepted the manifest. Otherwise it is opened first: the manifest records
    # what it serves.
    local: ClassVar[bool] = False
    # What computes the answers, known before opening where the backend is local (recorded() reads it then); a
    # server's backend learns it by probing and says so through a property of the opened backend instead
    engine: ClassVar[Engine]

    @classmethod
    def check(cls, spec: Any) -> None:
        """Refuse, in one line (BackendError), a spec this backend cannot be opened from, before any work."""

    @classmethod
    def open(cls, spec: Any, model_path: Path | None) -> Backend:
        raise NotImplementedError

    @classmethod
    def role(cls, spec: Any, given: str) -> Backend | None:
        """A role's model (--critic-model GIVEN) opened with this backend where GIVEN is its kind of address."""
        return None

    @classmethod
    def recorded(cls, spec: Any, backend: Backend | None, model_path: Path | None) -> Recorded:
        """The GGUF when there is one, else the backend's name; `backend` None: a local one not loaded yet."""
        if model_path:
            model, label, shown = str(model_path), model_path.stem, model_path.name
        else:
            assert backend is not None
            model = label = shown = backend.name
        return Recorded(model, label, shown, engine=backend.engine if backend is not None else cls.engine)
