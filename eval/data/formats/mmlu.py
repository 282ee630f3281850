"""CMMLU (Question, A–D, Answer) and C-Eval (id, question, A–D, answer, explanation) CSV, one file per subject."""

from __future__ import annotations

from eval.core.schema import LETTERS, Question
from eval.data.records import Ctx, Format, Raw, build, csv_rows, short


def convert(row: dict, where: str, n: int, ctx: Ctx) -> Question:
    """The subject is the file name."""
    stem = "Question" if "Question" in row else "question"
    answer = "Answer" if "Answer" in row else "answer"
    letters = [k for k in LETTERS if k in row]  # A–D (the header is checked); a later column only if the file has it
    return build(
        Raw(
            id=f"{ctx.file.stem}-{row.get('id') or n}",
            stem=row.get(stem),
            options={k: row.get(k, "") for k in letters},
            answer=row.get(answer),
            names={"stem": stem, "options": f"A–{letters[-1]}", "answer": answer} | {k: k for k in letters},
            subjects=(ctx.file.stem.replace("_", " "),),
            rationale=row.get("explanation", ""),
            source=short(where, ctx),
        ),
        where,
        ctx.rules,
    )


FORMAT = Format(
    name="mmlu",
    describe="CMMLU/C-Eval columns (Question, A, B, C, D, Answer)",
    suffixes=(".csv",),
    reader=csv_rows,
    convert=convert,
    detect=lambda cols: {"A", "B", "C", "D"} <= cols and bool(cols & {"Question", "question"}),
    columns=("Question|question", "A", "B", "C", "D", "Answer|answer"),
)
