"""Worked examples for kNN few-shot prompting (Medprompt): a dataset's questions, embedded once with the retrieval
embedder, and the k nearest to a question by cosine similarity.

A pool never offers the question itself, nor (unless asked) any question of the evaluated set: an example whose
answer is the test question's answer would leak it. Both are matched by id and by stem text, so a pool that holds
the same question under another id (another copy of the dataset) leaks nothing either.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from agents.prompts import render_question
from eval.core.cache import cache_dir
from eval.core.schema import Question
from retrieval.embeddings import Embedder


def _stem(question: Question) -> str:
    return "".join(question.stem.split())


class ExamplePool:
    def __init__(self, questions: Sequence[Question], embedder: Embedder, exclude: Iterable[Question] = ()):
        excluded = list(exclude)
        ids, stems = {q.id for q in excluded}, {_stem(q) for q in excluded}
        self.questions = [q for q in questions if q.id not in ids and _stem(q) not in stems]
        self.embedder = embedder
        self.vectors = self._embed_pool()

    def _embed_pool(self) -> np.ndarray:
        """Unit vectors of the pool's questions, cached on disk by content (a pool is embedded once per machine)."""
        if not self.questions:
            return np.zeros((0, 0), dtype=np.float32)
        texts = [render_question(q) for q in self.questions]
        digest = hashlib.sha256("\n\x00".join([self.embedder.name, *texts]).encode()).hexdigest()[:32]
        path = cache_dir() / "examples" / f"{digest}.npy"
        try:
            return np.load(path)
        except (OSError, ValueError):
            pass
        vectors = _unit(self.embedder.embed_passages(texts).astype(np.float32))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{np.random.default_rng().integers(1 << 30)}.tmp.npy")
        np.save(tmp, vectors)
        tmp.replace(path)
        return vectors

    def ranked(self, question: Question) -> Iterator[Question]:
        """The pool's questions, most similar to `question` first (ties in pool order), never `question` itself."""
        if not self.questions:
            return
        query = _unit(self.embedder.embed_queries([render_question(question)]).astype(np.float32))[0]
        for i in np.argsort(-(self.vectors @ query), kind="stable"):
            candidate = self.questions[i]
            if candidate.id != question.id and _stem(candidate) != _stem(question):
                yield candidate


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1, norms)
