"""examples_node: Medprompt's worked examples for a question, the k nearest in the pool, each with the model's own
chain of thought (kept only when it reached the example's key) or with its answer alone.

A question tries at most k x attempts candidates, nearest first: a weak model's reasoning often misses the key, and
each miss is a generation. `nearest_candidates` lists them before the run, so the most calls it can make is known.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from itertools import islice
from pathlib import Path

import structlog

from agents.answer import parse_answer
from agents.backends.base import Backend
from agents.messages import question_messages
from agents.prompts import prompts_for, render_question
from eval.core import jsonl
from eval.core.schema import Question, rotation_of
from retrieval.examples import ExamplePool


class ExampleReasoning:
    """The model's chain of thought for each worked example, generated once and kept in a JSON-lines file (one
    line per example, appended as it is made, so a killed run loses at most the line being written).

    The file's name carries the model, the prompts' version and the token budget: another of them is another file.
    """

    def __init__(self, backend: Backend, prompts: dict, max_tokens: int, path: Path):
        self.backend, self.prompts, self.max_tokens, self.path = backend, prompts, max_tokens, path
        self.known: dict[str, dict] = {}
        self.lock = threading.Lock()  # concurrent questions may want the same example
        # A torn or bad line is left out (with a warning): that example's reasoning is made again when needed.
        for _, record in jsonl.read(path, _record, skip_bad=True):
            self.known[record["key"]] = record

    def reasoning(self, example: Question) -> tuple[str, str | None]:
        """(the reply, the letter it named), made now unless the file has it.

        Made once per example, model, prompts and budget, this is preprocessing of the pool, as Medprompt counts it:
        it is logged, not charged to the question that happened to need it first (neither its calls nor its time), so
        a question's cost does not depend on what the cache held (or on the order an ablation ran its cells in).
        """
        key = self.key(example)
        with self.lock:
            if (found := self.known.get(key)) is not None:
                return found["text"], found["letter"]
            p = prompts_for(self.prompts, example)
            messages = question_messages(p["system"], example, p["instruction"])
            completion = self.backend.chat(messages, max_tokens=self.max_tokens, assistant_prefix=p["prefix"])
            letter = parse_answer(completion.text, example)
            record = {"key": key, "text": completion.text, "letter": letter}
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                jsonl.append(self.path, json.dumps(record, ensure_ascii=False))
            except OSError as e:  # a cache: the run goes on, and a later one makes this reasoning again
                structlog.get_logger().warning("medprompt.cache_not_written", file=str(self.path), error=str(e))
            self.known[key] = record
            structlog.get_logger().info(
                "medprompt.example_reasoning",
                example=example.id,
                right=letter == example.answer,
                prompt_tokens=completion.prompt_tokens,
                completion_tokens=completion.completion_tokens,
                seconds=round(completion.seconds, 2),
            )
            return completion.text, letter

    @staticmethod
    def key(example: Question) -> str:
        return f"{example.id}:{hashlib.sha256(render_question(example).encode()).hexdigest()[:16]}"

    def missing(self, examples: Iterable[Question]) -> int:
        """How many of `examples` (distinct) have no reasoning made yet: a call each when needed."""
        return len({self.key(e) for e in examples} - self.known.keys())


def nearest_candidates(pool: ExamplePool, question: Question, n: int) -> list[Question]:
    """The question's first n candidates, nearest first, of its own kind (single- or multi-answer): their replies
    show the answer it must give."""
    return list(islice((e for e in pool.ranked(question) if e.multi == question.multi), n))


def _record(line: str) -> dict:
    record = json.loads(line)
    if not isinstance(record, dict) or not {"key", "text", "letter"} <= record.keys():
        raise ValueError("not an example-reasoning record")
    return record


def examples_node(
    state: dict,
    *,
    pool: ExamplePool | None,
    k: int,
    reasoning: ExampleReasoning | None,
    answer_prefix: str,
    attempts: int,
    planned: Mapping[str, Sequence[Question]] | None = None,
) -> dict:
    """No pool (k = 0): zero-shot, no examples. With `reasoning`, up to k x `attempts` candidates are tried.
    `planned`: candidates listed before the run, by question id; a rotated question (--circular) is shown its
    original order's examples, so its rotations differ in the option order alone."""
    question = state["question"]
    shots: list[tuple[Question, str]] = []
    tries = k * attempts if reasoning else k
    found = (planned or {}).get(rotation_of(question.id)[0])
    candidates = found[:tries] if found is not None else nearest_candidates(pool, question, tries) if pool else []
    for example in candidates:
        if reasoning is None:
            shots.append((example, f"{answer_prefix}{example.answer}"))
        else:
            text, letter = reasoning.reasoning(example)  # the pool's preprocessing: not in the question's trace
            if letter == example.answer:
                shots.append((example, text))
        if len(shots) == k:
            break
    return {"examples": shots, "example_ids": [e.id for e, _ in shots]}
