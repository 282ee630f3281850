"""The graph registry: `--graph NAME` looks strategies up here. A new strategy is one file plus one line.

Any graph can be preceded by guideline retrieval: `NAME+rag` (or `--retrieval` on the CLI).
"""

from __future__ import annotations

from collections.abc import Callable

from graphs import cot, reflect, sc, single

GRAPHS: dict[str, Callable] = {
    "single": single.build,
    "reflect": reflect.build,
    "cot": cot.build,
    "sc": sc.build,
}
RAG_SUFFIX = "+rag"


class UnknownGraph(Exception):
    pass


def parse_graph_name(name: str) -> tuple[str, bool]:
    """'reflect+rag' -> ('reflect', True): the strategy and whether it retrieves."""
    base, rag = (name[: -len(RAG_SUFFIX)], True) if name.endswith(RAG_SUFFIX) else (name, False)
    if base not in GRAPHS:
        choices = ", ".join(f"{g}, {g}{RAG_SUFFIX}" for g in GRAPHS)
        raise UnknownGraph(f"unknown graph {name!r}; choose one of: {choices}")
    return base, rag


def get_graph(name: str) -> Callable:
    return GRAPHS[parse_graph_name(name)[0]]
