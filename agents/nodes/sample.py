"""sample_node: k chains of thought for one question, sampled at a temperature, each from its own seed."""

from __future__ import annotations

from agents.answer import parse_answer
from agents.backends.base import Backend
from agents.messages import question_messages, trace_step
from agents.prompts import prompts_for

SEED_STRIDE = 1000  # run seed s draws sample i from seed s*1000+i: distinct within a question and across run seeds


def sample_seeds(seed: int, k: int) -> list[int]:
    """The seeds of a run's k samples (the same for every question: each call reseeds the sampler)."""
    if not 1 <= k <= SEED_STRIDE:
        raise ValueError(f"k must be between 1 and {SEED_STRIDE}, got {k}")
    return [seed * SEED_STRIDE + i for i in range(k)]


def sample_node(
    state: dict, *, backend: Backend, prompts: dict, max_tokens: int, k: int, temperature: float, seed: int
) -> dict:
    """k drafts of the same prompt, one trace step each; every draft after the first reuses the cached prompt.

    The drafts run one after another inside this node, never as parallel graph branches: one backend (one
    llama.cpp context) must not be called concurrently.
    """
    question = state["question"]
    prompts = prompts_for(prompts, question)
    messages = question_messages(prompts["system"], question, prompts["instruction"], state.get("passages", ()))
    steps, votes = [], []
    for draw in sample_seeds(seed, k):
        completion = backend.chat(
            messages, max_tokens=max_tokens, assistant_prefix=prompts["prefix"], temperature=temperature, seed=draw
        )
        steps.append(trace_step("sample", messages, completion))
        votes.append(parse_answer(completion.text, question))
    # The first draft is what one sampled chain of thought would have answered: the report shows what voting changed.
    return {"messages": messages, "votes": votes, "draft_answer": votes[0], "trace": steps}
