"""Backends: what a node calls to reach a model (in-process llama.cpp, or an OpenAI-compatible server)."""
