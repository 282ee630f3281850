"""Committing to one option letter: by next-token scores (never fails) or by parsing free text."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from agents.backend import Backend
from agents.messages import trace_step
from eval.schema import Message

# "答案：C", "建议答案: C", "Answer: (C)", "最终答案为C", "答案选B", "答案是：A" ... the last such mention wins.
_ANSWER = re.compile(r"(?:答案|answer)\s*(?:应选|应为|是|为|选|is)?\s*[:：]?\s*[（(\[【]?\s*([A-E])(?![A-Za-z])", re.IGNORECASE)


def parse_letter(text: str, letters: Sequence[str]) -> str | None:
    """The option letter a free-text answer commits to, or None when it names none of `letters`."""
    found = [m.group(1).upper() for m in _ANSWER.finditer(text)]
    found = [letter for letter in found if letter in letters]
    return found[-1] if found else None


def best_letter(scores: dict[str, float]) -> str | None:
    finite = {k: v for k, v in scores.items() if math.isfinite(v)}
    return max(finite, key=finite.__getitem__) if finite else None


def choose_by_scores(backend: Backend, node: str, messages: Sequence[Message], letters: Sequence[str], prefix: str) -> dict:
    """One forward pass; the answer is the option letter with the highest next-token log-probability.

    Returns the graph-state update (answer, method, trace step).
    """
    completion = backend.score_next(messages, letters, assistant_prefix=prefix)
    assert completion.scores is not None
    step = trace_step(node, messages, completion)
    return {"answer": best_letter(completion.scores), "answer_method": completion.method, "trace": [step]}
