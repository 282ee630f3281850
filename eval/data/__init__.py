"""Loading questions: the bundled set, or any JSONL file / directory of JSONL files in the same schema."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from importlib.resources import files
from pathlib import Path

from pydantic import ValidationError

from eval.schema import Question

BUNDLED = Path(str(files(__package__).joinpath("questions")))


class DataError(Exception):
    """A dataset cannot be used; the message names the file, the line and what was expected."""


def dataset_files(path: Path) -> list[Path]:
    if path.is_dir():
        found = sorted(path.glob("*.jsonl"))
        if not found:
            raise DataError(f"{path}: no .jsonl files in this directory")
        return found
    if not path.is_file():
        raise DataError(f"{path}: no such file or directory")
    return [path]


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "record"
    return f"field {where!r}: {first['msg']}"


def _read_jsonl(path: Path) -> Iterator[Question]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{number}: not valid JSON ({e.msg}, column {e.colno})") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
        try:
            yield Question.model_validate(record)
        except ValidationError as e:
            raise DataError(f"{path}:{number}: {_describe(e)}") from None


def load_questions(path: Path | str = BUNDLED) -> list[Question]:
    questions: list[Question] = []
    seen: dict[str, Path] = {}
    for file in dataset_files(Path(path)):
        for question in _read_jsonl(file):
            if question.id in seen:
                raise DataError(f"{file}: duplicate question id {question.id!r} (first seen in {seen[question.id]})")
            seen[question.id] = file
            questions.append(question)
    if not questions:
        raise DataError(f"{path}: the dataset is empty")
    return questions


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
