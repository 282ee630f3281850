"""What every dataset format shares: the `Format` type, the readers of CSV, JSON and JSON Lines files, and the one
path by which a record in common terms (`Raw`) is checked and becomes a Question.

A record that cannot even be parsed comes through a reader as a DataError, so `load` can list it and go on.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from eval.core.schema import LETTERS, MultiQuestion, Question
from eval.data.errors import DataError
from eval.data.rules import Rules
from eval.data.text import plain


@dataclass
class Rows:
    """A file's records as (where, record) pairs, and the columns detection looks at: the header, or the first
    record's fields. `head` is where those columns are ("FILE:1"), `what` what they are called there."""

    records: Iterable[tuple[str, Any]]
    columns: list[str]
    head: str
    what: str


@dataclass
class Ctx:
    file: Path
    rules: Rules
    fields: dict[str, str] | None = None  # a generic field mapping (--map)
    answers: dict[str, Any] | None = None  # a separate answers file by id (--answers)


# A file and a way to get its decoded text (a binary format never asks) -> its records.
Reader = Callable[[Path, Callable[[], str]], Rows]
# (record, where, n: its 1-based number in the file, ctx) -> Question, or a DataError naming `where`.
Converter = Callable[[Any, str, int, Ctx], Question]


@dataclass(frozen=True)
class Format:
    """One dataset format, registered with one line in eval/data/formats/__init__.py.

    A format reads files (`suffixes`, `reader`: the first format listing a suffix reads every file with it), turns
    records into questions (`convert`, `detect`, `columns`), or both. A format that only reads (Parquet) holds the
    records of any format that converts: which one is detected from its columns."""

    name: str
    describe: str  # what its records look like, in the message when no format is detected
    suffixes: tuple[str, ...] = ()
    reader: Reader | None = None
    convert: Converter | None = None
    detect: Callable[[frozenset[str]], bool] | None = None  # do these columns look like this format's records?
    columns: tuple[str, ...] = ()  # columns it cannot do without ("a|b": either), checked before any record
    fallback: bool = False  # what a file of its suffixes is read as when no format is detected


# --- readers ----------------------------------------------------------------------------------------------


def _json_error(e: ValueError | RecursionError) -> str:
    # ValueError also covers over-long integers; RecursionError, absurdly deep nesting.
    return (
        f"{e.msg}, column {e.colno}"
        if isinstance(e, json.JSONDecodeError)
        else type(e).__name__ + (f": {e}"[:120] if str(e) else "")
    )


def _first_fields(records: list[tuple[str, Any]], file: Path) -> tuple[list[str], str]:
    where, first = records[0] if records else (f"{file}", None)
    return (list(first) if isinstance(first, dict) else []), where


def jsonl_rows(file: Path, text: Callable[[], str]) -> Rows:
    records = []
    # Split on "\n" only: str.splitlines() also breaks on U+2028/U+0085, which JSON strings may hold raw.
    for number, line in enumerate(text().split("\n"), start=1):
        if line.strip():
            where = f"{file}:{number}"
            try:
                records.append((where, json.loads(line)))
            except (ValueError, RecursionError) as e:
                records.append((where, DataError(f"{where}: not valid JSON ({_json_error(e)})")))
    return Rows(records, *_first_fields(records, file), "fields")


def json_rows(file: Path, text: Callable[[], str]) -> Rows:
    try:
        data = json.loads(text())
    except (ValueError, RecursionError) as e:
        line = f":{e.lineno}" if isinstance(e, json.JSONDecodeError) else ""
        raise DataError(f"{file}{line}: not valid JSON ({_json_error(e)})") from None
    if not isinstance(data, list):
        raise DataError(f"{file}: expected a JSON list of records, got {type(data).__name__}")
    records = [(f"{file}[{i}]", record) for i, record in enumerate(data)]  # named by their index in the list
    return Rows(records, *_first_fields(records, file), "fields")


def csv_rows(file: Path, text: Callable[[], str]) -> Rows:
    content = text()
    try:
        header = [name.strip() for name in next(csv.reader(io.StringIO(content)), [])]
    except csv.Error as e:
        raise DataError(f"{file}:1: not valid CSV ({e})") from None

    def records():
        reader = csv.DictReader(io.StringIO(content))
        end = 1  # a record may span lines (CMExam options are one per line); name the line it starts on
        try:
            for row in reader:
                start, end = end + 1, reader.line_num
                yield f"{file}:{start}", {(k or "").strip(): (v or "") for k, v in row.items() if k is not None}
        except csv.Error as e:
            raise DataError(f"{file}:{reader.line_num}: not valid CSV ({e})") from None

    return Rows(records(), header, f"{file}:1", "header")


def check_columns(rows: Rows, fmt: Format) -> None:
    cols = set(rows.columns)
    for need in fmt.columns:
        if not cols & set(need.split("|")):
            raise DataError(
                f"{rows.head}: {need.replace('|', ' or ')}: expected this column in the {rows.what} for {fmt.name}, "
                f"got {sorted(cols)}"
            )


