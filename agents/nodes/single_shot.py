"""single_shot_node: the baseline. One forward pass; no generation, so no parse failure is possible."""

from __future__ import annotations

from agents.backends.base import Backend
from agents.messages import choose_by_scores, question_messages
from agents.prompts import prompts_for


def single_shot_node(state: dict, *, backend: Backend, prompts: dict[str, str]) -> dict:
    question = state["question"]
    prompts = prompts_for(prompts, question)
    messages = question_messages(prompts["system"], question, prompts["answer"], state.get("passages", ()))
    return choose_by_scores(backend, "answer", messages, question, prompts["answer_prefix"])
