"""The dataset formats, one registry line each. A new format is a module here that defines FORMAT (an
eval.data.records.Format) and its name in MODULES; nothing else names it."""

from __future__ import annotations

from importlib import import_module
from pathlib import Path

from eval.data.errors import DataError
from eval.data.records import Format, Reader, Rows

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

NAMES = tuple(f.name for f in REGISTRY if f.convert)  # what --format takes
SUFFIXES = tuple(dict.fromkeys(s for f in REGISTRY for s in f.suffixes))


def suffix_list() -> str:
    """The file kinds a dataset may come in, for messages: ".jsonl, .json or .csv"."""
    return ", ".join(SUFFIXES[:-1]) + " or " + SUFFIXES[-1]


def named(name: str) -> Format:
    if (found := next((f for f in REGISTRY if f.name == name and f.convert), None)) is None:
        raise DataError(f"format {name!r}: expected one of auto, {', '.join(NAMES)}")
    return found


def reader_of(file: Path, asked: Format | None = None) -> Reader:
    """What reads this kind of file: the reader of the first format listing its suffix; for a suffix none lists, that
    of the format asked for (--format native notes.txt reads JSON lines)."""
    suffix = file.suffix.lower()
    if (found := next((f.reader for f in REGISTRY if suffix in f.suffixes and f.reader), None)) is not None:
        return found
    if asked is not None and asked.reader is not None:
        return asked.reader
    raise DataError(f"{file}: cannot tell the format: expected a {suffix_list()} file")


def detect_in(file: Path, rows: Rows) -> Format:
    """The format of a file's records, from its columns: among the formats found in files of its kind (all of them
    in a file kind that converts nothing itself, such as Parquet), the first that accepts them."""
    suffix = file.suffix.lower()
    kind = next(f for f in REGISTRY if suffix in f.suffixes)  # reader_of(file) found one
    candidates = [f for f in REGISTRY if f.detect and (not kind.convert or not f.suffixes or suffix in f.suffixes)]
    cols = frozenset(rows.columns)
    if found := next((f for f in candidates if f.detect is not None and f.detect(cols)), None):
        return found
    if found := next((f for f in candidates if f.fallback and suffix in f.suffixes), None):
        return found
    expected = " or ".join(f.describe for f in candidates)
    raise DataError(f"{rows.head}: {rows.what}: expected {expected}, got {sorted(cols)}; for other columns use --map")
