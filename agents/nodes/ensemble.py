"""ensemble_node: Medprompt's choice-shuffle ensemble. The question is answered under several orders of its options
(the original first), each answer mapped back to the original letters, and the majority taken."""

from __future__ import annotations

import math
import random

from agents.answer import parse_answer
from agents.backends.base import Backend
from agents.messages import choose_by_scores, few_shot_messages, trace_step
from agents.nodes.vote import majority
from agents.prompts import prompts_for
from eval.core.schema import Question
from eval.core.shuffle import back, reorder


def option_orders(question: Question, k: int, seed: int) -> list[str]:
    """k distinct orders of the options (as many as there are, if fewer), the original first, then seeded shuffles
    drawn per question."""
    original = "".join(question.letters)
    orders = [original]
    rng = random.Random(f"{seed}:{question.id}:ensemble")
    while len(orders) < min(k, math.factorial(len(original))):
        letters = list(original)
        rng.shuffle(letters)
        if (order := "".join(letters)) not in orders:
            orders.append(order)
    return orders


def ensemble_node(
    state: dict, *, backend: Backend, prompts: dict, shuffles: int, reasoning: bool, max_tokens: int, seed: int
) -> dict:
    """reasoning: each order answered by a greedy chain of thought (letter parsed); else by next-token scores."""
    question = state["question"]
    prompts = prompts_for(prompts, question)
    shots = state.get("examples", [])
    votes: list[str | None] = []
    steps = []
    method = "regex"
    orders = option_orders(question, shuffles, seed)
    for order in orders:
        shown = reorder(question, order)
        instruction = prompts["instruction"] if reasoning else prompts["answer"]
        messages = few_shot_messages(prompts["system"], shots, shown, instruction, state.get("passages", ()))
        if reasoning:
            completion = backend.chat(messages, max_tokens=max_tokens, assistant_prefix=prompts["prefix"])
            letter, step = parse_answer(completion.text, shown), trace_step("answer", messages, completion)
        else:
            chosen = choose_by_scores(backend, "answer", messages, shown, prompts["answer_prefix"])
            letter, method, (step,) = chosen["answer"], chosen["answer_method"], chosen["trace"]
        steps.append(step)
        votes.append(back(letter, order))
    return {
        "votes": votes,
        "option_orders": orders,
        "draft_answer": votes[0],  # the original order's answer: what the ensemble changed
        "answer": majority(votes),
        "answer_method": method,
        "trace": steps,
    }
