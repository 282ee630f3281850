"""python -m eval.leaderboard SPEC.toml [--out DIR]: models x strategies on the same questions, ranked with honest
intervals, every pair of models compared, size and experts read from the GGUF files.

Spec (TOML; every key but `models` optional):

    models = ["smollm2-135m", "qwen2.5-coder-0.5b", "/models/mixtral-8x7b-instruct.Q4_K_M.gguf"]
    strategies = ["single", "reflect"]         # any registered strategy; default ["single"]
    baseline = "single"                        # the other strategies are compared with it, per model
    data = "../shared/data/cmmlu/clinical_knowledge.csv"
    limit = 0                                  # 0 = every question (the default); else a stratified sample
    # specialty, level, seed, format, answers, mapping, map, options = {...}, extra_args = [...]: as in a grid

Models may instead be tables, one [[models]] per model (TOML does not mix the two forms):

    [[models]]
    model = "qwen2.5-coder-1.5b"               # a GGUF path or packaged name; its facts come from the file
    args = ["--n-gpu-layers", "-1"]            # evaluator flags for this model only

    [[models]]                                 # a model behind an OpenAI-compatible endpoint: facts declared
    name = "deepseek-r1"
    base_url = "http://gpu-box:8000/v1"
    model_name = "deepseek-ai/DeepSeek-R1"
    [models.facts]                             # a MoE served by vLLM is still a MoE
    architecture = "deepseek2"
    total_params = 671e9
    active_params = 37e9
    n_experts = 256
    n_experts_used = 8
    usd_per_million_input = 0.55               # its price (both or neither): the leaderboard adds dollars per
    usd_per_million_output = 2.19              # question and per correct answer (every prompt token sent billed
                                               # at the input price, every generated one, thinking too, at output)

Each (model, strategy) is one ordinary evaluator run in DIR/MODEL/STRATEGY: it resumes after a kill, and one that
finished is reused on the next invocation. A model that fails to load is reported and the others still run (a data
file that is not there stops the leaderboard before anything runs). Then
DIR/leaderboard.md, .json and .csv (eval.results.board says what each statistic is);
python -m eval.html_report DIR draws the leaderboard page. Python:
eval.plans.campaign.run_leaderboard(eval.plans.board.load_board(path), out).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from eval.core import log as logsetup
from eval.core.errors import fail, interrupted
from eval.core.flags import HelpFormatter
from eval.plans.board import load_board
from eval.plans.campaign import run_leaderboard
from eval.plans.plan import PlanError
from eval.plans.specs import board_specs, command
from eval.render.board_table import render_markdown, write_outputs
from eval.results.board import analyse


def main(argv: list[str] | None = None) -> int:
    from eval.data import DataError

    p = argparse.ArgumentParser(prog="python -m eval.leaderboard", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("spec", type=Path, help="leaderboard TOML (format above)")
    p.add_argument("--out", type=Path, help="leaderboard directory (default runs/leaderboard-SPECNAME); re-run resumes")
    p.add_argument("--recheck", action="store_true", help="hand finished runs to the evaluator's resume too")
    p.add_argument("--no-run", action="store_true", help="only rebuild the tables from what the runs hold")
    p.add_argument("--dry-run", action="store_true", help="list the runs and their evaluator commands, run nothing")
    args = p.parse_args(argv)
    logsetup.configure(False)
    out = args.out or Path("runs") / f"leaderboard-{args.spec.stem}"
    try:
        board = load_board(args.spec)
        plan = board_specs(board, out)  # refuses flags that set what the leaderboard sets, before anything runs
        if not args.no_run:
            board.check_inputs(args.spec, DataError)
        if args.dry_run:
            for *_, spec in plan:
                print(command(spec))
            return 0
        if args.no_run:
            out.mkdir(parents=True, exist_ok=True)
            leaderboard = analyse(board, out)
            write_outputs(leaderboard, out)
        else:
            leaderboard = run_leaderboard(
                board, out, recheck=args.recheck, progress=lambda line: print(line, file=sys.stderr, flush=True)
            )
    except KeyboardInterrupt:
        return interrupted(out)
    except OSError as e:  # OUT read-only or its disk full
        return fail(e, f"whatever has finished is kept in {out}")
    except (PlanError, DataError) as e:  # the spec, or a run's flags the evaluator refuses
        return fail(e)
    print(render_markdown(leaderboard))
    print(f"tables: {out}/leaderboard.md (.json, .csv)\nhtml: python -m eval.html_report {out}", file=sys.stderr)
    return 1 if any(r.status != "done" for r in leaderboard.rows) else 0


if __name__ == "__main__":
    sys.exit(main())
