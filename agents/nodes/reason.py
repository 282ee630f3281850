"""reason_node: one chain of thought that ends by naming a letter; the letter is parsed from the text."""

from __future__ import annotations

from agents.answer import parse_answer
from agents.backends.base import Backend
from agents.messages import question_messages, trace_step
from agents.prompts import prompts_for


def reason_node(state: dict, *, backend: Backend, prompts: dict, max_tokens: int) -> dict:
    """Greedy generation primed with the variant's `prefix`; no letter in the reply leaves the answer unparsed."""
    question = state["question"]
    prompts = prompts_for(prompts, question)
    messages = question_messages(prompts["system"], question, prompts["instruction"], state.get("passages", ()))
    completion = backend.chat(messages, max_tokens=max_tokens, assistant_prefix=prompts["prefix"])
    return {
        "messages": messages,
        "draft": completion.text,
        "answer": parse_answer(completion.text, question),
        "answer_method": "regex",
        "trace": [trace_step("reason", messages, completion)],
    }
