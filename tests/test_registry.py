"""The graph registry: each name builds its own strategy (told apart by what it does), NAME+rag the same one."""

import pytest
from conftest import FakeBackend

from eval.runner import predict
from eval.schema import RunConfig
from graphs import GRAPHS, RAG_SUFFIX, UnknownGraph, get_graph, parse_graph_name

CONFIG = RunConfig(graphs=["single"], model="m", model_sha256="", data="d", data_sha256="", question_ids=[], samples=3)

# What each strategy does with a backend that always replies "答案：B": its trace's nodes and the backend calls it makes.
BEHAVIOUR = {
    "single": (["answer"], ["score"]),
    "reflect": (["draft", "critique", "extract"], ["chat", "chat", "score"]),
    "cot": (["reason"], ["chat"]),
    "sc": (["sample"] * 3, ["chat"] * 3),
}


def test_every_registered_graph_is_checked_below():
    assert set(GRAPHS) == set(BEHAVIOUR), "a new strategy needs its line in BEHAVIOUR"


@pytest.mark.parametrize("name", sorted(BEHAVIOUR))
def test_each_name_builds_its_own_strategy(name, question):
    nodes, calls = BEHAVIOUR[name]
    for registered in (name, name + RAG_SUFFIX):
        backend = FakeBackend(replies=["答案：B"] * 5)
        prediction = predict(registered, get_graph(registered)(backend, CONFIG), question)
        assert [s.node for s in prediction.trace] == nodes
        assert [kind for kind, _ in backend.calls] == calls
        assert (prediction.graph, prediction.answer, prediction.correct) == (registered, "B", True)
    assert parse_graph_name(name) == (name, False) and parse_graph_name(name + RAG_SUFFIX) == (name, True)


@pytest.mark.parametrize("name", ["nope", "single+rag+rag", "+rag", "Single", ""])
def test_unknown_graph_names_every_choice(name):
    with pytest.raises(UnknownGraph) as raised:
        get_graph(name)
    choices = "single, single+rag, reflect, reflect+rag, cot, cot+rag, sc, sc+rag"
    assert str(raised.value) == f"unknown graph {name!r}; choose one of: {choices}"
