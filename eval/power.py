"""python -m eval.power: how many questions a study needs, or what a study of n questions can detect.

Paired comparisons (two models, or two strategies, on the same questions) are decided by McNemar's exact test, whose
power depends on the difference and on the discordance: the share of questions exactly one of the two gets right
(from a pilot run, or a leaderboard's pair table; between two models of similar accuracy it is often 0.2-0.4).

    python -m eval.power --difference 0.05 --discordance 0.3    # questions needed to detect 5 points
    python -m eval.power --n 237 --discordance 0.25             # the smallest difference 237 questions detect
    python -m eval.power --accuracy 0.7 --half-width 0.05       # questions for a ±5-point interval on one accuracy

Power is computed exactly (eval.core.stats.mcnemar_power), not from a normal approximation, at level --alpha
(two-sided).
"""

from __future__ import annotations

import argparse
import sys

from eval.core.flags import HelpFormatter
from eval.core.stats import mcnemar_power, min_detectable_difference, questions_needed, wilson_interval


def interval_questions(accuracy: float, half_width: float, confidence: float = 0.95) -> int:
    """The fewest questions whose Wilson interval at this accuracy is at most ±half_width wide."""

    def width(n: int) -> float:
        low, high = wilson_interval(round(accuracy * n), n, confidence)
        return (high - low) / 2

    high = 2
    while width(high) > half_width:
        high *= 2
    low = high // 2
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if width(mid) <= half_width else (mid, high)
    return high


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.power", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--difference", type=float, help="accuracy difference to detect, e.g. 0.05 for 5 points")
    p.add_argument("--discordance", type=float, help="share of questions exactly one of the two gets right")
    p.add_argument("--n", type=int, help="paired questions available: print the smallest detectable difference")
    p.add_argument("--accuracy", type=float, help="expected accuracy of one model (with --half-width)")
    p.add_argument("--half-width", type=float, help="wanted half-width of its 95%% interval, e.g. 0.05")
    p.add_argument("--power", type=float, default=0.8, help="wanted power (default 0.8)")
    p.add_argument("--alpha", type=float, default=0.05, help="two-sided level (default 0.05)")
    args = p.parse_args(argv)
    for name in ("difference", "discordance", "accuracy", "half_width", "power", "alpha"):
        value = getattr(args, name)
        if value is not None and not (0 < value <= 1 if name == "discordance" else 0 < value < 1):
            p.error(f"--{name.replace('_', '-')} must be a proportion between 0 and 1, got {value}")
    if args.n is not None and args.n < 1:
        p.error(f"--n must be at least 1 question, got {args.n}")
    if args.accuracy is not None or args.half_width is not None:
        if args.accuracy is None or args.half_width is None:
            p.error("--accuracy and --half-width go together")
        n = interval_questions(args.accuracy, args.half_width, 1 - args.alpha)
        print(f"{n} questions give a {100 * (1 - args.alpha):g}% Wilson interval of at most ±{100 * args.half_width:g} "
              f"points at {100 * args.accuracy:g}% accuracy")  # fmt: skip
        return 0
    if args.discordance is None:
        p.error("give --discordance with --difference or --n (or --accuracy with --half-width)")
    if args.n is not None:
        mdd = min_detectable_difference(args.n, args.discordance, args.alpha, args.power)
        if mdd is None:
            print(f"{args.n} questions at discordance {args.discordance:g}: no difference is detectable with "
                  f"{100 * args.power:g}% power")  # fmt: skip
            return 0
        print(f"{args.n} paired questions at discordance {args.discordance:g} detect a difference of "
              f"±{100 * mdd:.1f} points with {100 * args.power:g}% power (two-sided α = {args.alpha:g}, exact "
              "McNemar)")  # fmt: skip
        return 0
    if args.difference is None:
        p.error("give --difference (to get the questions needed) or --n (to get the smallest detectable difference)")
    needed = questions_needed(args.difference, args.discordance, args.alpha, args.power)
    if needed is None:
        print(f"a difference of {args.difference:g} cannot occur at discordance {args.discordance:g} (it is at most "
              "the discordance)")  # fmt: skip
        return 2
    reached = mcnemar_power(needed, args.discordance, args.difference, args.alpha)
    print(f"{needed} paired questions detect a difference of {100 * args.difference:g} points at discordance "
          f"{args.discordance:g} with {100 * reached:.1f}% power (two-sided α = {args.alpha:g}, exact "
          "McNemar)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
