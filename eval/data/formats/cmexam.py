"""CMExam CSV: Question, Options (one per line, "A 文本"), Answer, Explanation, Clinical Department, Disease Group,
Competency, Difficulty level."""

from __future__ import annotations

from eval.core.schema import Question
from eval.data.records import Ctx, Format, Raw, build, csv_rows, short


def convert(row: dict, where: str, n: int, ctx: Ctx) -> Question:
    meta = [row.get(k, "") for k in ("Clinical Department", "Disease Group", "Competency", "Difficulty level")]
    return build(
        Raw(
            id=f"cmexam-{ctx.file.stem}-{n}",
            stem=row.get("Question"),
            options=row.get("Options"),
            answer=row.get("Answer"),
            names={"stem": "Question", "options": "Options", "answer": "Answer"},
            subjects=(row.get("Clinical Department"), row.get("Disease Group")),
            rationale=row.get("Explanation", ""),
            source=" | ".join(["CMExam " + short(where, ctx), *filter(None, meta)]),
        ),
        where,
        ctx.rules,
    )


FORMAT = Format(
    name="cmexam",
    describe="CMExam columns (Question, Options, Answer, …)",
    suffixes=(".csv",),
    reader=csv_rows,
    convert=convert,
    detect=lambda cols: {"Question", "Options", "Answer"} <= cols,
    columns=("Question", "Options", "Answer"),
)
