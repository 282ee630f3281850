"""cot: reason, then answer, in one generation; the letter is parsed from the text (it can fail: unparsed)."""

from __future__ import annotations

from functools import partial

from langgraph.graph import END, StateGraph

from agents.nodes.reason import reason_node
from graphs.entry import connect_entry
from graphs.state import ChainState
from graphs.strategy import Budgets, Build, Strategy


def build(b: Build):
    graph = StateGraph(ChainState)
    reason = partial(reason_node, backend=b.backend, prompts=b.prompts, max_tokens=b.options.draft_tokens)
    graph.add_node("reason", reason)
    connect_entry(graph, "reason", b.backend, b.retrieval)
    graph.add_edge("reason", END)
    return graph.compile()


STRATEGY = Strategy("cot", "reasons, then names a letter, parsed from the text", build, Budgets)
