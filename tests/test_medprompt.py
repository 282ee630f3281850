"""medprompt: kNN example selection (never leaking the test question), the cached self-generated reasoning, the
choice-shuffle ensemble's permutations and votes; then once through a real tiny model."""

from __future__ import annotations

import dataclasses
import json
import math
import time

import numpy as np
import pytest
import structlog
from conftest import TINY
from fakes import FakeBackend, run_config

from agents.nodes.ensemble import ensemble_node, option_orders
from agents.nodes.examples import ExampleReasoning, examples_node
from agents.prompts import load_prompts
from eval.api import RunSpec, evaluate
from eval.core.schema import Question
from eval.core.shuffle import reorder, rotate
from eval.core.store import RunDirError, read_manifest
from eval.data import BUNDLED, DataError, load_questions, select
from eval.run.runner import predict
from graphs import build_graph
from retrieval.examples import ExamplePool

PROMPTS = load_prompts("medprompt", "zh")


class CharEmbedder:
    """Character-count vectors: questions that share characters are near. For pure selection logic only."""

    name = "chars"

    def embed_queries(self, texts):
        return np.array([[t.count(c) for c in "甲乙丙丁心肺肝肾血"] for t in texts], dtype=np.float32)

    embed_passages = embed_queries


def q(qid: str, stem: str, answer: str = "A") -> Question:
    return Question(id=qid, stem=stem, options={"A": "甲", "B": "乙", "C": "丙", "D": "丁"}, answer=answer)


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CLINICAL_EVAL_CACHE", str(tmp_path / "cache"))


def test_the_pool_never_offers_the_question_or_an_evaluated_one():
    test = q("t-1", "心心心肺")
    evaluated = [test, q("t-2", "心心心心")]
    pool = [
        q("t-1", "心心心肺"),  # the question itself, same id
        q("copy", "心心 心肺"),  # the question under another id (whitespace aside, the same stem)
        q("t-2", "心心心心"),  # another evaluated question
        q("p-1", "心心肺肺"),
        q("p-2", "肝肝肝"),
        q("p-3", "心心心心心"),  # one more 心 than t-2: another question
    ]
    ranked = [e.id for e in ExamplePool(pool, CharEmbedder(), exclude=evaluated).ranked(test)]
    assert ranked == ["p-3", "p-1", "p-2"]  # cosine 0.94, 0.93, 0.30
    # With the evaluated set allowed (--pool-overlap), t-2 may be offered; the question itself still never is.
    overlap = [e.id for e in ExamplePool(pool, CharEmbedder()).ranked(test)]
    assert "t-2" in overlap and not {"t-1", "copy"} & set(overlap)


def test_examples_keep_only_reasoning_that_reached_the_key_and_cache_it(tmp_path):
    test = q("t-1", "心心肺")
    pool = ExamplePool([q("p-1", "心肺", "A"), q("p-2", "心肺肺", "B"), q("p-3", "心", "C")], CharEmbedder())
    # Nearest first: p-1, p-3, p-2. p-1's reasoning names its key; p-3's another letter (dropped); p-2's its key.
    backend = FakeBackend(replies=["……\n答案：A", "……\n答案：A", "……\n答案：B"])
    path = tmp_path / "reasoning.jsonl"

    def examples(model):
        reasoning = ExampleReasoning(model, PROMPTS, 64, path)
        return examples_node({"question": test}, pool=pool, k=2, reasoning=reasoning, answer_prefix="", attempts=3)

    update = examples(backend)
    assert update["example_ids"] == ["p-1", "p-2"] and len(backend.calls) == 3
    assert "trace" not in update  # the pool's preprocessing: none of the question's calls, tokens or seconds
    assert update["examples"][0][1] == "分析：……\n答案：A"  # the reply as generated, prefix included
    # Cached: a new run (a new ExampleReasoning on the same file) asks the model nothing.
    again = FakeBackend()
    update = examples(again)
    assert update["example_ids"] == ["p-1", "p-2"] and again.calls == []
    # A line cut short by a kill is skipped, not fatal: that example is made again.
    path.write_text(path.read_text(encoding="utf-8") + '{"key": "p-9:', encoding="utf-8")
    assert len(ExampleReasoning(FakeBackend(), PROMPTS, 64, path).known) == 3
    # Answer-only examples: no model call, the key as the reply.
    update = examples_node({"question": test}, pool=pool, k=2, reasoning=None, answer_prefix="答案：", attempts=3)
    assert [reply for _, reply in update["examples"]] == ["答案：A", "答案：C"]


class SlowBackend(FakeBackend):
    def chat(self, messages, **kwargs):
        start = time.perf_counter()
        time.sleep(0.2)
        return dataclasses.replace(super().chat(messages, **kwargs), seconds=time.perf_counter() - start)


