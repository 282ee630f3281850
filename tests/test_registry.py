import pytest

from graphs import GRAPHS, UnknownGraph, get_graph


def test_registry_has_the_baseline_and_the_chain():
    assert {"single", "reflect"} <= set(GRAPHS)


def test_unknown_graph_names_the_choices():
    with pytest.raises(UnknownGraph, match="single.*reflect|reflect.*single"):
        get_graph("nope")
