"""critique_node: a senior colleague checks the draft for missed findings, wrong reasoning, a better option."""

from __future__ import annotations

from agents.backends.base import Backend
from agents.messages import follow_up, trace_step
from agents.prompts import prompts_for


def critique_node(state: dict, *, backend: Backend, prompts: dict[str, str], max_tokens: int) -> dict:
    prompts = prompts_for(prompts, state["question"])
    messages = follow_up(state["messages"], state["draft"], prompts["critique"])
    completion = backend.chat(messages, max_tokens=max_tokens, assistant_prefix=prompts["critique_prefix"])
    return {"messages": messages, "critique": completion.text, "trace": [trace_step("critique", messages, completion)]}
