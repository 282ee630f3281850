"""The graph registry: `--graph NAME` looks strategies up here. A new strategy is one file plus one line."""

from __future__ import annotations

from collections.abc import Callable

from graphs import reflect, single

GRAPHS: dict[str, Callable] = {
    "single": single.build,
    "reflect": reflect.build,
}


class UnknownGraph(Exception):
    pass


def get_graph(name: str) -> Callable:
    try:
        return GRAPHS[name]
    except KeyError:
        raise UnknownGraph(f"unknown graph {name!r}; choose one of: {', '.join(GRAPHS)}") from None
