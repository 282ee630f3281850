"""Where a graph starts: at its first node, or at a retrieve node that feeds it guideline passages."""

from __future__ import annotations

from functools import partial

from langgraph.graph import START, StateGraph

from agents.backends.base import Backend
from agents.nodes.retrieve import Retrieval, retrieve_node


def connect_entry(graph: StateGraph, first: str, backend: Backend, retrieval: Retrieval | None) -> None:
    if retrieval is None:
        graph.add_edge(START, first)
        return
    graph.add_node("retrieve", partial(retrieve_node, retrieval=retrieval, backend=backend))
    graph.add_edge(START, "retrieve")
    graph.add_edge("retrieve", first)
