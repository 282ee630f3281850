"""python -m eval.agentic --graph reflect: run a chain and the single-shot baseline on the same questions.

Writes predictions (JSONL with full traces), a Markdown report and prints the comparison. The flags are
eval.api.RunSpec's fields; the work is eval.api.evaluate.
"""

from __future__ import annotations

import argparse
import sys

from eval.api import ERRORS, Interrupted, RunSpec, evaluate
from eval.core import log as logsetup
from eval.core.errors import fail
from eval.core.flags import HelpFormatter, add_flags, from_args


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m eval.agentic", description=__doc__, formatter_class=HelpFormatter)
    add_flags(p, RunSpec)
    p.add_argument("-v", "--verbose", action="store_true", help="log every prediction")
    return p


def parse_args(argv: list[str] | None = None) -> tuple[RunSpec, bool]:
    """The run's spec and whether to log every prediction."""
    p = parser()
    args = p.parse_args(argv)
    return from_args(p, RunSpec, args), args.verbose


def main(argv: list[str] | None = None) -> int:
    spec, verbose = parse_args(argv)
    logsetup.configure(verbose)
    try:
        result = evaluate(spec)
    except (*ERRORS, OSError) as e:  # bad input; a file that cannot be read or written, said as one line
        return fail(e)
    except Interrupted as e:
        print(
            f"\ninterrupted: finished predictions are saved; run the same command again to resume ({e.out})",
            file=sys.stderr,
        )
        return 130
    print(result.markdown)
    print(f"predictions: {result.predictions}\nreport: {result.out / 'report.md'}", file=sys.stderr)
    # Scripts and CI must notice an incomplete run: 1 when running again can help, 2 when only new input can.
    permanent = sum(g.permanent_errors for g in result.summary.graphs)
    if errors := sum(g.errors for g in result.summary.graphs) - permanent:
        print(
            f"{errors} predictions ended in an error (left out of the accuracies); run the same command again to "
            "retry them"
            + (f" ({permanent} more ended in a permanent error: retrying cannot help)" if permanent else ""),
            file=sys.stderr,
        )
        return 1
    if permanent:
        print(
            f"error: {permanent} predictions ended in a permanent error (left out of the accuracies; retrying cannot "
            "help): their prompts can never fit the context window; shorten those questions or raise --n-ctx",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
