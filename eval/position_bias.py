"""python -m eval.position_bias ORIGINAL_RUN SHUFFLED_RUN: how often the chosen option changes when only the order does.

Run the same command twice, the second time with --shuffle-options SEED; this maps the shuffled run's letters back
to the original options and reports, per graph, how often the chosen *content* changed (a model without position
bias changes nothing), with a Wilson interval, and both runs' accuracy.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from eval.core import log as logsetup
from eval.core.flags import HelpFormatter
from eval.core.schema import Prediction, RunConfig
from eval.core.shuffle import original_letter
from eval.core.store import RunDirError, read_manifest
from eval.data import DataError
from eval.render.fmt import p_value, pct, table
from eval.results.analysis import Pairing, accuracy, compare_family, share
from eval.results.graded import GradedRun, read_graded

# The two runs may differ only in the option order: what it changes (the shown options and the key's letters) follows.
MAY_DIFFER = {"shuffle_seed", "data_sha256", "key_sha256"}


class PositionBiasError(Exception):
    pass


def _read(run: Path) -> tuple[GradedRun, RunConfig]:
    """The run graded by its own key, its questions reloaded as it read them; and its manifest."""
    config = read_manifest(run)
    graded = read_graded(run, config=config)
    if graded.changed:
        raise PositionBiasError(f"{run}: the questions in {config.data} changed since this run; re-run it")
    return graded, config


def compare(original: Path, shuffled: Path) -> str:
    (base_run, base_config), (moved_run, config) = _read(original), _read(shuffled)
    if config.shuffle_seed is None or base_config.shuffle_seed is not None:
        raise PositionBiasError("the second run must be the one with --shuffle-options, the first without")
    if changed := sorted(
        k for k in RunConfig.model_fields if k not in MAY_DIFFER and getattr(base_config, k) != getattr(config, k)
    ):
        raise PositionBiasError(f"the two runs differ in more than the option order (changed: {', '.join(changed)})")
    # Per graph, the single-answer questions both runs answered (no error), as in the headlines.
    found = {}
    for graph in config.graphs:
        base, moved = scored(base_run.headline(graph)), scored(moved_run.headline(graph))
        found[graph] = (base, moved, [q for q in moved if q in base])
    comparisons = compare_family(Pairing(g, "original", moved, base, ids) for g, (base, moved, ids) in found.items())
    rows = []
    for (graph, (base, moved, ids)), c in zip(found.items(), comparisons, strict=True):
        questions = moved_run.questions
        changed_n = sum(
            original_letter(moved[q].answer, questions[q], config.shuffle_seed) != base[q].answer for q in ids
        )
        moved_share = share(changed_n, len(ids))  # with its Wilson interval
        rows.append(
            [
                graph,
                len(ids),
                f"{changed_n} ({pct(moved_share.accuracy)} "
                f"[{100 * moved_share.ci_low:.1f}–{100 * moved_share.ci_high:.1f}])",
                pct(accuracy(base[q] for q in ids).accuracy),
                pct(accuracy(moved[q] for q in ids).accuracy),
                p_value(c.mcnemar_p),
            ]
        )
    header = ["graph", "n", "chosen option changed [95% CI]", "accuracy original", "accuracy shuffled", "McNemar p"]
    return f"# Position bias (shuffle seed {config.shuffle_seed})\n\n" + table(header, rows) + "\n"


def scored(predictions: dict[str, Prediction]) -> dict[str, Prediction]:
    return {q: p for q, p in predictions.items() if p.parse_status != "error"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.position_bias", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("original", type=Path)
    p.add_argument("shuffled", type=Path)
    args = p.parse_args(argv)
    logsetup.configure(False)  # warnings (a torn last line) on stderr, not in the table
    try:
        print(compare(args.original, args.shuffled))
    except (PositionBiasError, RunDirError, DataError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
