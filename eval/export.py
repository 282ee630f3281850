"""python -m eval.export inspect RUN_DIR: a run directory as Inspect AI eval logs, to browse in `inspect view`.

One log per graph (the chain and its baseline side by side in the viewer's list), one sample per question: every
step's messages and reply (reasoning included where recorded), a model event per step in the transcript, the score
against the answer key, the answer, and the metadata (model, strategy, specialty, level, parse status, calls, tokens,
seconds). Then: inspect view --log-dir RUN_DIR/inspect

Needs inspect-ai: pip install 'clinical-eval[inspect]' (or pip install inspect-ai).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from eval.core import log as logsetup
from eval.core.errors import fail
from eval.core.flags import HelpFormatter
from eval.core.store import RunDirError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.export", description=__doc__, formatter_class=HelpFormatter)
    formats = p.add_subparsers(dest="format", required=True, metavar="FORMAT")
    inspect = formats.add_parser(
        "inspect", help="Inspect AI eval logs (inspect view)", description=__doc__, formatter_class=HelpFormatter
    )
    inspect.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run directory (python -m eval.agentic --out)")
    inspect.add_argument(
        "--out",
        type=Path,
        metavar="FILE_OR_DIR",
        help="a directory for the logs (default RUN_DIR/inspect), or a .eval or .json file when one graph is exported "
        "(inspect view lists a .json log only when its name starts with a timestamp, as Inspect names logs)",
    )
    inspect.add_argument(
        "--graph", action="append", metavar="GRAPH", help="export only this graph (repeatable; default: every graph)"
    )
    args = p.parse_args(argv)
    logsetup.configure(False)  # warnings (a torn last line) on stderr
    try:
        from eval.render.inspect_log import ExportError, export
    except ModuleNotFoundError as e:
        if (e.name or "").partition(".")[0] != "inspect_ai":
            raise
        return fail("inspect-ai is not installed: pip install 'clinical-eval[inspect]' (or pip install inspect-ai)")
    try:
        written, notes = export(args.run_dir, args.out, args.graph)
    except (ExportError, RunDirError, OSError) as e:
        return fail(e)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    for path in written:
        print(path)
    print(f"view: inspect view --log-dir {written[0].parent}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
