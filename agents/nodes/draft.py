"""draft_node: reason step by step and propose an answer."""

from __future__ import annotations

from agents.answer import parse_answer
from agents.backends.base import Backend
from agents.messages import question_messages, trace_step
from agents.prompts import prompts_for


def draft_node(state: dict, *, backend: Backend, prompts: dict[str, str], max_tokens: int) -> dict:
    question = state["question"]
    prompts = prompts_for(prompts, question)
    messages = question_messages(prompts["system"], question, prompts["draft"], state.get("passages", ()))
    completion = backend.chat(messages, max_tokens=max_tokens, assistant_prefix=prompts["draft_prefix"])
    letter = parse_answer(completion.text, question)
    return {
        "messages": messages,
        "draft": completion.text,
        "draft_answer": letter,
        "proposal": letter,
        "revisions": 0,
        "trace": [trace_step("draft", messages, completion)],
    }
