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
from eval.core.schema import Prediction, Question, RunConfig
from eval.core.shuffle import original_letter
from eval.core.stats import mcnemar_exact, wilson_interval
from eval.core.store import RunDirError, read_manifest, read_predictions
from eval.data import DataError, load_for_config, questions_sha256
from eval.results.analysis import regrade
from eval.results.report import _table

# The two runs may differ only in the option order: what it changes (the shown options and the key's letters) follows.
MAY_DIFFER = {"shuffle_seed", "data_sha256", "key_sha256"}


class PositionBiasError(Exception):
    pass


def _read(run: Path) -> tuple[RunConfig, dict[str, Question], dict[tuple[str, str], Prediction]]:
    """The run's config, its questions reloaded as the run read them, and its finished predictions graded by that
    key."""
    config = read_manifest(run)
    questions = {q.id: q for q in load_for_config(config).questions}
    if questions_sha256(questions.values()) != config.data_sha256:
        raise PositionBiasError(f"{run}: the questions in {config.data} changed since this run; re-run it")
    found = read_predictions(run)
    graded = {
        k: regrade(p, questions[k[1]])
        for k, p in found.items()
        if p.parse_status != "error" and k[1] in questions and not questions[k[1]].multi  # single-answer, as headlines
    }
    return config, questions, graded


def compare(original: Path, shuffled: Path) -> str:
    base_config, _, base = _read(original)
    config, questions, moved = _read(shuffled)
    if config.shuffle_seed is None or base_config.shuffle_seed is not None:
        raise PositionBiasError("the second run must be the one with --shuffle-options, the first without")
    if changed := sorted(
        k for k in RunConfig.model_fields if k not in MAY_DIFFER and getattr(base_config, k) != getattr(config, k)
    ):
        raise PositionBiasError(f"the two runs differ in more than the option order (changed: {', '.join(changed)})")
    rows = []
    for graph in config.graphs:
        keys = [k for k in moved if k[0] == graph and k in base]
        changed_n = sum(
            original_letter(moved[k].answer, questions[k[1]], config.shuffle_seed) != base[k].answer for k in keys
        )
        low, high = wilson_interval(changed_n, len(keys))
        b = sum(base[k].correct and not moved[k].correct for k in keys)
        c = sum(moved[k].correct and not base[k].correct for k in keys)
        acc = lambda preds: f"{100 * sum(p.correct for p in preds) / max(1, len(preds)):.1f}%"  # noqa: E731
        rows.append(
            [
                graph,
                len(keys),
                f"{changed_n} ({100 * changed_n / max(1, len(keys)):.1f}% [{100 * low:.1f}–{100 * high:.1f}])",
                acc([base[k] for k in keys]),
                acc([moved[k] for k in keys]),
                f"{mcnemar_exact(b, c):.3g}",
            ]
        )
    header = ["graph", "n", "chosen option changed [95% CI]", "accuracy original", "accuracy shuffled", "McNemar p"]
    return f"# Position bias (shuffle seed {config.shuffle_seed})\n\n" + _table(header, rows) + "\n"


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