# --- one record in common terms, then checked and built ---------------------------------------------------


@dataclass
class Raw:
    """One record before validation; `names` maps our keys to the source's field names, for messages."""

    id: Any
    stem: Any
    options: Any
    answer: Any
    names: dict[str, str]
    subjects: tuple[Any, ...] = ()  # department / subject / disease-group names, most telling first
    exam_class: Any = ""
    rationale: Any = ""
    source: str = ""
    multi: bool | None = None  # what the source says about the kind; None: it does not say


def bad(where: str, name: str, expected: str) -> DataError:
    return DataError(f"{where}: {name}: expected {expected}")


# A line of options: "A 文本", "A. 文本", "A、文本", "A）文本", or "A文本" (but not "Aspirin": no letter after it).
_OPTION_LINE = re.compile(rf"\s*([{LETTERS[0]}-{LETTERS[-1]}])(?![A-Za-z])[\s.、．:：)）]*(.*)")


def options_of(value: Any, where: str, names: dict[str, str]) -> dict[str, str]:
    name = names["options"]
    if isinstance(value, dict):
        pairs = sorted((plain(k).upper(), plain(v)) for k, v in value.items())  # keys carry the order, not the dict
    elif isinstance(value, str):
        pairs = []
        for line in value.splitlines():
            if line.strip():
                if not (m := _OPTION_LINE.fullmatch(line)):
                    raise bad(where, name, f"one option per line like 'A 文本', got {line.strip()!r}")
                pairs.append((m[1], m[2].strip()))
    else:
        raise bad(where, name, f"options as a mapping or one per line, got {type(value).__name__}")
    # Datasets pad four-option questions with an empty fifth; drop trailing empties, report inner ones.
    while pairs and not pairs[-1][1]:
        pairs.pop()
    letters = [k for k, _ in pairs]
    if letters != list(LETTERS[: len(letters)]) or not 2 <= len(letters) <= len(LETTERS):
        raise bad(where, name, f"2–{len(LETTERS)} options labelled A, B, C… in order, got {letters}")
    for letter, text in pairs:
        if not text:
            raise bad(where, names.get(letter, name), f"a text for option {letter}")
    return dict(pairs)


def _letters(value: Any, where: str, name: str, options: dict[str, str]) -> str:
    text = re.sub(r"[\s,，、;；]", "", plain(value)).upper()  # "A, B" and "A、B" both mean AB
    if not re.fullmatch(f"[{LETTERS[0]}-{LETTERS[-1]}]+", text):
        raise bad(where, name, f"option letters such as 'C' or 'ABD', got {plain(value)!r}")
    if not set(text) <= set(options):
        raise bad(where, name, f"letters among the options {''.join(options)}, got {text!r}")
    return "".join(sorted(set(text)))


def build(raw: Raw, where: str, rules: Rules) -> Question:
    names = raw.names
    qid, stem = plain(raw.id), plain(raw.stem)
    if not qid:
        raise bad(where, names.get("id", "id"), "a non-empty id")
    if not stem:
        raise bad(where, names["stem"], "a non-empty question text")
    options = options_of(raw.options, where, names)
    answer = _letters(raw.answer, where, names["answer"], options)
    if raw.multi is False and len(answer) > 1:
        raise bad(where, names["answer"], f"one letter for a single-answer question, got {answer!r}")
    cls = MultiQuestion if raw.multi or len(answer) > 1 else Question
    try:
        return cls(
            id=qid,
            stem=stem,
            options=options,
            answer=answer,
            specialty=rules.to_specialty(*raw.subjects),
            level=rules.to_level(raw.exam_class),
            source=raw.source,
            rationale=plain(raw.rationale),
        )
    except ValidationError as e:  # checked above; kept so a schema change still gives a one-line error
        raise DataError(f"{where}: {describe(e)}") from None


# C0 control characters other than tab and line breaks, and DEL: no exam text holds them, and a NUL or an escape code
# would reach the model as is. (U+0085 and the Unicode line separators are text: they load.)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def check_text(q: Question, where: str) -> None:
    for name, text in (("stem", q.stem), *((f"option {k}", v) for k, v in q.options.items())):
        if m := _CONTROL.search(text):
            raise bad(where, name, f"text without control characters, got U+{ord(m[0]):04X} at character {m.end()}")


def describe(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "record"
    return f"field {where!r}: {first['msg']}"


def need_object(record: Any, where: str) -> dict:
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    return record


def short(where: str, ctx: Ctx) -> str:
    """`where` with the file's name instead of its path: what a question's `source` keeps."""
    return ctx.file.name + where[len(str(ctx.file)) :]


def kind_of(qtype: Any) -> bool | None:
    """Single- or multi-answer, from a question-type field (单选/多选, single/multiple); None: it does not say."""
    text = plain(qtype).lower()
    return True if ("多" in text or "multi" in text) else False if ("单" in text or "single" in text) else None
