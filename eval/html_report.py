"""python -m eval.html_report DIR: one self-contained HTML page for a run, an ablation or a leaderboard directory.

Writes DIR/report.html (or --out): inline CSS, figures as PNG data URIs, nothing fetched from anywhere, so
the file can be mailed or opened offline. It holds

- the headline table (accuracy with Wilson intervals, paired differences with bootstrap intervals, McNemar
  and Holm p-values, unparsed answers, cost per question);
- a specialty x level heatmap of accuracy per graph (or per ablation cell);
- accuracy against cost: tokens per question and seconds per question;
- flips against the baseline (right->wrong, wrong->right) and within chains (first proposal -> final answer);
- the answered letters against the answer key (a first look at position bias);
- every question, with an anchor (report.html#q-ID) and a collapsible section showing each graph's answer and
  every node's messages and output, so a clinician can read why a chain changed its answer.

A leaderboard directory gets the leaderboard's page instead (eval.render.board_page): the sortable table with rank
intervals, the heatmap, accuracy against total and active parameters, the pairwise matrix and calibration.

What a page shows is read by eval.results.pages (a run or an ablation) and eval.results.board (a leaderboard); it is
drawn by eval.render.run_page and eval.render.board_page.

Needs matplotlib (`pip install matplotlib`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from eval.core import log as logsetup
from eval.core.errors import fail
from eval.core.flags import HelpFormatter
from eval.render.figures import ReportError, pyplot


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.html_report", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument(
        "dir",
        type=Path,
        help="a run directory (python -m eval.agentic --out), an ablation directory (python -m eval.ablate --out) or a "
        "leaderboard directory (python -m eval.leaderboard --out)",
    )
    p.add_argument("--out", type=Path, help="where to write the page (default DIR/report.html)")
    p.add_argument(
        "--data", type=Path, help="run directory only: read the questions from here instead of the path in its manifest"
    )
    p.add_argument("--format", default="auto", help="dataset format for --data (see python -m eval.data)")
    args = p.parse_args(argv)
    logsetup.configure(False)  # warnings (a torn last line) on stderr
    from eval.data import DataError
    from eval.plans.plan import PlanError  # an unreadable ablation.json or leaderboard.json

    try:
        pyplot()
        if (args.dir / "leaderboard.json").exists():
            from eval.render.board_page import render as render_board
            from eval.results.board import load_leaderboard

            leaderboard = load_leaderboard(args.dir)
            if not any(r.overall for r in leaderboard.rows):
                raise ReportError(f"{args.dir}: nothing has finished yet")
            document = render_board(leaderboard, f"Leaderboard: {args.dir.name}")
        else:
            from eval.render.run_page import render
            from eval.results.pages import load_ablation_page, load_run_page

            if (args.dir / "ablation.json").exists():
                page = load_ablation_page(args.dir)
            else:
                page = load_run_page(args.dir, args.data, args.format)
            if not page.columns:
                raise ReportError(f"{args.dir}: nothing has finished yet")
            document = render(page)
        out = args.out or args.dir / "report.html"
        out.write_text(document, encoding="utf-8")
    except (ReportError, PlanError, DataError, OSError, json.JSONDecodeError) as e:
        return fail(e)
    print(f"report: {out} ({len(document) / 1e6:.1f} MB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
