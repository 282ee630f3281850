"""Loading questions: the bundled set, any JSONL file / directory of JSONL files in the same schema, or a real exam dataset."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from importlib.resources import files
from pathlib import Path

from eval.schema import Question

BUNDLED = Path(str(files(__package__).joinpath("questions")))
DATA_SUFFIXES = (".jsonl", ".json", ".csv")


class DataError(Exception):
    """A dataset cannot be used; the message names the file, the line and what was expected."""


def dataset_files(path: Path) -> list[Path]:
    """The file itself, or a directory's data files: all its .jsonl, .json or .csv files (CMMLU and C-Eval ship one
    CSV per subject), never two kinds: a sample converted to .jsonl beside its source CSVs would count twice."""
    if path.is_dir():
        found = sorted(
            f for f in path.iterdir() if f.suffix.lower() in DATA_SUFFIXES and f.is_file() and not f.name.startswith(".")
        )
        if not found:
            raise DataError(f"{path}: no .jsonl, .json or .csv files in this directory")
        if len(kinds := sorted({f.suffix.lower() for f in found})) > 1:
            raise DataError(f"{path}: holds {' and '.join(kinds)} files: a directory is one dataset of one kind; split them")
        return found
    if not path.is_file():
        raise DataError(f"{path}: no such file or directory")
    return [path]


def load_questions(
    path: Path | str = BUNDLED,
    format: str = "auto",
    *,
    answers: Path | str | None = None,
    fields: dict[str, str] | None = None,
    mapping: Path | str | None = None,
    multi: str = "skip",
    skip_bad: bool = False,
    encoding: str | None = None,
) -> list[Question]:
    """Questions from our JSONL (file or directory) or a real exam dataset; see eval/data/loaders.py.

    Just the questions: `eval.data.loaders.load` (same arguments) also says what was skipped and the encoding read."""
    from eval.data.loaders import load  # imported here: loaders imports DataError from this module

    loaded = load(
        path, format, answers=answers, fields=fields, mapping=mapping, multi=multi, skip_bad=skip_bad, encoding=encoding
    )
    log = logging.getLogger(__name__)
    if loaded.skipped:  # never silent: a run on fewer questions than the file holds must say so
        log.warning("%s: skipped %d multi-answer questions (multi='skip')", path, loaded.skipped)
    if loaded.bad:
        log.warning("%s: skipped %d bad records (skip_bad), the first: %s", path, len(loaded.bad), loaded.bad[0])
    return loaded.questions


def dataset_sha256(path: Path | str) -> str:
    digest = hashlib.sha256()
    for file in dataset_files(Path(path)):
        digest.update(file.name.encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def select(
    questions: Iterable[Question],
    *,
    specialties: Iterable[str] = (),
    levels: Iterable[str] = (),
    limit: int | None = None,
) -> list[Question]:
    """Filter, then take `limit` questions stratified round-robin over specialty x level cells.

    A plain head-of-file limit would test one specialty only; round-robin keeps small runs balanced
    and deterministic.
    """
    wanted_s, wanted_l = set(specialties), set(levels)
    kept = [
        q for q in questions if (not wanted_s or q.specialty in wanted_s) and (not wanted_l or q.level in wanted_l)
    ]
    if limit is None or limit >= len(kept):
        return kept
    cells: dict[tuple[str, str | None], list[Question]] = {}
    for q in kept:
        cells.setdefault((q.specialty, q.level), []).append(q)
    chosen: list[Question] = []
    queues = list(cells.values())
    while len(chosen) < limit:
        for queue in queues:
            if queue and len(chosen) < limit:
                chosen.append(queue.pop(0))
    return chosen
