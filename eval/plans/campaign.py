"""Many evaluator runs, each in its own directory and each reused once it has finished: how the ablation grid and
the leaderboard run their cells.

A run is one call of eval.api.evaluate with the evaluator's flags, so it resumes on its own after a kill. When it
ends, a marker (MARKER) records its flags and whether every question has a result; the next invocation with the
same flags reuses a complete run without loading its model.
"""

from __future__ import annotations

import contextlib
import gc
import json
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from eval.api import ERRORS, RunSpec, evaluate
from eval.core.flags import parse
from eval.core.schema import RunConfig
from eval.core.store import finished, graph_predictions
from eval.plans.plan import MARKER, PlanError
from eval.render.board_table import write_outputs
from eval.results.board import Board, Leaderboard, analyse, run_argv


class Outcome(NamedTuple):
    status: int  # 0 done, 2 bad input or a model that would not load, 1 anything else
    reused: bool  # finished earlier with the same flags: not run again
    error: str = ""  # for a failed run: its one-line reason


def run_reused(
    argv: list[str],
    out: Path,
    record: dict,
    *,
    recheck: bool = False,
    verify: Callable[[RunConfig], None] | None = None,
) -> Outcome:
    """One evaluator run with `argv` (without --out) into `out`, resuming whatever it holds; reused as is when its
    marker says it finished with the same flags and `record`, unless `recheck`. `verify` checks the manifest of a run
    that ended (raising PlanError when the evaluator did not record what was asked)."""
    marker = out / MARKER
    record = {"argv": argv, **record}
    if not recheck and marker.exists():
        with contextlib.suppress(ValueError, OSError):
            if json.loads(marker.read_text(encoding="utf-8")) == {**record, "complete": True}:
                return Outcome(0, True)
    marker.unlink(missing_ok=True)
    spec = parse(RunSpec, [*argv, "--out", str(out)], prog="plan", error=PlanError)
    outcome = Outcome(0, False)
    try:
        evaluate(spec)
    except ERRORS as e:
        outcome = Outcome(2, False, str(e))
    except (KeyboardInterrupt, PlanError):
        raise
    except Exception as e:
        traceback.print_exc()
        outcome = Outcome(1, False, f"{type(e).__name__}: {e}")
    gc.collect()  # let go of this run's model before the next one loads
    if outcome.status != 0:  # say why where the leaderboard and the HTML report will look
        out.mkdir(parents=True, exist_ok=True)
        marker.write_text(
            json.dumps({**record, "complete": False, "error": outcome.error}, ensure_ascii=False, indent=1),
            encoding="utf-8",
        )
    else:
        config = RunConfig.model_validate_json((out / "manifest.json").read_text(encoding="utf-8"))
        if verify:
            verify(config)
        complete = finished(config, graph_predictions(out, config.graphs[0]))
        marker.write_text(json.dumps({**record, "complete": complete}, ensure_ascii=False, indent=1), encoding="utf-8")
    return outcome


def run_leaderboard(
    board: Board, out: Path, *, recheck: bool = False, progress: Callable[[str], None] = print
) -> Leaderboard:
    """Run every (model, strategy) of the leaderboard that has not finished, one after another, then analyse them
    and write OUT/leaderboard.md, .json and .csv. A model that fails to load is reported and the others still run."""
    out.mkdir(parents=True, exist_ok=True)
    plan = [(e, s) for s in board.strategies for e in board.models]
    for i, (entry, strategy) in enumerate(plan, start=1):
        where = board.run_dir(out, entry, strategy)
        progress(f"[{i}/{len(plan)}] {entry.label} · {strategy} -> {where}")
        outcome = run_reused(run_argv(board, entry, strategy), where, {}, recheck=recheck)
        if outcome.reused:
            progress("    finished earlier: reused")
        elif outcome.error:
            progress(f"    failed: {outcome.error}")
    leaderboard = analyse(board, out)
    write_outputs(leaderboard, out)
    return leaderboard
