"""Our own JSONL schema (id, stem, options, answer, specialty, level, …), validated as a Question."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from eval.core.schema import LETTERS, MultiQuestion, Question
from eval.data.errors import DataError
from eval.data.records import Ctx, Format, describe, jsonl_rows, need_object


def convert(record: Any, where: str, n: int, ctx: Ctx) -> Question:
    """A multi-answer question is marked `"multi": true` (a 多选 question may have a one-letter key); unmarked, an
    answer of several letters ("ABD") makes one."""
    record = dict(need_object(record, where))
    answer, marked = record.get("answer"), record.pop("multi", None)
    if marked is not None and not isinstance(marked, bool):
        raise DataError(f"{where}: multi: expected true or false, got {marked!r}")
    multi = (
        marked if marked is not None else isinstance(answer, str) and len(answer) > 1 and set(answer) <= set(LETTERS)
    )
    try:
        return (MultiQuestion if multi else Question).model_validate(record)
    except ValidationError as e:
        raise DataError(f"{where}: {describe(e)}") from None


FORMAT = Format(
    name="native",
    describe="our JSONL fields (id, stem, options, answer, …)",
    suffixes=(".jsonl",),
    reader=jsonl_rows,
    convert=convert,
    detect=lambda cols: "stem" in cols,
    fallback=True,  # a JSONL file that looks like nothing else gets our schema's messages
)
