"""extract_answer: read draft and critique, commit to one letter by next-token scores (constrained to the options)."""

from __future__ import annotations

from agents.answer import choose_by_scores
from agents.backend import Backend


def extract_answer(state: dict, *, backend: Backend, prompts: dict[str, str]) -> dict:
    instruction = prompts["extract"].format(draft=state["draft"], critique=state["critique"])
    return choose_by_scores(backend, "extract", state["question"], prompts, instruction)
