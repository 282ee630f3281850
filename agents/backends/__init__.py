"""Backends: what a node calls to reach a model (in-process llama.cpp, or an OpenAI-compatible server).

The registry: `--backend KIND` looks backends up here. A new engine is its own file, whose module declares BACKEND (a
class deriving agents.backends.base.Registered: its flags, how a run opens and records it), plus one line below.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from agents.backends.base import Registered
from eval.core.flags import flag_of

# One line per backend, in the order --help lists them: agents/backends/MODULE.py declares BACKEND.
REGISTERED = (
    "llamacpp",
    "openai",
)
BACKENDS: dict[str, type[Registered]] = {
    b.kind: b for b in (import_module(f"agents.backends.{m}").BACKEND for m in REGISTERED)
}


def backend_fields() -> dict[str, Any]:
    """Every backend's own flags by name (FieldInfo); backends that share a name must declare it alike."""
    fields: dict[str, Any] = {}
    for backend in BACKENDS.values():
        for name, field in (backend.options.model_fields if backend.options else {}).items():
            if name in fields and (fields[name].annotation, fields[name].default) != (field.annotation, field.default):
                raise TypeError(f"backend option {name!r} is declared differently by two backends")
            fields.setdefault(name, field)
    return fields


def endpoint_flags() -> set[str]:
    """The flags that say which backend runs and where its model is: a leaderboard entry's own keys set them."""
    return {"--backend"} | {flag_of(name) for b in BACKENDS.values() for name in b.endpoint}
