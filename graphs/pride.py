"""pride: single-shot answering with the model's prior over option positions removed (PriDe, Zheng et al., 2024).

Before the run, `calibration` questions drawn (seeded) from the evaluated set are asked under every rotation of
their options (agents/nodes/debias.py), which estimates the prior; every question is then answered by one forward
pass, its letters' log-probabilities less the prior's. Calibration questions are answered from their rotations;
their calls are in their own traces. single's prompts, so `pride` against `single` is debiasing alone.
"""

from __future__ import annotations

import random
from functools import partial

import structlog
from langgraph.graph import END, StateGraph
from pydantic import Field

from agents.nodes.debias import calibrate, debiased_node
from graphs.entry import connect_entry
from graphs.state import ChainState
from graphs.strategy import Build, NoOptions, Strategy


class DebiasState(ChainState, total=False):
    prior: list[float] | None  # log prior per position used (None: no calibration question had this many options)


class Options(NoOptions):
    calibration: int = Field(
        8, ge=1, description="pride: questions asked under every rotation to estimate the position prior"
    )


def build(b: Build):
    o: Options = b.options
    single = [q for q in b.evaluated if not q.multi]  # multi-answer questions are answered without a prior
    chosen = random.Random(f"{b.seed}:pride").sample(single, min(o.calibration, len(single)))
    structlog.get_logger().info("pride.calibrating", questions=len(chosen))
    calibration = calibrate(b.backend, b.prompts, chosen, b.retrieval)
    graph = StateGraph(DebiasState)
    graph.add_node("answer", partial(debiased_node, backend=b.backend, prompts=b.prompts, calibration=calibration))
    connect_entry(graph, "answer", b.backend, b.retrieval)
    graph.add_edge("answer", END)
    return graph.compile()


STRATEGY = Strategy(
    "pride",
    "single-shot with the model's prior over option positions, estimated on rotated calibration questions, removed",
    build,
    Options,
    prompts="single",
    first_proposal="before debiasing",
    extras=("prior",),
)
