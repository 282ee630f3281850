"""Small, dependency-free statistics for accuracies and paired comparisons."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
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
    pairs = list(zip(baseline, other))
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
    deltas = [int(o) - int(b) for b, o in zip(baseline, other)]
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


def chi_square_sf(x: float, df: int) -> float:
    """P(X >= x) for X ~ chi-square(df): the regularized upper incomplete gamma Q(df/2, x/2)."""
    if df <= 0:
        raise ValueError("degrees of freedom must be positive")
    if x <= 0:
        return 1.0
    a, z = df / 2, x / 2
    log_prefix = a * math.log(z) - z - math.lgamma(a)
    if z < a + 1:  # series for the lower function P, then Q = 1 - P
        term = total = 1 / a
        ap = a
        for _ in range(10_000):
            ap += 1
            term *= z / ap
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1 - total * math.exp(log_prefix))
    # Continued fraction for Q (modified Lentz), as in Numerical Recipes' gcf.
    tiny = 1e-300
    b = z + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return min(1.0, math.exp(log_prefix) * h)


def letter_bias(answered: Sequence[str], gold: Sequence[str], letters: Sequence[str] = ("A", "B", "C", "D", "E")) -> tuple[float, float]:
    """Chi-square goodness of fit of the letters a graph answered against the gold letters' distribution.

    Returns (statistic, p). A small p says the graph favours some positions beyond what the answer key
    explains. This reads the answers only; it does not permute options, so it cannot separate position
    bias from a content preference that happens to sit on one letter. The chi-square approximation is rough
    when expected counts fall below about 5 (few questions).
    """
    present = [letter for letter in letters if letter in gold]
    if not answered or len(present) < 2:
        return (0.0, 1.0)
    if any(a not in present for a in answered):  # a letter the key never uses: impossible under the null
        return (math.inf, 0.0)
    n, m = len(answered), len(gold)
    statistic = 0.0
    for letter in present:
        expected = n * sum(g == letter for g in gold) / m
        statistic += (sum(a == letter for a in answered) - expected) ** 2 / expected
    return (statistic, chi_square_sf(statistic, len(present) - 1))
