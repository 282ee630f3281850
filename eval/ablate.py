"""python -m eval.ablate GRID.toml [--out DIR]: prompt-strategy ablations, every cell on the same questions.

A grid crosses graph x prompt variant x retrieval (off/on) x circular (off/on) x critic model x varied strategy
options x model. Each (model, cell) is one ordinary evaluator run, `python -m eval.agentic --graph CELL --baseline
none --out DIR/MODEL/CELL ...`, made in this process by eval.api.evaluate, one after another. Every cell has its
own run directory, so it resumes on its own after a kill, and a cell that finished is reused on the next invocation
(`--recheck` hands it to the evaluator's resume instead, which re-verifies model and data). Then one results
table: DIR/ablation.md, .csv and .json, with every cell compared, paired, against the baseline cell of its model:
accuracy difference with a paired bootstrap 95% interval, exact McNemar p, Holm-adjusted across the grid, flips;
and beside each chain, two compute-matched controls, when the grid holds those cells: `sc` with k = the chain's model
calls per question (reflect makes 3 calls, so `samples = [3, 5]` gives reflect its control and sc its usual k), and
`sc` with the k whose generated tokens per question come closest to the chain's (measured from the grid's sc cells;
the table's notes name the k to add).

Grid (TOML; every key but `graphs` optional):

    models = ["qwen2.5-coder-0.5b"]        # GGUF paths or packaged names
    graphs = ["single", "reflect", "cot", "sc"]
    variants = ["zh", "en"]                # prompt variants, for the graphs whose prompt file has them
    retrieval = [false, true]              # true adds NAME+rag cells (NAME+rag in `graphs` works too)
    circular = [false, true]               # true adds NAME[circular] cells: every rotation of the options asked,
                                           # right only when right under all of them (OpenCompass's CircularEval);
                                           # graph names instead (["single"]) add them beside those graphs only
    critics = ["qwen2.5-coder-1.5b"]       # other models as critic: a cell each for strategies with a critic
                                           # (reflect[critic=...]) beside their self-critique cell
    vary = {knn_examples = [0, 5], shuffles = [1, 5]}  # strategy options crossed, a cell per combination, for
                                           # the strategies that have them (here medprompt's parts)
    samples = [3, 5]                       # sc's k, one cell each
    sample_temperature = 0.7               # sc's sampling temperature
    baseline = "single"                    # the cell every other one is compared with, per model
    limit = 28                             # shared by every cell, like specialty, level, seed and data
    specialty = []
    level = []
    seed = 0
    options = {rounds = 2}                 # strategy options for every cell whose strategy has them
    extra_args = ["--n-threads", "1"]      # passed to every evaluator run (not the flags the grid sets)
    # data = "PATH", format = "cmb", answers = "PATH", mapping = "PATH", map = {stem = "题目"}: as the evaluator's flags
    # bootstrap_resamples = 2000, bootstrap_seed = 0

Paths are relative to the current directory, as on the evaluator's command line. Cells are labelled
GRAPH[VARIANT,k=K,circular,critic=MODEL] (single, reflect+rag, cot[en], sc[zh,k=3], single[circular],
reflect[critic=qwen2.5-coder-1.5b]) and run in DIR/MODEL/GRAPH_VARIANT_kK_circular_critic-MODEL (the parts they have).

Each cell is one call of eval.api.evaluate with its RunSpec (prompt variant, sc's k and temperature included, so
they are recorded in the cell's manifest; --dry-run prints each as the equivalent command); in-process saves the
evaluator's imports per cell. Cells run one at a time, each loading its model afresh and freeing it after. From
Python: eval.plans.campaign.run_ablation(grid, out) runs the same and returns the table's typed rows.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from eval.core import log as logsetup
from eval.core.errors import fail, interrupted
from eval.core.flags import HelpFormatter
from eval.plans.campaign import run_ablation
from eval.plans.grid import GridError, baseline_cell, cells, load_grid
from eval.plans.plan import PlanError
from eval.plans.specs import command, grid_specs
from eval.render.ablation_table import render_terminal, write_outputs
from eval.results.ablation import analyse

# -- CLI --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m eval.ablate", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("grid", type=Path, help="grid TOML (format above)")
    p.add_argument("--out", type=Path, help="ablation directory (default runs/ablate-GRIDNAME); re-running resumes")
    p.add_argument(
        "--recheck",
        action="store_true",
        help="hand finished cells to the evaluator's resume too (re-verifies model and data files)",
    )
    p.add_argument("--no-run", action="store_true", help="only rebuild the table from what the cells hold")
    p.add_argument("--dry-run", action="store_true", help="list the cells and their evaluator commands, run nothing")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logsetup.configure(False)
    out = args.out or Path("runs") / f"ablate-{args.grid.stem}"
    try:
        return ablate(args, out)
    except OSError as e:  # OUT read-only or its disk full
        return fail(e, f"whatever has finished is kept in {out}")


def ablate(args: argparse.Namespace, out: Path) -> int:
    from eval.data import DataError

    try:
        grid = load_grid(args.grid)
        plan = grid_specs(grid, out)
        baseline_cell(grid, cells(grid))
        if not args.no_run:
            grid.check_inputs(args.grid, GridError)
    except GridError as e:
        return fail(e)
    if args.dry_run:
        for _, c, spec in plan:
            settings = c.settings(grid)
            print(f"{c.label:28} {command(spec)}" + (f"   # RunConfig {settings}" if settings else ""))
        return 0
    out.mkdir(parents=True, exist_ok=True)
    (out / "grid.toml").write_text(args.grid.read_text(encoding="utf-8"), encoding="utf-8")
    try:
        if args.no_run:
            ablation = analyse(grid, out)
            write_outputs(ablation)
        else:
            ablation = run_ablation(
                grid, out, recheck=args.recheck, progress=lambda line: print(line, file=sys.stderr, flush=True)
            )
    except KeyboardInterrupt:
        return interrupted(out, "finished cells and predictions")
    except (PlanError, DataError) as e:  # a cell the evaluator refuses, a manifest without its settings, the data
        return fail(e)
    print(render_terminal(ablation, shutil.get_terminal_size().columns))
    print(
        f"every column: {out / 'ablation.md'} (ablation.csv, ablation.json)\nhtml: python -m eval.html_report {out}",
        file=sys.stderr,
    )
    return 1 if any(r.status == "failed" for r in ablation.runs) else 0


if __name__ == "__main__":
    sys.exit(main())
