"""reflect: draft -> critique -> extract."""

from __future__ import annotations

from functools import partial

from langgraph.graph import END, StateGraph

from agents.backend import Backend
from agents.critique import critique_node
from agents.draft import draft_node
from agents.extract import extract_answer
from agents.prompts import load_prompts
from agents.retrieve import Retrieval
from eval.schema import RunConfig
from graphs.entry import connect_entry
from graphs.state import ChainState


def build(backend: Backend, config: RunConfig, retrieval: Retrieval | None = None):
    prompts = load_prompts("reflect")
    graph = StateGraph(ChainState)
    graph.add_node("draft", partial(draft_node, backend=backend, prompts=prompts, max_tokens=config.draft_tokens))
    graph.add_node("critique", partial(critique_node, backend=backend, prompts=prompts, max_tokens=config.critique_tokens))
    graph.add_node("extract", partial(extract_answer, backend=backend, prompts=prompts))
    connect_entry(graph, "draft", backend, retrieval)
    graph.add_edge("draft", "critique")
    graph.add_edge("critique", "extract")
    graph.add_edge("extract", END)
    return graph.compile()
