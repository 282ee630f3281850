"""critique_node: a senior colleague checks the draft for missed findings, wrong reasoning, a better option."""

from __future__ import annotations

from agents.backend import Backend
from agents.messages import question_messages, trace_step


def critique_node(state: dict, *, backend: Backend, prompts: dict[str, str], max_tokens: int) -> dict:
    messages = question_messages(prompts["system"], state["question"], prompts["critique"].format(draft=state["draft"]))
    completion = backend.chat(messages, max_tokens=max_tokens)
    return {"critique": completion.text, "trace": [trace_step("critique", messages, completion)]}