def test_a_weak_models_example_reasoning_stops_at_its_attempts(tmp_path):
    """Reasoning that misses every key is tried on k x attempts candidates, no more (it was k x 3, always)."""
    test = q("t-1", "心心肺")
    pool = ExamplePool([q(f"p-{i}", "心肺" + "肺" * i, "A") for i in range(6)], CharEmbedder())
    backend = FakeBackend(replies=["答案：B"] * 6)
    update = examples_node(
        {"question": test},
        pool=pool,
        k=2,
        reasoning=ExampleReasoning(backend, PROMPTS, 64, tmp_path / "reasoning.jsonl"),
        answer_prefix="",
        attempts=2,
    )
    assert update["examples"] == [] and len(backend.calls) == 4


def test_the_examples_reasoning_time_is_not_the_questions(tmp_path):
    """Medprompt's example reasoning is the pool's preprocessing: a question's seconds are its own calls' (its
    trace's), never the reasoning it happened to need first (else its time would depend on what the cache held).
    Through the compiled graph (a key its state schema lacked would be dropped without a word)."""
    chosen = select(load_questions(BUNDLED), limit=3)
    pool = tmp_path / "pool.jsonl"
    # Both examples keyed A, so each reply "答案：A" reaches its example's key (kept), whichever is nearer.
    examples = [q.model_copy(update={"answer": "A"}) for q in chosen[1:]]
    pool.write_text("".join(q.model_dump_json() + "\n" for q in examples), encoding="utf-8")
    config = run_config("medprompt", pool=str(pool), knn_examples=2, shuffles=1)
    backend = SlowBackend(["答案：A", "答案：A", f"答案：{chosen[0].answer}"])
    graph = build_graph("medprompt", backend, config)
    start = time.perf_counter()
    prediction = predict("medprompt", graph, chosen[0])
    elapsed = time.perf_counter() - start
    assert len(prediction.extras["example_ids"]) == 2 and prediction.correct
    assert elapsed - prediction.seconds >= 0.4  # the two examples' replies, 0.2 s each, are not the question's
    assert prediction.seconds >= 0.2  # its own reply is
    assert prediction.seconds == sum(s.seconds for s in prediction.trace) and prediction.model_calls == 1


def test_every_rotation_is_shown_its_original_orders_examples(tmp_path):
    """The candidates listed before the run are its original question's: a --circular run's rotations differ in the
    option order alone, and reason about no example the announced bound left out."""
    test = q("t-1", "心心肺")
    pool = ExamplePool([q("p-1", "心肺", "A"), q("p-2", "肝", "A"), q("p-3", "心肺肺", "A")], CharEmbedder())
    planned = {"t-1": [e for e in pool.questions if e.id in ("p-2", "p-3")]}  # not the nearest: the plan decides
    backend = FakeBackend(replies=["答案：A"] * 2)
    update = examples_node(
        {"question": rotate(test, 1)},
        pool=pool,
        k=2,
        reasoning=ExampleReasoning(backend, PROMPTS, 64, tmp_path / "reasoning.jsonl"),
        answer_prefix="",
        attempts=1,
        planned=planned,
    )
    assert update["example_ids"] == ["p-2", "p-3"] and len(backend.calls) == 2


