"""reflect: draft -> critique -> extract; with --rounds R, up to R-1 revise -> critique loops before extracting.

The critic and the extractor may be other models than the drafter (--critic-model, --extract-model): critique by a
colleague instead of self-critique.

The loop stops early when the critic proposes nothing different from the drafter's current answer.
"""

from __future__ import annotations

from functools import partial

from langgraph.graph import END, StateGraph
from pydantic import Field

from agents.answer import parse_answer
from agents.nodes.critique import critique_node
from agents.nodes.draft import draft_node
from agents.nodes.extract import extract_answer
from agents.nodes.revise import revise_node
from graphs.entry import connect_entry
from graphs.state import ChainState
from graphs.strategy import Budgets, Build, Strategy


class Options(Budgets):
    critique_tokens: int = Field(512, ge=1, description="reflect: token budget of a critique")
    rounds: int = Field(
        1,
        ge=1,
        description="reflect: critique rounds at most, revising in between (stops early when the critic agrees)",
    )


def build(b: Build):
    o: Options = b.options
    graph = StateGraph(ChainState)
    graph.add_node("draft", partial(draft_node, backend=b.backend, prompts=b.prompts, max_tokens=o.draft_tokens))
    critic = b.backend_for("critic")
    critique = partial(critique_node, backend=critic, prompts=b.prompts, max_tokens=o.critique_tokens)
    graph.add_node("critique", critique)
    graph.add_node("extract", partial(extract_answer, backend=b.backend_for("extract"), prompts=b.prompts))
    connect_entry(graph, "draft", b.backend, b.retrieval)
    graph.add_edge("draft", "critique")
    if o.rounds > 1:
        graph.add_node("revise", partial(revise_node, backend=b.backend, prompts=b.prompts, max_tokens=o.draft_tokens))
        graph.add_conditional_edges("critique", partial(after_critique, rounds=o.rounds), ["revise", "extract"])
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
    suggested = parse_answer(state["critique"], question)
    return "revise" if suggested is not None and suggested != state.get("proposal") else "extract"


STRATEGY = Strategy(
    "reflect",
    "draft -> critique -> extraction by next-token scores; --rounds R revises between up to R critiques",
    build,
    Options,
    first_proposal="draft",
    extras=("revisions",),
    roles=("critic", "extract"),
    # A revision and a critique per round stay in the conversation.
    generated_tokens=lambda o: o.rounds * (o.draft_tokens + o.critique_tokens),
    budgets={"critique": "critique_tokens"},
)
