"""Guideline retrieval: a persistent chromadb store with offline e5 embeddings, a bm25s + jieba lexical index, RRF
fusion."""


class RetrievalError(Exception):
    """The guideline store cannot be used; the message says what to do."""
