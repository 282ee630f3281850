"""extract_answer: read draft and critique, commit to one letter by next-token scores (constrained to the options)."""

from __future__ import annotations

from agents.backends.base import Backend
from agents.messages import choose_by_scores, follow_up


def extract_answer(state: dict, *, backend: Backend, prompts: dict[str, str]) -> dict:
    messages = follow_up(state["messages"], state["critique"], prompts["extract"])
    return choose_by_scores(backend, "extract", messages, state["question"].letters, prompts["answer_prefix"])
