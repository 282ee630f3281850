"""revise_node: the drafter rewrites its answer in the light of the critique (reflect with --rounds > 1)."""

from __future__ import annotations

from agents.answer import parse_answer
from agents.backends.base import Backend
from agents.messages import follow_up, trace_step
from agents.prompts import prompts_for


def revise_node(state: dict, *, backend: Backend, prompts: dict[str, str], max_tokens: int) -> dict:
    prompts = prompts_for(prompts, state["question"])
    messages = follow_up(state["messages"], state["critique"], prompts["revise"])
    completion = backend.chat(messages, max_tokens=max_tokens, assistant_prefix=prompts["draft_prefix"])
    return {
        "messages": messages,
        "draft": completion.text,
        "proposal": parse_answer(completion.text, state["question"]),
        "revisions": state.get("revisions", 0) + 1,
        "trace": [trace_step("revise", messages, completion)],
    }
