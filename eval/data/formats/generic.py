"""Any JSONL, JSON or CSV (or any file another format reads) with a field mapping: given (--map, --map-file), or
found from the headers Chinese question banks use (题目/题干/问题, A–H or 选项A–选项H, 答案/正确答案, …)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from eval.core.schema import LETTERS, Question
from eval.data.errors import DataError
from eval.data.records import Ctx, Format, Raw, bad, build, kind_of, need_object, short
from eval.data.text import read_toml

# What a field mapping may name: our field -> the source's field (column or JSON key).
FIELD_KEYS = ("id", "stem", "options", *LETTERS, "answer", "specialty", "level", "rationale", "type")

# The headers question banks use, per key, the first present wins; an option is column A or 选项A.
HEADERS = {
    "id": ("id", "ID", "编号", "题号"),
    "stem": ("题目", "题干", "问题"),
    "answer": ("答案", "正确答案"),
    "rationale": ("解析", "答案解析"),
    "specialty": ("科室", "科目", "学科"),
    "level": ("职称", "级别"),
    "type": ("题型",),
}


def guess(columns: Iterable[str]) -> dict[str, str] | None:
    """The field mapping these headers make, or None when they name no question, answer and options."""
    cols = set(columns)
    fields = {key: name for key, names in HEADERS.items() for name in names[::-1] if name in cols}  # first wins
    fields |= {k: name for k in LETTERS for name in (f"选项{k}", k) if name in cols}  # A over 选项A
    if not {"A", "B"} <= fields.keys() and "选项" in cols:
        fields["options"] = "选项"  # all the options in one column
    return fields if {"stem", "answer"} <= fields.keys() and ("options" in fields or "A" in fields) else None


def read_fields(path: Path | str) -> dict[str, str]:
    """A field mapping from TOML: one `ourfield = "source field"` line each, e.g. stem = "题目"."""
    data = read_toml(Path(path))
    if bad_keys := [k for k, v in data.items() if not isinstance(v, str)]:
        raise DataError(f"{path}: {bad_keys[0]}: expected a field name in quotes")
    return check_fields(data, str(path))


def check_fields(fields: dict[str, str], origin: str = "--map") -> dict[str, str]:
    if unknown := [k for k in fields if k not in FIELD_KEYS]:
        raise DataError(f"{origin}: {unknown[0]}: expected one of {', '.join(FIELD_KEYS)}")
    if not {"stem", "answer"} <= set(fields):
        raise DataError(
            f"{origin}: expected at least stem, answer, and options (or A, B, …; columns named A, B, … need no "
            "mapping) to be mapped"
        )
    return dict(fields)


def convert(record: Any, where: str, n: int, ctx: Ctx) -> Question:
    record = need_object(record, where)
    fields = ctx.fields or guess(record)
    if fields is None:
        raise bad(
            where, "fields", f"the headers question banks use (题目, A, B, …, 答案), got {sorted(record)}; use --map"
        )
    if "options" not in fields and not fields.keys() & set(LETTERS):
        fields = fields | {k: k for k in LETTERS if k in record}  # columns named A, B, … are the options as they are
        if "A" not in fields:
            raise bad(
                where, "options", "options mapped (--map options=FIELD, or A=FIELD, B=FIELD, …) or columns A, B, …"
            )

    def get(key: str, required: bool = False) -> Any:
        name = fields.get(key)
        if name is None:
            return None
        if name not in record:
            if required:
                raise bad(where, name, f"a field {name!r} (mapped from {key})")
            return None
        return record[name]

    if "options" in fields:
        options = get("options", required=True)
        if isinstance(options, str) and options.lstrip().startswith("{"):
            with contextlib.suppress(ValueError, RecursionError):  # a CSV cell may hold the options as a JSON object
                options = json.loads(options)
    else:
        options = {k: get(k, required=True) for k in LETTERS if k in fields}
    return build(
        Raw(
            id=get("id", required=True) if "id" in fields else f"{ctx.file.stem}-{n}",
            stem=get("stem", required=True),
            options=options,
            answer=get("answer", required=True),
            names={"options": "/".join(fields.get(k, "") for k in LETTERS if k in fields)} | fields,
            subjects=(get("specialty"),),
            exam_class=get("level"),
            rationale=get("rationale"),
            source=short(where, ctx),
            multi=kind_of(get("type")),
        ),
        where,
        ctx.rules,
    )


FORMAT = Format(
    name="generic",
    describe="question-bank headers (题目/题干/问题, A… or 选项A…, 答案/正确答案)",
    convert=convert,
    detect=lambda cols: guess(cols) is not None,
)
