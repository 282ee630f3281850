"""How score_next asks a server for the letter, one entry a method (the server's best is probed at start-up): the
request's fields, the instruction chat mode adds (agents/prompts/chat.toml), and how the reply is read; and what the
requests of one score_next cost together."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from scipy.special import logsumexp

from agents.answer import letter_from_json, letter_from_text
from agents.backends.base import Completion, letter_of_token, reasoned
from agents.backends.server import Reply


def answer_schema(candidates: Sequence[str]) -> dict:
    return {
        "type": "object",
        "properties": {"answer": {"type": "string", "enum": list(candidates)}},
        "required": ["answer"],
        "additionalProperties": False,
    }


def letters_grammar(candidates: Sequence[str]) -> str:
    return "root ::= " + " | ".join(json.dumps(c) for c in candidates)


def scores_from_top(top: Sequence[tuple[str, float]], candidates: Sequence[str]) -> dict[str, float]:
    """Log-probability of each candidate from one position's top log-probabilities ("C", " C", "▁C" all count)."""
    scores = {}
    for c in candidates:
        found = [lp for token, lp in top if letter_of_token(token) == c and lp is not None]
        scores[c] = float(logsumexp(found)) if found else -math.inf
    return scores


@dataclass(frozen=True)
class Method:
    hint: str  # the chat-mode instruction (a key of agents/prompts/chat.toml), formatted with the letters
    # The request's fields, from the candidates and the thinking room a reply in words gets
    fields: Callable[[Sequence[str], int], dict[str, Any]]
    # The letter a reply's text commits to (text, candidates, the assistant prefix); None: the method reads the
    # next token's log-probabilities instead, and scores every candidate
    letter: Callable[[str, Sequence[str], str], str | None] | None = None
    words: bool = False  # a reply in words: a generation step, whose thinking is split off before it is read


METHODS = {
    "next_token": Method("letter_only", lambda c, room: {"max_tokens": 1, "logprobs": True}),
    # Unpenalised, as next-token scoring is: a repeat penalty would favour whichever letter the options named
    # longest ago.
    "grammar": Method(
        "letter",
        lambda c, room: {"max_tokens": 1, "grammar": letters_grammar(c), "repeat_penalty": 1.0},
        lambda text, c, prefix: letter_from_text(text, c),
    ),
    "json": Method(
        "json",
        lambda c, room: {"max_tokens": 24, "json_schema": answer_schema(c)},
        lambda text, c, prefix: letter_from_json(text, c),
    ),
    # A reply in words. A reasoning model thinks first wherever nothing closes its thinking (chat mode: DeepSeek's
    # reasoner cannot be told not to), so it gets the thinking budget as a reply does; only what it says after its
    # thinking is read.
    "regex": Method(
        "letter",
        lambda c, room: {"max_tokens": 16 + room, "thinking_budget": room},
        letter_from_text,
        words=True,
    ),
}


@dataclass
class Usage:
    """Adds up what every request of one score_next cost (a fallback may take more than one)."""

    prompt_tokens: int = 0
    evaluated: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    last_text: str = ""
    # A reply in words (the regex method) is a generation step: why it stopped and its thinking (Completion fields)
    generation: dict[str, Any] = field(default_factory=dict)

    def add(self, reply: Reply) -> Reply:
        self.prompt_tokens += reply.prompt_tokens
        self.evaluated += reply.prompt_tokens_evaluated
        self.completion_tokens += reply.completion_tokens
        self.last_text = reply.text
        return reply

    def said(self, reply: Reply, count: Callable[[Reply, str], int]) -> str:
        """The reply outside its thinking; the thinking, its tokens and why the reply stopped are kept."""
        self.generation = reasoned(reply.text, finish_reason=reply.finish_reason, reasoning=reply.reasoning)
        self.last_text = self.generation.pop("text")
        self.reasoning_tokens += count(reply, self.generation["reasoning"])
        return self.last_text

    def completion(
        self, letter: str, scores: dict[str, float], method: str, start: float, *, text: str | None = None
    ) -> Completion:
        return Completion(
            text=(letter if text is None else text).strip(),
            prompt_tokens=self.prompt_tokens,
            prompt_tokens_evaluated=self.evaluated,
            completion_tokens=self.completion_tokens,
            seconds=time.perf_counter() - start,
            scores=scores,
            method=method,
            reasoning_tokens=self.reasoning_tokens,
            **self.generation,
        )
