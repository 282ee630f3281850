"""Option shuffling for position-bias checks: a seeded permutation per question, and the way back."""

from __future__ import annotations

import random

from eval.schema import LETTERS, Question


def option_order(question: Question, seed: int) -> str:
    """order[i] is the original letter now shown at position i ("CAEBD": new A is old C ...)."""
    letters = list(question.options)
    random.Random(f"{seed}:{question.id}").shuffle(letters)  # per question, independent of selection order
    return "".join(letters)


def shuffle_options(question: Question, seed: int) -> Question:
    order = option_order(question, seed)
    new = dict(zip(question.options, (question.options[old] for old in order), strict=True))
    return question.model_copy(update={"options": new, "answer": LETTERS[order.index(question.answer)]})


def original_letter(answer: str | None, question: Question, seed: int) -> str | None:
    """The original letter of the option a shuffled run chose."""
    if answer is None:
        return None
    return option_order(question, seed)[LETTERS.index(answer)]
