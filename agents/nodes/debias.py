"""PriDe (Zheng et al., 2024, "Large Language Models Are Not Robust Multiple Choice Selectors"): the model's prior
over option positions, estimated from a few calibration questions asked under every rotation of their options, and
divided out of its next-token probabilities.

The observed probability of the option at position i factors as prior(i) x P(content); asked under every
rotation, each content visits every position once, so the mean log-probability of each position over the
rotations is the log prior up to a constant. Priors are averaged over the calibration questions (per option
count), as probabilities.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from scipy.special import logsumexp

from agents.backends.base import Backend, BackendError
from agents.messages import choose_by_scores, question_messages, trace_step
from agents.nodes.retrieve import Retrieval, retrieve_node
from agents.prompts import prompts_for
from eval.core.schema import LETTERS, Question, TraceStep
from eval.core.shuffle import rotations

FLOOR = -30.0  # a letter a server did not return among its top log-probabilities: nearly impossible, not -inf


def log_probs(scores: Mapping[str, float], letters: Sequence[str]) -> list[float]:
    """The letters' log-probabilities renormalised over the options (position order)."""
    raw = [max(scores.get(letter, FLOOR), FLOOR) if math.isfinite(scores.get(letter, FLOOR)) else FLOOR
           for letter in letters]  # fmt: skip
    total = float(logsumexp(raw))
    return [x - total for x in raw]


def position_prior(rotated: Sequence[Sequence[float]]) -> list[float]:
    """log prior per position from one question's log-probabilities under each rotation (rotated[r][i])."""
    n = len(rotated[0])
    mean = [sum(r[i] for r in rotated) / len(rotated) for i in range(n)]
    return log_probs(dict(zip(LETTERS, mean, strict=False)), LETTERS[:n])


def average_prior(priors: Sequence[Sequence[float]]) -> list[float]:
    """The calibration questions' priors averaged as probabilities, as a log prior."""
    n = len(priors[0])
    return [float(logsumexp([p[i] for p in priors])) - math.log(len(priors)) for i in range(n)]


@dataclass
class Calibration:
    """Priors by option count, and each calibration question's steps and rotated log-probabilities."""

    priors: dict[int, list[float]] = field(default_factory=dict)
    asked: dict[str, tuple[list[TraceStep], list[list[float]]]] = field(default_factory=dict)


class NoProbabilities(BackendError):
    """The backend committed to a letter without next-token probabilities (a server's grammar, JSON or text)."""


def calibrate(
    backend: Backend, prompts: dict, questions: Sequence[Question], retrieval: Retrieval | None = None
) -> Calibration:
    """Ask each calibration question under every rotation of its options (with its retrieved passages, when the
    graph retrieves); estimate the priors."""
    calibration = Calibration()
    by_count: dict[int, list[list[float]]] = {}
    for question in questions:
        steps, rotated, passages = [], [], []
        if retrieval is not None:
            found = retrieve_node({"question": question}, retrieval=retrieval, backend=backend)
            steps, passages = found["trace"], found["passages"]
        for turned in rotations(question):
            messages = question_messages(prompts["system"], turned, prompts["answer"], passages)
            completion = backend.score_next(messages, turned.letters, assistant_prefix=prompts["answer_prefix"])
            if completion.method != "next_token":
                raise NoProbabilities(
                    f"pride needs next-token log-probabilities, but the backend committed by {completion.method}: "
                    "use --scoring probabilities with a server that returns them"
                )
            steps.append(trace_step("calibrate", messages, completion))
            rotated.append(log_probs(completion.scores or {}, turned.letters))
        calibration.asked[question.id] = (steps, rotated)
        by_count.setdefault(len(question.options), []).append(position_prior(rotated))
    calibration.priors = {n: average_prior(priors) for n, priors in by_count.items()}
    return calibration


def debiased_node(state: dict, *, backend: Backend, prompts: dict, calibration: Calibration) -> dict:
    """The option with the highest log-probability less its position's log prior. A calibration question is
    answered from all its rotations (each content's mean debiased log-probability), at no further call."""
    question = state["question"]
    if question.multi:  # a prior over single positions says nothing about sets of them: answered as single does
        prompts = prompts_for(prompts, question)
        chosen = choose_by_scores(backend, "answer", question_messages(prompts["system"], question, prompts["answer"],
                                  state.get("passages", ())), question, prompts["answer_prefix"])  # fmt: skip
        return chosen | {"prior": None}
    letters = question.letters
    prior = calibration.priors.get(len(letters))
    if question.id in calibration.asked:
        steps, rotated = calibration.asked[question.id]
        n = len(letters)
        assert prior is not None  # every calibration question added to its option count's prior
        # Rotation r shows original option (i + r) mod n at position i.
        content = [sum(rotated[r][(j - r) % n] - prior[(j - r) % n] for r in range(n)) / n for j in range(n)]
        # Contents the rotations cannot tell apart (equal to rounding) go to the original order's choice.
        best = max(range(n), key=lambda j: (round(content[j], 9), rotated[0][j]))
        return {
            "answer": letters[best],
            "draft_answer": letters[max(range(n), key=rotated[0].__getitem__)],  # the original order, not debiased
            "answer_method": "next_token",
            "trace": steps,
            "prior": prior,
        }
    messages = question_messages(prompts["system"], question, prompts["answer"], state.get("passages", ()))
    completion = backend.score_next(messages, letters, assistant_prefix=prompts["answer_prefix"])
    step = trace_step("answer", messages, completion)
    scores = completion.scores or {}
    if not any(math.isfinite(scores.get(c, -math.inf)) for c in letters):
        return {"answer": None, "trace": [step], "prior": prior}  # no option among the probabilities: unparsed
    observed = log_probs(scores, letters)
    adjusted = [o - p for o, p in zip(observed, prior, strict=True)] if prior else observed
    best = max(range(len(letters)), key=adjusted.__getitem__)
    return {
        "answer": letters[best],
        "draft_answer": letters[max(range(len(letters)), key=observed.__getitem__)],  # before debiasing
        "answer_method": completion.method,
        "trace": [step],
        "prior": prior,
    }
