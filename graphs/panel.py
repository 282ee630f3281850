"""panel: two or three clinician roles answer independently; a chair reads their opinions and commits to one
letter by next-token scores over the options (so the panel's answer is never unparsed)."""

from __future__ import annotations

from functools import partial

from langgraph.graph import END, StateGraph
from pydantic import Field

from agents.nodes.panel import aggregate_node, opinions_node
from graphs.entry import connect_entry
from graphs.state import ChainState
from graphs.strategy import Budgets, Build, Strategy


class PanelState(ChainState, total=False):
    opinions: list[str]  # each panellist's reply, headed by its role
    panel_letters: list[str | None]  # the letter each panellist named (None: none)


class Options(Budgets):
    panellists: int = Field(3, ge=2, le=3, description="panel: clinician roles that answer independently (2 or 3)")


def build(b: Build):
    o: Options = b.options
    graph = StateGraph(PanelState)
    opinions = partial(
        opinions_node, backend=b.backend, prompts=b.prompts, max_tokens=o.draft_tokens, panellists=o.panellists
    )
    graph.add_node("opinions", opinions)
    graph.add_node("aggregate", partial(aggregate_node, backend=b.backend_for("extract"), prompts=b.prompts))
    connect_entry(graph, "opinions", b.backend, b.retrieval)
    graph.add_edge("opinions", "aggregate")
    graph.add_edge("aggregate", END)
    return graph.compile()


STRATEGY = Strategy(
    "panel",
    "2-3 clinician roles answer independently; a chair weighs their opinions and commits by next-token scores",
    build,
    Options,
    first_proposal="first panellist",
    extras=("panel_letters",),
    roles=("extract",),  # the chair
    # Each opinion goes into the chair's prompt.
    generated_tokens=lambda o: o.panellists * (o.draft_tokens + 32),
)
