"""The state every graph passes between its nodes."""

from __future__ import annotations

import operator
from typing import Annotated, TypedDict

from eval.core.schema import Message, Question, RetrievedPassage, TraceStep


class ChainState(TypedDict, total=False):
    question: Question
    passages: list[RetrievedPassage]  # retrieved guideline context, when the graph retrieves
    messages: list[Message]  # the conversation so far; each node extends it (and so the cached prompt prefix)
    draft: str
    draft_answer: str | None  # what the draft itself concluded, to see whether later nodes changed it
    critique: str
    proposal: str | None  # the drafter's current answer (after revisions)
    revisions: int  # reflect: critique/revise rounds done beyond the first critique
    answer: str | None
    answer_method: str
    trace: Annotated[list[TraceStep], operator.add]  # each node appends its steps
