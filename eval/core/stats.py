"""Statistics for accuracies, paired comparisons, rankings, power, calibration and the answered letters.

scipy.stats does the textbook parts (binomial test, Wilson interval, bootstrap, chi-square, Spearman, Kendall,
Mann-Whitney); what is written here is what it has no function for: ranks with bootstrap intervals, the exact power
of McNemar's test, and calibration of option probabilities. scipy.stats takes seconds to import, so each function
imports what it needs.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from fractions import Fraction
from typing import NamedTuple

import numpy as np


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval: well-behaved at small n and at 0% / 100%, unlike the normal approximation."""
    from scipy.stats import binomtest

    if n == 0:
        return (0.0, 1.0)
    ci = binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return (float(ci.low), float(ci.high))


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts b and c.

    Under the null each discordant pair is a fair coin, so this is a two-sided binomial test
    of min(b, c) against Binomial(b + c, 1/2).
    """
    from scipy.stats import binomtest

    return 1.0 if b + c == 0 else float(binomtest(min(b, c), b + c, 0.5).pvalue)


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


def paired_bootstrap_diff(
    baseline: Sequence[bool], other: Sequence[bool], *, resamples: int = 2000, seed: int = 0, confidence: float = 0.95
) -> tuple[float, float, float]:
    """Accuracy difference (other minus baseline) on the same questions, with a paired percentile bootstrap interval.

    Questions are resampled with replacement and both graphs' outcomes travel together, so the interval
    reflects how correlated the two graphs are on the same questions (an unpaired interval would be far wider).
    Seeded: the same inputs give the same interval. With no questions the interval is the whole range [-1, 1].
    """
    from scipy.stats import DegenerateDataWarning, bootstrap

    counts = paired_counts(baseline, other)
    if counts.n == 0:
        return (0.0, -1.0, 1.0)
    # Per-question difference: +1 wrong -> right, -1 right -> wrong, 0 otherwise. Resample it.
    deltas = np.array([int(o) - int(b) for b, o in zip(baseline, other, strict=True)], dtype=float)
    if counts.n == 1:  # every resample is that one question (scipy's bootstrap wants two or more)
        return (counts.difference, counts.difference, counts.difference)
    with warnings.catch_warnings():  # identical outcomes: every resample is 0, which is the right interval
        warnings.simplefilter("ignore", DegenerateDataWarning)
        ci = bootstrap(
            (deltas,),
            np.mean,
            n_resamples=resamples,
            method="percentile",
            confidence_level=confidence,
            rng=np.random.default_rng(seed),
        ).confidence_interval
    return (counts.difference, float(ci.low), float(ci.high))


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


# -- rankings ---------------------------------------------------------------------------------


class Rank(NamedTuple):
    rank: int  # 1 = most accurate; ties share the better rank
    low: int  # 95% bootstrap interval of the rank
    high: int


def rank_intervals(
    correct: Sequence[Sequence[bool]], *, resamples: int = 2000, seed: int = 0, confidence: float = 0.95
) -> list[Rank]:
    """Each row's rank by accuracy, with a bootstrap interval: the questions are resampled (every row's outcomes on
    a question travel together), the rows ranked in each resample, and the rank's percentile interval taken, the way
    arena leaderboards give a rank's uncertainty. `correct`: one row per entry, one column per question (the same
    questions in every row)."""
    from scipy.stats import rankdata

    outcomes = np.asarray(correct, dtype=float)
    if outcomes.ndim != 2 or outcomes.shape[0] == 0:
        return []
    m, n = outcomes.shape
    rank = rankdata(-outcomes.mean(axis=1), method="min").astype(int)
    if n == 0:
        return [Rank(int(r), 1, m) for r in rank]
    # A resample of the questions is how many times each is drawn: multinomial counts, one row per resample.
    weights = np.random.default_rng(seed).multinomial(n, np.full(n, 1 / n), size=resamples)
    ranks = rankdata(-(outcomes @ weights.T), axis=0, method="min")  # entries x resamples
    alpha = 1 - confidence
    low = np.quantile(ranks, alpha / 2, axis=1, method="lower")
    high = np.quantile(ranks, 1 - alpha / 2, axis=1, method="higher")
    return [Rank(int(r), int(lo), int(hi)) for r, lo, hi in zip(rank, low, high, strict=True)]


MIN_BOOTSTRAP_UNITS = 5


class Correlation(NamedTuple):
    rho: float | None  # None with fewer than 3 units or a constant variable
    p: float | None  # permutation test (exact when every pairing can be enumerated)
    ci_low: float | None  # percentile bootstrap over the units
    ci_high: float | None
    n: int


def spearman(
    x: Sequence[float], y: Sequence[float], *, resamples: int = 2000, seed: int = 0, confidence: float = 0.95
) -> Correlation:
    """Spearman's rho between two variables measured on the same units (models), with a permutation p and a bootstrap
    interval over the units. Below MIN_BOOTSTRAP_UNITS units there is no interval: resampling 3 or 4 models mostly
    redraws the same ordering, so it would claim a certainty the data do not have (3 models in order give [+1, +1]).
    Resamples in which either variable is constant have no rho and are left out (scipy's bootstrap would return nan
    for all)."""
    from scipy.stats import ConstantInputWarning, permutation_test, spearmanr

    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = len(xs)
    if n < 3 or np.ptp(xs) == 0 or np.ptp(ys) == 0:
        return Correlation(None, None, None, None, n)
    rho = float(spearmanr(xs, ys).statistic)
    # Permuting one variable is enough (and exact up to 7 models, 5040 pairings): the other's order is arbitrary.
    test = permutation_test(
        (ys,),
        lambda b: spearmanr(xs, b).statistic,
        permutation_type="pairings",
        n_resamples=9999,
        rng=np.random.default_rng(seed),
    )
    if n < MIN_BOOTSTRAP_UNITS:
        return Correlation(rho, float(test.pvalue), None, None, n)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(resamples, n))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConstantInputWarning)
        boot = np.array([spearmanr(xs[i], ys[i]).statistic for i in draws], dtype=float)
    boot = boot[np.isfinite(boot)]
    alpha = 1 - confidence
    low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2]) if boot.size else (None, None)
    return Correlation(
        rho, float(test.pvalue), None if low is None else float(low), None if high is None else float(high), n
    )


# -- power ------------------------------------------------------------------------------------


def mcnemar_power(n: int, discordance: float, difference: float, alpha: float = 0.05) -> float:
    """Exact power of the two-sided exact McNemar test (mcnemar_exact) at level alpha.

    n paired questions, of which a share `discordance` are discordant (one right, the other wrong) and the true
    accuracy difference is `difference` (so the discordant pairs split (discordance ± difference) / 2). Exact: the
    number of discordant pairs m is Binomial(n, discordance); given m, the test rejects when the smaller count is at
    most the largest k with P(Binomial(m, 1/2) <= k) <= alpha / 2.
    """
    from scipy.stats import binom

    d = abs(difference)
    if n <= 0 or discordance <= 0 or d > discordance:
        return 0.0 if n <= 0 or discordance <= 0 else float("nan")
    m = np.arange(n + 1)
    k = binom.ppf(alpha / 2, m, 0.5)
    k = np.where(binom.cdf(k, m, 0.5) > alpha / 2, k - 1, k)  # the largest k whose tail is within alpha / 2
    share = (discordance + d) / (2 * discordance)  # of the discordant pairs, those favouring the better one
    reject = np.where(k >= 0, binom.cdf(k, m, 1 - share) + binom.sf(m - k - 1, m, 1 - share), 0.0)
    return float(np.sum(binom.pmf(m, n, min(discordance, 1.0)) * reject))


def min_detectable_difference(n: int, discordance: float, alpha: float = 0.05, power: float = 0.8) -> float | None:
    """The smallest accuracy difference McNemar's test on n paired questions detects with this power, when a share
    `discordance` of them are discordant; None when no difference up to the discordance itself is detectable."""
    if n <= 0 or discordance <= 0 or mcnemar_power(n, discordance, discordance, alpha) < power:
        return None
    low, high = 0.0, discordance
    for _ in range(40):  # power rises with the difference: bisect to well under a tenth of a point
        mid = (low + high) / 2
        low, high = (low, mid) if mcnemar_power(n, discordance, mid, alpha) >= power else (mid, high)
    return high


def questions_needed(difference: float, discordance: float, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """The fewest paired questions for McNemar's test to detect `difference` with this power at this discordance;
    None when the difference exceeds the discordance (impossible). The exact test's power saw-tooths in n, so this
    is the first n at which the power reaches the target."""
    if not 0 < abs(difference) <= discordance <= 1:
        return None
    high = 8
    while mcnemar_power(high, discordance, difference, alpha) < power:
        high *= 2
        if high > 10_000_000:
            return None
    low = high // 2
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if mcnemar_power(mid, discordance, difference, alpha) >= power else (mid, high)
    return high


# -- calibration ------------------------------------------------------------------------------


class Bin(NamedTuple):
    low: float
    high: float
    n: int
    confidence: float  # mean top probability in the bin
    accuracy: float


class Coverage(NamedTuple):
    threshold: float  # answer only when the top option's probability is at least this
    answered: int
    correct: int


class Calibration(NamedTuple):
    n: int
    ece: float  # expected calibration error over equal-width bins of the top probability
    brier: float  # multi-class Brier score: mean over questions of the squared error summed over the options
    bins: list[Bin]
    coverage: list[Coverage]


def calibration(
    probabilities: Sequence[Sequence[float]],
    gold: Sequence[int],
    *,
    bins: int = 10,
    thresholds: Sequence[float] = (0.0, 0.3, 0.5, 0.7, 0.9),
) -> Calibration:
    """How far a model's option probabilities can be trusted. probabilities[i]: question i's probability for each of
    its options (summing to 1); gold[i]: the index of its right option. The model's answer is its most probable
    option and its confidence that probability."""
    if len(probabilities) != len(gold):
        raise ValueError(f"{len(probabilities)} probability vectors for {len(gold)} answers")
    if not gold:
        return Calibration(0, 0.0, 0.0, [], [])
    top = np.array([max(p) for p in probabilities])
    right = np.array([int(np.argmax(p)) == g for p, g in zip(probabilities, gold, strict=True)])
    brier = float(
        np.mean([sum((q - (i == g)) ** 2 for i, q in enumerate(p)) for p, g in zip(probabilities, gold, strict=True)])
    )
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, top, side="left") - 1, 0, bins - 1)  # (low, high]; 0 in the first bin
    table = [
        Bin(
            float(edges[b]),
            float(edges[b + 1]),
            int(inside.sum()),
            float(top[inside].mean()),
            float(right[inside].mean()),
        )
        for b in range(bins)
        if (inside := which == b).any()
    ]
    ece = sum(b.n / len(gold) * abs(b.accuracy - b.confidence) for b in table)
    coverage = [Coverage(t, int((top >= t).sum()), int(right[top >= t].sum())) for t in thresholds]
    return Calibration(len(gold), float(ece), brier, table, coverage)
