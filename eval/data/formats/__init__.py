"""The dataset formats, one registry line each. A new format is a module here that defines FORMAT (an
eval.data.records.Format) and its name in MODULES; nothing else names it."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from pathlib import Path

from eval.data.errors import DataError
from eval.data.records import Format, Rows

# One line per format: the module eval/data/formats/NAME.py that defines FORMAT. In detection order: a file is read
# as the first format whose `detect` accepts its columns.
MODULES = (
    "native",
    "medqa",
    "cmb",
    "cmexam",
    "mmlu",
    "generic",  # last of those that convert: a question bank's headers, when no dataset's own layout matches
    "parquet",
)
REGISTRY: tuple[Format, ...] = tuple(import_module(f"{__name__}.{name}").FORMAT for name in MODULES)

NAMES = tuple(f.name for f in REGISTRY)  # what --format takes
SUFFIXES = tuple(dict.fromkeys(s for f in REGISTRY for s in f.suffixes))


def suffix_list() -> str:
    """The file kinds a dataset may come in, for messages: ".jsonl, .json or .csv"."""
    return ", ".join(SUFFIXES[:-1]) + " or " + SUFFIXES[-1]


def named(name: str) -> Format:
    if (found := next((f for f in REGISTRY if f.name == name), None)) is None:
        raise DataError(f"format {name!r}: expected one of auto, {', '.join(NAMES)}")
    return found


def rows_of(file: Path, text: Callable[[], str], asked: Format | None = None) -> tuple[Format, Rows]:
    """The file's records, and the format that read them: one asked for that only reads (--format parquet), else the
    first format listing the file's suffix, else the one asked for (--format native notes.txt reads JSON lines)."""
    suffix = file.suffix.lower()
    readers = [f for f in REGISTRY if suffix in f.suffixes and f.reader]
    if asked is not None and asked.reader is not None and (asked.convert is None or not readers):
        readers = [asked]
    if not readers:
        raise DataError(f"{file}: cannot tell the format: expected a {suffix_list()} file")
    kind = readers[0]
    assert kind.reader is not None  # chosen among those that read
    return kind, kind.reader(file, text)


def detect_in(file: Path, kind: Format, rows: Rows) -> Format:
    """The format of a file's records, read by `kind`, from its columns: among the formats found in files of its
    kind (all of them in a kind that converts nothing itself, such as Parquet), the first that accepts them."""
    suffix = file.suffix.lower()
    candidates = [f for f in REGISTRY if f.detect and (not kind.convert or not f.suffixes or suffix in f.suffixes)]
    cols = frozenset(rows.columns)
    if found := next((f for f in candidates if f.detect is not None and f.detect(cols)), None):
        return found
    if found := next((f for f in candidates if f.fallback and suffix in f.suffixes), None):
        return found
    expected = " or ".join(f.describe for f in candidates)
    raise DataError(f"{rows.head}: {rows.what}: expected {expected}, got {sorted(cols)}; for other columns use --map")
