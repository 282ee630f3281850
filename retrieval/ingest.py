"""python -m retrieval.ingest PATH... : add guideline documents (.md/.txt) to a store; idempotent."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from eval.core.flags import HelpFormatter
from retrieval import RetrievalError
from retrieval.store import GuidelineStore, default_store_path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m retrieval.ingest", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("paths", nargs="+", type=Path, help=".md/.txt files or directories of them")
    p.add_argument("--store", type=Path, default=None, help=f"store directory (default {default_store_path()})")
    p.add_argument("--max-chars", type=int, default=500, help="passage size bound in characters")
    p.add_argument("--overlap", type=int, default=80, help="characters repeated between cut pieces of a long paragraph")
    args = p.parse_args(argv)
    try:
        store = GuidelineStore(args.store or default_store_path())
        report = store.ingest(args.paths, max_chars=args.max_chars, overlap=args.overlap)
    except RetrievalError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for source, (added, removed, unchanged) in sorted(report.by_file.items()):
        print(f"{source}: +{added} -{removed} ={unchanged}")
    print(f"{report}; the store at {store.path} now holds {store.count()} passages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
