"""single: the single-shot baseline, one node."""

from __future__ import annotations

from functools import partial

from langgraph.graph import END, START, StateGraph

from agents.backend import Backend
from agents.prompts import load_prompts
from agents.single_shot import single_shot_node
from graphs.state import ChainState
from eval.schema import RunConfig


def build(backend: Backend, config: RunConfig):
    prompts = load_prompts("single")
    graph = StateGraph(ChainState)
    graph.add_node("answer", partial(single_shot_node, backend=backend, prompts=prompts))
    graph.add_edge(START, "answer")
    graph.add_edge("answer", END)
    return graph.compile()
