"""The graph registry: each name builds its own strategy (told apart by what it does), NAME+rag the same one."""

import pytest
from fakes import FakeBackend

from eval.core.schema import RunConfig
from eval.run.runner import predict
from graphs import RAG_SUFFIX, STRATEGIES, GraphSpec, UnknownGraph, build_graph

CONFIG = RunConfig(
    graphs=["single"],
    model="m",
    model_sha256="",
    data="d",
    data_sha256="",
    question_ids=[],
    # medprompt without a pool of worked examples: zero-shot, its choice-shuffle ensemble alone (two orders: a tie
    # between positional votes goes to the original order).
    options={"sc": {"samples": 3}, "medprompt": {"knn_examples": 0, "shuffles": 2}},
)

# What some strategies do with a backend that always replies "答案：B": their trace's nodes and backend calls.
BEHAVIOUR = {
    "single": (["answer"], ["score"]),
    "reflect": (["draft", "critique", "extract"], ["chat", "chat", "score"]),
    "cot": (["reason"], ["chat"]),
    "sc": (["sample"] * 3, ["chat"] * 3),
}


def run_each(name: str, question):
    """Every registered name, plain and +rag, on a fake that always replies "答案：B" (and scores B highest)."""
    for registered in (name, name + RAG_SUFFIX):
        backend = FakeBackend(replies=["答案：B"] * 5)
        graph = build_graph(registered, backend, CONFIG, evaluated=[question])  # pride calibrates on it
        yield registered, backend, predict(registered, graph, question)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_builds_answers_and_records_what_it_declares(name, question):
    strategy = STRATEGIES[name]
    for registered, backend, prediction in run_each(name, question):
        assert prediction.parse_status == "ok" and prediction.trace, prediction.error
        assert (prediction.graph, prediction.answer, prediction.correct) == (registered, "B", True)
        assert prediction.model_calls == len(backend.calls)
        assert prediction.first_proposal == strategy.first_proposal
        assert (prediction.draft_answer == "B") == bool(strategy.first_proposal)
        assert set(prediction.extras) == set(strategy.extras)
    plain, rag = GraphSpec.parse(name), GraphSpec.parse(name + RAG_SUFFIX)
    assert (plain.name, plain.rag, rag.name, rag.rag) == (name, False, name + RAG_SUFFIX, True)
    assert plain.strategy is rag.strategy is strategy


def test_strategies_are_told_apart_by_what_they_do(question):
    """No two registered names build the same graph: their traces (nodes and backend calls) all differ."""
    seen = {}
    for name in STRATEGIES:
        _, backend, prediction = next(run_each(name, question))
        seen[name] = ([s.node for s in prediction.trace], [kind for kind, _ in backend.calls])
    assert len(set(map(str, seen.values()))) == len(seen), seen
    for name, expected in BEHAVIOUR.items():
        assert seen[name] == expected, name


@pytest.mark.parametrize("name", ["nope", "single+rag+rag", "+rag", "Single", ""])
def test_unknown_graph_names_every_choice(name):
    with pytest.raises(UnknownGraph) as raised:
        GraphSpec.parse(name)
    choices = ", ".join(f"{name}, {name}+rag" for name in STRATEGIES)
    assert choices.startswith("single, single+rag, reflect, reflect+rag, cot, cot+rag, sc, sc+rag")
    assert str(raised.value) == f"unknown graph {name!r}; choose one of: {choices}"
