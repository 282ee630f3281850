"""single_shot_node: the baseline. One forward pass; no generation, so no parse failure is possible."""

from __future__ import annotations

from agents.answer import choose_by_scores
from agents.backend import Backend


def single_shot_node(state: dict, *, backend: Backend, prompts: dict[str, str]) -> dict:
    return choose_by_scores(backend, "answer", state["question"], prompts, prompts["answer"])
