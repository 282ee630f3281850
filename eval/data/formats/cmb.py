"""CMB JSON: a list of {id, exam_type, exam_class, exam_subject, question, answer, question_type, option {A: …}};
the answers may come in a second file joined by id (--answers)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from eval.core.schema import Question
from eval.data.errors import DataError
from eval.data.records import Ctx, Format, Raw, bad, build, json_rows, jsonl_rows, kind_of, need_object, options_of
from eval.data.text import plain

NAMES = {"stem": "question", "options": "option", "answer": "answer"}
META = ("exam_type", "exam_class", "exam_subject", "question_type")


def derived_id(record: dict, where: str) -> str:
    """The id of a record without one (CMB's documented item format has none): a hash of what the item is, its
    metadata, question and options as read. Not its position: that shifts when the file is reordered, filtered or
    re-split, and a resumed run or a comparison of two runs would pair different questions under one id. Not its
    answer: a corrected key is the same question (key_sha256 tells keys apart). Options as read, not as written, so
    the same item in JSON and in Parquet (which pads a missing option with null) gets the same id."""
    content = [
        *(plain(record.get(k)) for k in META),
        plain(record.get("question")),
        options_of(record.get("option"), where, NAMES),
    ]
    return "cmb-" + hashlib.sha256(json.dumps(content, ensure_ascii=False).encode()).hexdigest()[:16]


def convert(record: Any, where: str, n: int, ctx: Ctx) -> Question:
    record = need_object(record, where)
    if "id" in record:
        qid = plain(record["id"])
    elif ctx.answers is not None:
        raise bad(where, "id", "an id (answers files are joined by it)")
    else:
        qid = derived_id(record, where)
    if ctx.answers is not None:
        if qid not in ctx.answers:
            raise bad(where, "answer", f"an answer for id {qid!r} in the answers file")
        answer = ctx.answers[qid]
    elif "answer" in record:
        answer = record["answer"]
    else:
        raise bad(where, "answer", "an answer field, or an answers file joined by id (--answers)")
    return build(
        Raw(
            id=qid,
            stem=record.get("question"),
            options=record.get("option"),
            answer=answer,
            names=NAMES,
            subjects=(record.get("exam_subject"),),
            exam_class=record.get("exam_class"),
            source=" | ".join(["CMB", *filter(None, (plain(record.get(k)) for k in META))]),
            multi=kind_of(record.get("question_type")),
        ),
        where,
        ctx.rules,
    )


def read_answers(path: Path, text: str) -> dict[str, Any]:
    """A CMB answers file: records of the questions' shape with at least id and answer; JSON list or JSONL."""
    key: dict[str, Any] = {}
    rows = json_rows if path.suffix.lower() == ".json" else jsonl_rows
    for where, record in rows(path, lambda: text).records:
        if isinstance(record, DataError):
            raise record
        if not isinstance(record, dict) or "id" not in record or "answer" not in record:
            raise bad(where, "id, answer", "an object with an id and an answer")
        key[plain(record["id"])] = record["answer"]
    return key


FORMAT = Format(
    name="cmb",
    describe="CMB records (question, option, answer, …)",
    suffixes=(".json",),
    reader=json_rows,
    convert=convert,
    detect=lambda cols: {"question", "option"} <= cols,
)
