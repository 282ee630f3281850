"""Statistics for accuracies, paired comparisons and the answered letters."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from fractions import Fraction
from typing import NamedTuple

Z_95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval: well-behaved at small n and at 0% / 100%, unlike the normal approximation."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts b and c.

    Under the null each discordant pair is a fair coin, so this is a two-sided binomial test
    of min(b, c) against Binomial(b + c, 1/2).
    """
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


# -- paired comparisons over a grid ----------------------------------------------------------


class PairedCounts(NamedTuple):
    """Outcomes of two graphs on the same questions."""

    both_right: int
    right_to_wrong: int  # baseline right, other wrong
    wrong_to_right: int  # baseline wrong, other right
    both_wrong: int

    @property
    def n(self) -> int:
        return self.both_right + self.right_to_wrong + self.wrong_to_right + self.both_wrong

    @property
    def difference(self) -> float:
        """Accuracy of the other graph minus the baseline's."""
        return (self.wrong_to_right - self.right_to_wrong) / self.n if self.n else 0.0


def paired_counts(baseline: Sequence[bool], other: Sequence[bool]) -> PairedCounts:
    """The 2x2 table of paired outcomes; the discordant cells are the flips."""
    if len(baseline) != len(other):
        raise ValueError(f"paired outcomes must have equal lengths, got {len(baseline)} and {len(other)}")
    pairs = list(zip(baseline, other, strict=True))
    return PairedCounts(
        both_right=sum(b and o for b, o in pairs),
        right_to_wrong=sum(b and not o for b, o in pairs),
        wrong_to_right=sum(o and not b for b, o in pairs),
        both_wrong=sum(not b and not o for b, o in pairs),
    )


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between order statistics (numpy's default, Hyndman & Fan type 7)."""
    if not sorted_values:
        raise ValueError("quantile of no values")
    position = q * (len(sorted_values) - 1)
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (position - low) * (sorted_values[high] - sorted_values[low])


def paired_bootstrap_diff(
    baseline: Sequence[bool], other: Sequence[bool], *, resamples: int = 2000, seed: int = 0, confidence: float = 0.95
) -> tuple[float, float, float]:
    """Accuracy difference (other minus baseline) on the same questions, with a paired percentile bootstrap interval.

    Questions are resampled with replacement and both graphs' outcomes travel together, so the interval
    reflects how correlated the two graphs are on the same questions (an unpaired interval would be far wider).
    Seeded: the same inputs give the same interval. With no questions the interval is the whole range [-1, 1].
    """
    counts = paired_counts(baseline, other)
    if counts.n == 0:
        return (0.0, -1.0, 1.0)
    # Per-question difference: +1 wrong -> right, -1 right -> wrong, 0 otherwise. Resample it.
    deltas = [int(o) - int(b) for b, o in zip(baseline, other, strict=True)]
    rng = random.Random(seed)
    n = len(deltas)
    means = sorted(sum(rng.choices(deltas, k=n)) / n for _ in range(resamples))
    alpha = 1 - confidence
    return (counts.difference, quantile(means, alpha / 2), quantile(means, 1 - alpha / 2))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error control), in the input order.

    The i-th smallest p is multiplied by (m - i), made non-decreasing along the sorted order, capped at 1:
    reject where the adjusted p is below alpha. Valid under any dependence between the tests.
    """
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


# -- letter distribution (position bias) -----------------------------------------------------

MIN_EXPECTED = 5  # below this expected count the chi-square approximation is not trusted


class LetterBias(NamedTuple):
    statistic: float | None  # Pearson's chi-square; None when not tested
    p: float | None
    why: str = ""  # why there is no p


def letter_bias(answered: Sequence[str], shown: Sequence[Sequence[str]]) -> LetterBias:
    """Chi-square goodness of fit of the answered letters against a uniform guess over the options shown.

    answered[i] is the letter chosen on a question that showed the letters shown[i] (2 to 8 of them). Under the
    null every shown letter is equally likely, so a letter's expected count is the sum of 1 / len(shown[i]) over
    the questions that show it; a small p says the graph favours some positions. The null is a guesser's, not the
    answer key's: a perfect model fails it as far as the key is unbalanced, and the answers alone cannot tell
    position bias from a content preference that happens to sit on one letter (the option shuffle of
    `python -m eval.position_bias` can). With different numbers of options per question the test is conservative.
    No p (why says so) where any expected count is below MIN_EXPECTED: there the chi-square tail is unreliable.
    """
    from scipy.stats import chisquare  # imported here: it takes seconds, and most users of this module never need it

    if len(answered) != len(shown):
        raise ValueError(f"{len(answered)} answers for {len(shown)} questions")
    for letter, options in zip(answered, shown, strict=True):
        if letter not in options:
            raise ValueError(f"answer {letter!r} is not among the options shown ({', '.join(options)})")
    if not answered:
        return LetterBias(None, None, "no answers")
    letters = sorted({letter for options in shown for letter in options})
    # Exact fractions: 15 three-option questions expect exactly 5, where a float sum of 1/3 falls short of it.
    expected = [sum(Fraction(1, len(options)) for options in shown if letter in options) for letter in letters]
    if min(expected) < MIN_EXPECTED:
        return LetterBias(None, None, f"expected count < {MIN_EXPECTED}")
    observed = [sum(a == letter for a in answered) for letter in letters]
    statistic, p = chisquare(observed, [float(e) for e in expected])
    return LetterBias(float(statistic), float(p))
