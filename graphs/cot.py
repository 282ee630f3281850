"""cot: reason, then answer, in one generation; the letter is parsed from the text (it can fail: unparsed)."""

from __future__ import annotations

from functools import partial

from langgraph.graph import END, StateGraph

from agents.backend import Backend
from agents.prompts import load_prompts
from agents.reason import reason_node
from agents.retrieve import Retrieval
from eval.schema import RunConfig
from graphs.entry import connect_entry
from graphs.state import ChainState


def prompts_for(strategy: str, config: RunConfig) -> dict:
    """The strategy's prompts in the run's variant (RunConfig.prompt_variant, or the file's default_variant)."""
    return load_prompts(strategy, config.prompt_variant or load_prompts(strategy)["default_variant"])


def build(backend: Backend, config: RunConfig, retrieval: Retrieval | None = None):
    prompts = prompts_for("cot", config)
    graph = StateGraph(ChainState)
    graph.add_node("reason", partial(reason_node, backend=backend, prompts=prompts, max_tokens=config.draft_tokens))
    connect_entry(graph, "reason", backend, retrieval)
    graph.add_edge("reason", END)
    return graph.compile()
