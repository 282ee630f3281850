"""Loading a dataset: each file read by its format (eval/data/formats, one module each: native JSONL, CMExam CSV,
CMB JSON, MedQA JSONL, CMMLU / C-Eval CSV, a generic field mapping; Parquet holding any of them), in UTF-8 or
GB18030/GBK (detected) or a named encoding; every record checked, every one left out counted. Then a stratified
sample, and our own JSONL written back.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from eval.core.schema import SPECIALTIES, MultiQuestion, Question
from eval.data import dataset_files
from eval.data.errors import DataError
from eval.data.formats import detect_in, named, rows_of
from eval.data.formats.cmb import read_answers
from eval.data.formats.generic import check_fields
from eval.data.records import Ctx, check_columns, check_text
from eval.data.rules import load_mapping
from eval.data.text import decode, encodings

MULTI = ("skip", "include")


def kind(q: Question) -> str:
    return "multi" if q.multi else f"single-{len(q.options)}"


@dataclass
class Loaded:
    """What `load` found: the usable questions, and everything it left out, counted so nothing is silent."""

    questions: list[Question] = field(default_factory=list)
    records: int = 0
    skipped: int = 0  # multi-answer questions left out under multi="skip"
    kinds: Counter = field(default_factory=Counter)  # over every valid record, skipped ones included
    bad: list[str] = field(default_factory=list)  # "FILE:LINE: why" per record left out (skip_bad or strict=False)
    problems: list[str] = field(default_factory=list)  # files that could not be read at all; only when strict=False
    formats: dict[str, str] = field(default_factory=dict)  # file -> format it was read as
    encodings: dict[str, str] = field(default_factory=dict)  # file (answers file included) -> encoding it was read in
    encoding: str = ""  # those encodings, comma-joined in the order tried: as `encoding`, it rereads the files alike
    others: Counter = field(default_factory=Counter)  # department name ("" for none) -> valid records that are other


def detect(file: Path | str, text: str | None = None) -> str:
    """Which format a file's records are in, from its kind and its columns; `text`: the file, decoded."""
    file = Path(file)
    reader, rows = rows_of(file, (lambda: text) if text is not None else (lambda: decode(file)[0]))
    return detect_in(file, reader, rows).name


def load(
    path: Path | str,
    format: str = "auto",
    *,
    answers: Path | str | None = None,
    fields: dict[str, str] | None = None,
    mapping: Path | str | None = None,
    multi: str = "skip",
    strict: bool = True,
    skip_bad: bool = False,
    encoding: str | None = None,
) -> Loaded:
    """Read a file (or a directory of them, see dataset_files) into Questions.

    strict: the first bad record or unreadable file raises DataError; otherwise each is listed in `bad` or `problems`.
    skip_bad: bad records are left out and listed in `bad` ("FILE:LINE: why"), but a file that cannot be read and a
    dataset with no question left still raise.
    multi: "skip" leaves multi-answer questions out and counts them; "include" keeps them as MultiQuestion.
    encoding: None detects UTF-8 or GB18030 per file; else a codec name, or several comma-joined tried in order.
    """
    asked = None if format == "auto" else named(format)
    if multi not in MULTI:
        raise DataError(f"multi {multi!r}: expected one of {', '.join(MULTI)}")
    if format == "generic" and not fields:
        raise DataError("format generic: expected a field mapping (--map stem=题目 --map answer=答案 … or --map-file)")
    tried = encodings(encoding)
    rules = load_mapping(mapping)
    ctx_fields = check_fields(fields) if fields else None
    out, seen = Loaded(), dict[str, str]()

    def read(file: Path) -> str:
        text, out.encodings[str(file)] = decode(file, tried)
        return text

    key = read_answers(Path(answers), read(Path(answers))) if answers is not None else None
    for file in dataset_files(Path(path)):
        try:
            reader, rows = rows_of(file, partial(read, file), asked)
            # a field mapping given means the generic format, whatever the file looks like
            if asked is not None and asked.convert is not None:
                fmt = asked
            else:
                fmt = named("generic") if ctx_fields else detect_in(file, reader, rows)
            if key is not None and fmt.name != "cmb":
                raise DataError(f"{file}: --answers: only CMB data ({fmt.name} detected) takes a separate answers file")
            out.formats[str(file)] = fmt.name
            check_columns(rows, fmt)
            convert = fmt.convert
            assert convert is not None  # asked only if it converts; detect_in() gives only formats that convert
            ctx = Ctx(file, rules, ctx_fields, key)
            for n, (where, record) in enumerate(rows.records, start=1):
                out.records += 1
                try:
                    if isinstance(record, DataError):
                        raise record
                    q = convert(record, where, n, ctx)
                    check_text(q, where)
                    if q.id in seen:
                        raise DataError(f"{where}: id: duplicate question id {q.id!r} (first seen at {seen[q.id]})")
                except DataError as e:
                    if strict and not skip_bad:
                        raise
                    out.bad.append(str(e))
                    continue
                seen[q.id] = where
                out.kinds[kind(q)] += 1
                if q.specialty == "other":
                    out.others[rules.other_name[0]] += 1
                if isinstance(q, MultiQuestion) and multi == "skip":
                    out.skipped += 1
                else:
                    out.questions.append(q)
        except DataError as e:  # a whole file that cannot be read: listed too when not strict
            if strict:
                raise
            out.problems.append(str(e))
    out.encoding = ",".join(name for name in tried if name in out.encodings.values())
    if strict and not out.questions:
        if out.bad:  # skip_bad, and nothing was good
            also = f", {out.skipped} multi-answer skipped" if out.skipped else ""
            bad = f"{len(out.bad)} of {out.records} records are bad{also}"
            raise DataError(f"{path}: no questions left: {bad}; the first: {out.bad[0]}")
        if out.skipped:
            raise DataError(
                f"{path}: no questions left: all {out.skipped} are multi-answer and multi='skip' (use --multi include)"
            )
        raise DataError(f"{path}: the dataset is empty")
    return out


def stratified(questions: list[Question], per_cell: int, seed: int = 0) -> list[Question]:
    """Up to `per_cell` questions drawn at random from each specialty x level cell; same seed, same sample."""
    cells: dict[tuple[str, str | None], list[int]] = {}
    for i, q in enumerate(questions):
        cells.setdefault((q.specialty, q.level), []).append(i)
    order = {"attending": 0, "senior": 1, None: 2}
    rng = random.Random(seed)
    chosen: list[int] = []
    for cell in sorted(cells, key=lambda c: (SPECIALTIES.index(c[0]), order[c[1]])):
        picked = rng.sample(cells[cell], min(per_cell, len(cells[cell])))
        chosen.extend(sorted(picked))  # file order within a cell reads better than draw order
    return [questions[i] for i in chosen]


def to_jsonl(questions: list[Question]) -> str:
    """Our own JSONL schema, one question a line, readable Chinese (no \\u escapes); multi-answer questions are
    marked, so that one whose key is a single letter stays one when read back."""
    return "".join(
        json.dumps({**q.model_dump(), **({"multi": True} if q.multi else {})}, ensure_ascii=False) + "\n"
        for q in questions
    )
