"""Guideline retrieval (a chromadb store with offline embeddings) plugs in here; see the retrieval issue."""
