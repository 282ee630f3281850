"""single: the single-shot baseline, one node."""

from __future__ import annotations

from functools import partial

from langgraph.graph import END, StateGraph

from agents.nodes.single_shot import single_shot_node
from graphs.entry import connect_entry
from graphs.state import ChainState
from graphs.strategy import Build, Strategy


def build(b: Build):
    graph = StateGraph(ChainState)
    graph.add_node("answer", partial(single_shot_node, backend=b.backend, prompts=b.prompts))
    connect_entry(graph, "answer", b.backend, b.retrieval)
    graph.add_edge("answer", END)
    return graph.compile()


STRATEGY = Strategy("single", "the option letter with the highest next-token probability, no generation", build)
