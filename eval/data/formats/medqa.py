"""MedQA (Mainland) JSONL: question, options {A: …}, answer (the option's text), answer_idx (its letter), meta_info."""

from __future__ import annotations

from typing import Any

from eval.core.schema import Question
from eval.data.records import Ctx, Format, Raw, bad, build, jsonl_rows, need_object, short
from eval.data.text import plain


def convert(record: Any, where: str, n: int, ctx: Ctx) -> Question:
    record = need_object(record, where)
    options, text, letter = record.get("options"), record.get("answer"), record.get("answer_idx")
    if isinstance(options, dict):
        # answer_idx is the key, answer its text; when both are there they must agree.
        if letter is None:
            letter = next((k for k, v in options.items() if plain(v) == plain(text)), None)
            if letter is None:
                raise bad(where, "answer", f"the text of one of the options, got {plain(text)!r}")
        elif text is not None and plain(options.get(plain(letter))) != plain(text):
            raise bad(where, "answer", f"the text of option {plain(letter)!r} (answer_idx), got {plain(text)!r}")
    return build(
        Raw(
            id=f"medqa-{ctx.file.stem}-{n}",
            stem=record.get("question"),
            options=options,
            answer=letter,
            names={"stem": "question", "options": "options", "answer": "answer_idx"},
            subjects=(record.get("meta_info"),),
            source=" | ".join(filter(None, ["MedQA " + short(where, ctx), plain(record.get("meta_info"))])),
        ),
        where,
        ctx.rules,
    )


FORMAT = Format(
    name="medqa",
    describe="MedQA fields (question, options, answer_idx, …)",
    suffixes=(".jsonl",),
    reader=jsonl_rows,
    convert=convert,
    detect=lambda cols: "stem" not in cols and {"question", "options"} <= cols,
)
