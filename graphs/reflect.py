"""reflect: draft -> critique -> extract; with --rounds R, up to R-1 revise -> critique loops before extracting.

The loop stops early when the critic proposes nothing different from the drafter's current answer.
"""

from __future__ import annotations

from functools import partial

from langgraph.graph import END, StateGraph

from agents.answer import parse_letter
from agents.backend import Backend
from agents.critique import critique_node
from agents.draft import draft_node
from agents.extract import extract_answer
from agents.prompts import load_prompts
from agents.retrieve import Retrieval
from agents.revise import revise_node
from eval.schema import RunConfig
from graphs.entry import connect_entry
from graphs.state import ChainState


def build(backend: Backend, config: RunConfig, retrieval: Retrieval | None = None):
    prompts = load_prompts("reflect")
    graph = StateGraph(ChainState)
    graph.add_node("draft", partial(draft_node, backend=backend, prompts=prompts, max_tokens=config.draft_tokens))
    graph.add_node(
        "critique", partial(critique_node, backend=backend, prompts=prompts, max_tokens=config.critique_tokens)
    )
    graph.add_node("extract", partial(extract_answer, backend=backend, prompts=prompts))
    connect_entry(graph, "draft", backend, retrieval)
    graph.add_edge("draft", "critique")
    if config.rounds > 1:
        graph.add_node("revise", partial(revise_node, backend=backend, prompts=prompts, max_tokens=config.draft_tokens))
        graph.add_conditional_edges("critique", partial(after_critique, rounds=config.rounds), ["revise", "extract"])
        graph.add_edge("revise", "critique")
    else:
        graph.add_edge("critique", "extract")
    graph.add_edge("extract", END)
    return graph.compile()


def after_critique(state: ChainState, *, rounds: int) -> str:
    """Revise when the critic proposes a letter other than the drafter's current one.

    The critic usually discusses the draft's letter too ("草稿答案B有误"); parse_letter takes its own proposal, the
    last explicit statement ("建议答案：C"), over such mentions wherever they stand.
    """
    if state.get("revisions", 0) + 1 >= rounds:
        return "extract"
    question = state["question"]
    suggested = parse_letter(state["critique"], question.letters, question.options)
    return "revise" if suggested is not None and suggested != state.get("proposal") else "extract"
