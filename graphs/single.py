"""single: the single-shot baseline, one node."""

from __future__ import annotations

from functools import partial

from langgraph.graph import END, StateGraph

from agents.backend import Backend
from agents.prompts import load_prompts
from agents.retrieve import Retrieval
from agents.single_shot import single_shot_node
from eval.schema import RunConfig
from graphs.entry import connect_entry
from graphs.state import ChainState


def build(backend: Backend, config: RunConfig, retrieval: Retrieval | None = None):
    prompts = load_prompts("single")
    graph = StateGraph(ChainState)
    graph.add_node("answer", partial(single_shot_node, backend=backend, prompts=prompts))
    connect_entry(graph, "answer", backend, retrieval)
    graph.add_edge("answer", END)
    return graph.compile()
