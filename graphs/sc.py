"""sc (self-consistency): k chains of thought sampled with distinct seeds -> majority vote over their letters.

k is RunConfig.samples (default 5), the temperature RunConfig.sample_temperature (default 0.7); the prompts are
cot's. Unparsed drafts do not vote; when none parses, the answer is unparsed. Ties: see agents/vote.majority.
"""

from __future__ import annotations

from functools import partial

from langgraph.graph import END, StateGraph

from agents.backend import Backend
from agents.retrieve import Retrieval
from agents.sample import sample_node
from agents.vote import vote_node
from eval.schema import RunConfig
from graphs.cot import prompts_for
from graphs.entry import connect_entry
from graphs.state import ChainState


class VoteState(ChainState, total=False):
    votes: list[str | None]  # the letter each draft named, in draw order (None: it named none)


def build(backend: Backend, config: RunConfig, retrieval: Retrieval | None = None):
    prompts = prompts_for("sc", config)
    graph = StateGraph(VoteState)
    sample = partial(
        sample_node,
        backend=backend,
        prompts=prompts,
        max_tokens=config.draft_tokens,
        k=config.samples,
        temperature=config.sample_temperature,
        seed=config.seed,
    )
    graph.add_node("sample", sample)
    graph.add_node("vote", vote_node)
    connect_entry(graph, "sample", backend, retrieval)
    graph.add_edge("sample", "vote")
    graph.add_edge("vote", END)
    return graph.compile()
