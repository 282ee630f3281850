"""extract_answer: read draft and critique, commit to one letter by next-token scores (constrained to the options)."""

from __future__ import annotations

from agents.backends.base import Backend
from agents.messages import choose_by_scores, follow_up
from agents.prompts import prompts_for


def extract_answer(state: dict, *, backend: Backend, prompts: dict[str, str]) -> dict:
    prompts = prompts_for(prompts, state["question"])
    messages = follow_up(state["messages"], state["critique"], prompts["extract"])
    return choose_by_scores(backend, "extract", messages, state["question"], prompts["answer_prefix"])
