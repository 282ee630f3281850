"""sc (self-consistency): k chains of thought sampled with distinct seeds -> majority vote over their letters.

k is the option `samples` (default 5), the temperature `sample_temperature` (default 0.7); the prompts are
cot's (sc.toml uses them by reference). Unparsed drafts do not vote; when none parses, the answer is unparsed.
Ties: see agents/nodes/vote.majority.
"""

from __future__ import annotations

from functools import partial

from langgraph.graph import END, StateGraph
from pydantic import Field

from agents.nodes.sample import sample_node
from agents.nodes.vote import vote_node
from graphs.entry import connect_entry
from graphs.state import ChainState
from graphs.strategy import Budgets, Build, Strategy


class VoteState(ChainState, total=False):
    votes: list[str | None]  # the letter each draft named, in draw order (None: it named none)


class Options(Budgets):
    samples: int = Field(5, ge=1, le=1000, description="sc: sampled drafts per question (k)")
    sample_temperature: float = Field(0.7, ge=0.0, description="sc: sampling temperature")


def build(b: Build):
    o: Options = b.options
    graph = StateGraph(VoteState)
    sample = partial(
        sample_node,
        backend=b.backend,
        prompts=b.prompts,
        max_tokens=o.draft_tokens,
        k=o.samples,
        temperature=o.sample_temperature,
        seed=b.seed,
    )
    graph.add_node("sample", sample)
    # langgraph types a node's input as a TypedDict, dataclass or model, and would then hand the node only that
    # schema's keys; the nodes take the whole state as a dict
    graph.add_node("vote", vote_node)  # type: ignore[type-var]
    connect_entry(graph, "sample", b.backend, b.retrieval)
    graph.add_edge("sample", "vote")
    graph.add_edge("vote", END)
    return graph.compile()


STRATEGY = Strategy(
    "sc",
    "self-consistency: k sampled chains of thought, majority vote",
    build,
    Options,
    prompts="sc",
    first_proposal="first sample",
    extras=("votes",),
)
