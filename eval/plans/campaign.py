"""Many evaluator runs, each in its own directory and each reused once it has finished: how the ablation grid and
the leaderboard run their cells.

A run is one call of eval.api.evaluate with its RunSpec (eval.plans.specs builds them), so it resumes on its own
after a kill. When it ends, a marker (MARKER) records its spec and whether every question has a result; the next
invocation with the same spec reuses a complete run without loading its model. Any other marker (another spec, or
one of an older version that recorded flags) hands the run to the evaluator's resume, which verifies what it holds.
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
from eval.core.schema import RunConfig
from eval.core.store import finished, graph_predictions
from eval.models import ModelError, resolve_model
from eval.plans.board import Board
from eval.plans.grid import Cell, Grid, GridError, baseline_cell, cells
from eval.plans.plan import MARKER, PlanError
from eval.plans.specs import board_specs, grid_specs, recorded
from eval.render.ablation_table import write_outputs as write_table
from eval.render.board_table import write_outputs
from eval.results.ablation import Ablation
from eval.results.ablation import analyse as analyse_grid
from eval.results.ablation import recorded as recorded_setting
from eval.results.board import Leaderboard, analyse


class Outcome(NamedTuple):
    status: int  # 0 done, 2 bad input or a model that would not load, 1 anything else
    reused: bool  # finished earlier with the same flags: not run again
    error: str = ""  # for a failed run: its one-line reason


def run_reused(
    spec: RunSpec,
    out: Path,
    record: dict,
    *,
    recheck: bool = False,
    verify: Callable[[RunConfig], None] | None = None,
) -> Outcome:
    """One evaluator run of `spec` into `out`, resuming whatever it holds; reused as is when its marker says it
    finished with the same spec and `record`, unless `recheck`. `verify` checks the manifest of a run that ended
    (raising PlanError when the evaluator did not record what was asked)."""
    marker = out / MARKER
    spec = spec.model_copy(update={"out": out})
    record = {"spec": recorded(spec), **record}
    if not recheck and marker.exists():
        with contextlib.suppress(ValueError, OSError):
            if json.loads(marker.read_text(encoding="utf-8")) == {**record, "complete": True}:
                return Outcome(0, True)
    marker.unlink(missing_ok=True)
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
    plan = board_specs(board, out)
    out.mkdir(parents=True, exist_ok=True)
    run_each([(f"{entry.label} · {strategy}", spec, None) for entry, strategy, spec in plan], progress, recheck)
    leaderboard = analyse(board, out)
    write_outputs(leaderboard, out)
    return leaderboard


def run_each(
    runs: list[tuple[str, RunSpec, Callable[[RunConfig], None] | None]],
    progress: Callable[[str], None],
    recheck: bool,
) -> None:
    """Each (label, spec, verify) run into its spec's directory in turn, saying how it went: reused, or failed and
    why (its marker keeps the reason, where the tables read it)."""
    for i, (label, spec, verify) in enumerate(runs, start=1):
        assert spec.out is not None  # a plan places every run
        progress(f"[{i}/{len(runs)}] {label} -> {spec.out}")
        outcome = run_reused(spec, spec.out, {}, recheck=recheck, verify=verify)
        if outcome.reused:
            progress("    finished earlier: reused")
        elif outcome.error:
            progress(f"    failed: {outcome.error}")


def run_ablation(grid: Grid, out: Path, *, recheck: bool = False, progress: Callable[[str], None] = print) -> Ablation:
    """Run every (model, cell) of the grid that has not finished, one after another, then analyse them and write
    OUT/ablation.md, .json and .csv. A cell that fails is reported (its marker says why, where the table reads it)
    and the others still run; a grid that cannot run is refused (GridError) before any cell."""
    plan = grid_specs(grid, out)
    baseline_cell(grid, cells(grid))
    for model in dict.fromkeys([*grid.models, *grid.critics]):  # every cell of a model that is not there would fail
        if "://" not in model:
            try:
                resolve_model(model)
            except ModelError as e:
                raise GridError(f"{e}: install it or remove it from the grid") from None
    out.mkdir(parents=True, exist_ok=True)
    run_each(
        [(f"{m} · {c.label}", spec, _records(c, c.settings(grid), spec.out)) for m, c, spec in plan], progress, recheck
    )
    ablation = analyse_grid(grid, out)
    write_table(ablation)
    return ablation


def _records(cell: Cell, settings: dict, out: Path | None) -> Callable[[RunConfig], None]:
    """A check that a cell's manifest recorded its settings (prompt variant, circular, critic, strategy options)."""

    def verify(config: RunConfig) -> None:
        if wrong := {k: got for k, v in settings.items() if (got := recorded_setting(config, cell.base, k)) != v}:
            raise GridError(
                f"{out}: the evaluator did not record the cell's settings {settings} (manifest has {wrong})"
            )

    return verify
