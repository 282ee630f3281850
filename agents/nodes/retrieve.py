"""retrieve_node: top-k guideline passages for the question stem and options, trimmed to a token budget."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from agents.backends.base import Backend
from eval.core.schema import Message, RetrievedPassage, TraceStep


@dataclass(frozen=True)
class Retrieval:
    store: Any  # anything with search(query, k, mode) -> hits (retrieval.store.GuidelineStore)
    mode: str = "hybrid"
    k: int = 4
    budget_tokens: int = 1024  # passages beyond this are dropped, so the prompt never overflows n_ctx

    def describe(self) -> str:
        return f"{self.mode} k={self.k} budget={self.budget_tokens} store={self.store.fingerprint()}"


def retrieve_node(state: dict, *, retrieval: Retrieval, backend: Backend) -> dict:
    question = state["question"]
    query = f"{question.stem} {' '.join(question.options.values())}"
    start = time.perf_counter()
    hits = retrieval.store.search(query, retrieval.k, retrieval.mode)
    kept: list[RetrievedPassage] = []
    used = 0
    for hit in hits:
        cost = backend.count_tokens(f"{hit.title}\n{hit.text}") + 4  # the numbering and blank lines around it
        if used + cost > retrieval.budget_tokens:
            break
        kept.append(RetrievedPassage(id=hit.id, source=hit.source, title=hit.title, score=hit.score, text=hit.text))
        used += cost
    step = TraceStep(
        node="retrieve",
        messages=[Message(role="user", content=query)],
        output=f"{len(kept)} of {len(hits)} passages ({retrieval.mode}), {used} tokens",
        seconds=time.perf_counter() - start,
        passages=kept,
    )
    return {"passages": kept, "trace": [step]}