def test_the_attempts_cap_is_in_the_help(capsys, own_logging):
    from eval import agentic

    with pytest.raises(SystemExit):
        agentic.main(["--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "--example-attempts EXAMPLE_ATTEMPTS" in shown and "the most calls this can take" in shown


def test_option_orders_are_distinct_seeded_and_start_with_the_original():
    question = q("t-1", "心")
    orders = option_orders(question, 5, seed=0)
    assert orders[0] == "ABCD" and len(set(orders)) == 5 and all(sorted(o) == list("ABCD") for o in orders)
    assert option_orders(question, 5, seed=0) == orders and option_orders(question, 5, seed=1) != orders
    assert len(option_orders(q("t-2", "肺").model_copy(update={"options": {"A": "x", "B": "y"}}), 5, 0)) == 2
    assert len(set(option_orders(question, 30, seed=0))) == math.factorial(4)


def test_the_ensemble_maps_each_vote_back_to_the_original_letters():
    question = q("t-1", "心", answer="C")  # 丙
    orders = option_orders(question, 3, seed=0)
    # The model always names the letter showing 丙 in orders 1 and 2, and A in the original order.
    replies = ["答案：A"] + [f"答案：{'ABCD'[order.index('C')]}" for order in orders[1:]]
    backend = FakeBackend(replies=replies)
    update = ensemble_node(
        {"question": question}, backend=backend, prompts=PROMPTS, shuffles=3, reasoning=True, max_tokens=32, seed=0
    )
    assert update["votes"] == ["A", "C", "C"] and update["answer"] == "C" and update["draft_answer"] == "A"
    assert update["option_orders"] == orders
    # Each order was shown as reordered: the prompt of order i lists the options in that order.
    for (_, messages), order in zip(backend.calls, orders, strict=True):
        shown = reorder(question, order)
        assert all(f"{letter}. {text}" in messages[-1].content for letter, text in shown.options.items())
    # A tie (A once, C once) goes to the earliest vote, as sc breaks ties.
    tie = FakeBackend(replies=["答案：A", f"答案：{'ABCD'[orders[1].index('C')]}"])
    update = ensemble_node(
        {"question": question}, backend=tie, prompts=PROMPTS, shuffles=2, reasoning=True, max_tokens=32, seed=0
    )
    assert update["votes"] == ["A", "C"] and update["answer"] == "A"
    # Answer-only: each order answered by next-token scores (FakeBackend's favour B), mapped back.
    scored = ensemble_node(
        {"question": question}, backend=FakeBackend(), prompts=PROMPTS, shuffles=3, reasoning=False, max_tokens=1,
        seed=0,
    )  # fmt: skip
    assert scored["votes"] == [order[1] for order in orders] and scored["answer_method"] == "next_token"


def test_medprompt_without_a_pool_is_one_clear_error(tmp_path, cli):
    out = tmp_path / "x"
    result = cli("--graph", "medprompt", "--baseline", "none", "--limit", "1", "--out", str(out))
    assert result.returncode == 2 and "medprompt with --knn-examples needs --pool PATH" in result.stderr
    assert "Traceback" not in result.stderr
    result = cli("--graph", "medprompt", "--pool", str(tmp_path / "nope.jsonl"), "--out", str(out))
    assert result.returncode == 2 and "nope.jsonl: no such file or directory" in result.stderr
    # Refused before anything was written: the corrected command is a new run, not a "different config".
    assert not (out / "manifest.json").exists()


def test_medprompt_on_a_real_tiny_model(tmp_path, tiny_backend):
    """Two nearest pool questions as examples with SmolLM2's own reasoning, two option orders, one question; the
    pool holds the evaluated question too, which it must not offer. SmolLM2's reasoning rarely reaches an example's
    key: the question tries 2 x --example-attempts 2 candidates at most, and one log line before the run gives the
    most calls that can take (the README's command ran unbounded and unannounced on a weak model)."""
    chosen = select(load_questions(BUNDLED), limit=7)
    questions = chosen[:1]
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(q.model_dump_json() + "\n" for q in chosen), encoding="utf-8")
    spec = RunSpec(
        graph="medprompt", baseline="none", model=TINY, out=tmp_path / "run", pool=str(pool), knn_examples=2,
        example_attempts=2, shuffles=2, draft_tokens=24, n_ctx=2048,
    )  # fmt: skip
    with structlog.testing.capture_logs() as logs:
        result = evaluate(spec, questions=questions, backend=tiny_backend)
    (planned,) = [e for e in logs if e["event"] == "medprompt.example_reasoning_planned"]
    made = [e for e in logs if e["event"] == "medprompt.example_reasoning"]
    assert logs.index(planned) < logs.index(made[0])  # announced before the first call
    assert planned["calls_at_most"] == planned["candidates"] == 2 * 2  # nothing cached yet
    assert len(made) <= planned["calls_at_most"] and len({e["example"] for e in made}) == len(made)
    (line,) = (result.out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    prediction = json.loads(line)
    extras = prediction["extras"]
    assert questions[0].id not in extras["example_ids"] and len(extras["votes"]) == 2
    assert set(extras["example_ids"]) <= {q.id for q in chosen[1:]}
    # The examples' reasoning is the pool's preprocessing, not this question's cost: two orders, two calls.
    assert [s["node"] for s in prediction["trace"]] == ["answer", "answer"] and prediction["model_calls"] == 2
    shown = prediction["trace"][0]["messages"]
    assert len(shown) == 2 + 2 * len(extras["example_ids"])  # system, each example's question and reply, question
    manifest = json.loads((result.out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["options"]["medprompt"]["pool"] == str(pool) and len(manifest["resources"]["medprompt pool"]) == 64
    assert manifest["options"]["medprompt"]["example_attempts"] == 2
    # Built again, it finds what the run made cached and announces only the rest.
    with structlog.testing.capture_logs() as logs:
        build_graph("medprompt", tiny_backend, read_manifest(result.out), evaluated=questions)
    (again,) = [e for e in logs if e["event"] == "medprompt.example_reasoning_planned"]
    assert again["calls_at_most"] == planned["candidates"] - len(made)
    pool.write_text("".join(q.model_dump_json() + "\n" for q in chosen[:6]), encoding="utf-8")
    with pytest.raises(RunDirError, match="resources"):  # the pool changed: another run
        evaluate(spec, questions=questions, backend=tiny_backend)
    with pytest.raises(DataError):
        evaluate(spec.model_copy(update={"pool": str(tmp_path / "none.jsonl"), "fresh": True}), questions=questions,
                 backend=tiny_backend)  # fmt: skip
