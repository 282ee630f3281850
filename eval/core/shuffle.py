"""Option orders for position-bias checks: a seeded permutation per question (--shuffle-options), every rotation
of the options (--circular), and the way back to the original letters."""

from __future__ import annotations

import random

from eval.core.schema import LETTERS, ROTATION, Question


def option_order(question: Question, seed: int | str) -> str:
    """order[i] is the original letter now shown at position i ("CAEBD": new A is old C ...)."""
    letters = list(question.options)
    random.Random(f"{seed}:{question.id}").shuffle(letters)  # per question, independent of selection order
    return "".join(letters)


def reorder(question: Question, order: str) -> Question:
    """The question showing at position i the original option order[i] (the key moves with its option; every
    letter of a multi-answer key does)."""
    new = dict(zip(question.options, (question.options[old] for old in order), strict=True))
    answer = "".join(sorted(LETTERS[order.index(letter)] for letter in question.answer))
    return question.model_copy(update={"options": new, "answer": answer})


def back(answer: str | None, order: str) -> str | None:
    """The original letters of an answer given under `order` (one letter, or a multi-answer set, kept sorted)."""
    return None if answer is None else "".join(sorted(order[LETTERS.index(letter)] for letter in answer))


def shuffle_options(question: Question, seed: int | str) -> Question:
    return reorder(question, option_order(question, seed))


def original_letter(answer: str | None, question: Question, seed: int | str) -> str | None:
    """The original letter of the option a shuffled run chose."""
    return back(answer, option_order(question, seed))


def rotate(question: Question, r: int) -> Question:
    """The question with its options rotated by r: position i shows the original option (i + r) mod n."""
    if r == 0:
        return question
    old = "".join(question.letters)
    turned = reorder(question, old[r:] + old[:r])
    return turned.model_copy(update={"id": f"{question.id}{ROTATION}{r}"})


def rotations(question: Question) -> list[Question]:
    """Every rotation of the options, the original order first (OpenCompass's CircularEval)."""
    return [rotate(question, r) for r in range(len(question.options))]


def unrotated_letter(answer: str | None, n_options: int, r: int) -> str | None:
    """The original letter(s) of what a rotated question's answer chose."""
    order = "".join(LETTERS[:n_options])
    return back(answer, order[r:] + order[:r])
