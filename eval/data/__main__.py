"""python -m eval.data inspect|sample: look at a dataset before a run, or cut a small stratified sample of it.

inspect PATH   counts by specialty x level, question kinds, the encoding read, and every bad record found
               (exit 2 when a run or a sample with the same options would refuse the data)
sample PATH --per-cell N --seed S --out FILE
               up to N random questions per specialty x level cell, written as our own JSONL
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from eval.core.flags import HelpFormatter
from eval.core.schema import SPECIALTIES
from eval.data.errors import DataError
from eval.data.formats import NAMES, suffix_list
from eval.data.formats.generic import FIELD_KEYS, check_fields, read_fields
from eval.data.loaders import MULTI, Loaded, load, stratified, to_jsonl

KIND_NAMES = {"single-4": "single, 4 options", "single-5": "single, 5 options", "multi": "multi-answer"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("path", type=Path, help=f"dataset file, or a directory of {suffix_list()} files (one kind)")
    common.add_argument("--format", default="auto", choices=("auto", *NAMES), help="default: detected from the file")
    common.add_argument("--answers", type=Path, help="CMB: a separate answers file, joined by id")
    common.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="KEY=FIELD",
        help=f"generic format: which source field holds KEY ({', '.join(FIELD_KEYS)}); repeatable",
    )
    common.add_argument("--map-file", type=Path, help='generic format: TOML of KEY = "FIELD" lines (--map wins)')
    common.add_argument(
        "--mapping", type=Path, help="TOML of [[specialty]]/[[level]] rules checked before the bundled ones"
    )
    common.add_argument(
        "--multi",
        default="include",  # as a run loads them, so inspect counts and sample keeps what a run would answer
        choices=MULTI,
        help="multi-answer questions: include (default; answered as letter sets) or skip (counted)",
    )
    common.add_argument(
        "--skip-bad", action="store_true", help="leave malformed records out (each listed) instead of stopping"
    )
    common.add_argument(
        "--encoding", help="the files' text encoding, e.g. gbk (default: UTF-8, else GB18030, per file)"
    )

    p = argparse.ArgumentParser(prog="python -m eval.data", description=__doc__, formatter_class=HelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    inspect = sub.add_parser(
        "inspect", parents=[common], help="counts, kinds and validation problems", formatter_class=HelpFormatter
    )
    inspect.add_argument(
        "--problems", type=int, default=50, metavar="N", help="list at most N bad records (0 = all; default 50)"
    )
    sample = sub.add_parser(
        "sample", parents=[common], help="a stratified sample as our own JSONL", formatter_class=HelpFormatter
    )
    sample.add_argument("--per-cell", type=int, required=True, metavar="N", help="questions per specialty x level cell")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--out", type=Path, required=True, help="JSONL file to write")
    args = p.parse_args(argv)
    if args.command == "sample" and args.per_cell < 1:
        p.error("--per-cell must be at least 1")
    return args


def field_map(args: argparse.Namespace) -> dict[str, str] | None:
    fields = read_fields(args.map_file) if args.map_file else {}
    for item in args.map:
        key, sep, name = item.partition("=")
        if not sep or not key.strip() or not name.strip():
            raise DataError(f"--map {item}: expected KEY=FIELD, e.g. --map stem=题目")
        fields[key.strip()] = name.strip()
    return check_fields(fields) if fields else None


def report(loaded: Loaded, max_problems: int, multi: str) -> str:
    # a binary file (Parquet) has no text encoding: its kind instead
    lines = [
        f"{file}: {fmt} ({loaded.encodings.get(file, Path(file).suffix[1:])})" for file, fmt in loaded.formats.items()
    ]
    lines.append(
        f"records: {loaded.records}  loaded: {len(loaded.questions)}  skipped multi-answer: {loaded.skipped}  "
        f"bad records: {len(loaded.bad)}  unreadable files: {len(loaded.problems)}  encoding: {loaded.encoding or '-'}"
    )
    lines += ["", "kinds (valid records)"]
    for k, n in sorted(loaded.kinds.items(), key=lambda kv: (kv[0] == "multi", kv[0])):
        note = "  (skipped: --multi skip)" if k == "multi" and multi == "skip" else ""
        lines.append(f"  {KIND_NAMES.get(k, k.replace('-', ', ') + ' options'):<20}{n:>7}{note}")

    cells: Counter[tuple[str, str | None]] = Counter((q.specialty, q.level) for q in loaded.questions)
    levels = ("attending", "senior", None)
    lines += ["", f"{'specialty × level':<20}" + "".join(f"{lv or 'none':>10}" for lv in levels) + f"{'total':>10}"]
    for s in SPECIALTIES:
        row = [cells[(s, lv)] for lv in levels]
        if any(row):
            lines.append(f"{s:<20}" + "".join(f"{n:>10}" for n in row) + f"{sum(row):>10}")
    totals = [sum(cells[(s, lv)] for s in SPECIALTIES) for lv in levels]
    lines.append(f"{'total':<20}" + "".join(f"{n:>10}" for n in totals) + f"{sum(totals):>10}")
    if loaded.others:
        named = ", ".join(f"{name or '(no department)'} {n}" for name, n in loaded.others.most_common())
        lines += [
            "",
            f"other: outside the seven specialties, by department name: {named}. A --mapping file of [[specialty]] "
            "rules maps more names (docs/data.md).",
        ]

    for title, problems in (("unreadable files", loaded.problems), ("bad records", loaded.bad)):
        if problems:
            shown = problems if max_problems <= 0 else problems[:max_problems]
            lines += ["", f"{title} ({len(problems)}):", *(f"  {p}" for p in shown)]
            if len(shown) < len(problems):
                lines.append(f"  … and {len(problems) - len(shown)} more (--problems 0 lists all)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        options = dict(
            answers=args.answers,
            fields=field_map(args),
            mapping=args.mapping,
            multi=args.multi,
            skip_bad=args.skip_bad,
            encoding=args.encoding,
        )
        if args.command == "inspect":
            loaded = load(args.path, args.format, strict=False, **options)
            print(report(loaded, args.problems, args.multi))
            refused = loaded.problems or (loaded.bad and not args.skip_bad) or not loaded.questions
            return 2 if refused else 0
        loaded = load(args.path, args.format, **options)
        chosen = stratified(loaded.questions, args.per_cell, args.seed)
        try:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(to_jsonl(chosen), encoding="utf-8")
        except OSError as e:
            raise DataError(f"{args.out}: cannot write ({e.strerror})") from None
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cells = len({(q.specialty, q.level) for q in chosen})
    skipped = f"; {loaded.skipped} multi-answer questions skipped" if loaded.skipped else ""
    skipped += f"; {len(loaded.bad)} bad records skipped (inspect lists them)" if loaded.bad else ""
    print(
        f"wrote {len(chosen)} of {len(loaded.questions)} questions "
        f"({cells} cells, up to {args.per_cell} each{skipped}) to {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
