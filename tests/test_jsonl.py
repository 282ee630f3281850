"""Append-only JSON-lines files (a run's predictions, Medprompt's example-reasoning cache): a last line torn anywhere,
inside a multi-byte character too, is left out with a warning, and the next record starts on a line of its own."""

from __future__ import annotations

import errno
import json
import os
from unittest import mock

import pytest
import structlog
from fakes import FakeBackend

from agents.nodes.examples import ExampleReasoning
from agents.prompts import load_prompts
from eval.core import jsonl
from eval.core.schema import Prediction, Question, RunConfig
from eval.core.store import RunDirError, RunStore, read_predictions

PROMPTS = load_prompts("medprompt", "zh")
CONFIG = RunConfig(graphs=["single"], model="m", model_sha256="x", data="d", data_sha256="y", question_ids=["a", "b"])


def line(record: dict) -> bytes:
    return (json.dumps(record, ensure_ascii=False) + "\n").encode()


def cut_inside_a_character(record: bytes) -> bytes:
    """The record's first bytes, cut after the first byte of its first multi-byte character."""
    at = next(i for i, b in enumerate(record) if b >= 0xC0)
    return record[: at + 1]


def example(qid: str) -> Question:
    return Question(id=qid, stem=f"{qid}：急性胸痛的首选检查是", options={"A": "心电图", "B": "胸片"}, answer="A")


def reasoning(path, backend=None) -> ExampleReasoning:
    return ExampleReasoning(backend or FakeBackend(), PROMPTS, 64, path)


def test_a_cache_line_torn_inside_a_character_is_dropped_with_a_warning(tmp_path):
    path = tmp_path / "cache.jsonl"
    made = FakeBackend(replies=["分析：心电图最快。\n答案：A"])
    reasoning(path, made).reasoning(example("p-1"))
    good = path.read_bytes()
    path.write_bytes(good + cut_inside_a_character(line({"key": "p-2", "text": "分析：胸片", "letter": "B"})))
    with structlog.testing.capture_logs() as logs:
        cache = reasoning(path)  # was: UnicodeDecodeError on every later run, until the file was deleted
    assert len(cache.known) == 1
    assert [e["event"] for e in logs] == ["jsonl.torn_last_line"] and logs[0]["file"] == str(path)
    # The next record starts on a line of its own: the fragment is cut off, every record reads back.
    again = FakeBackend(replies=["分析：胸片不如心电图。\n答案：A"])
    reasoning(path, again).reasoning(example("p-3"))
    assert path.read_bytes().startswith(good) and path.read_bytes().endswith(b"\n")
    assert len(reasoning(path).known) == 2


def test_a_cache_line_torn_at_an_ascii_boundary_loses_no_good_record(tmp_path):
    path = tmp_path / "cache.jsonl"
    reasoning(path, FakeBackend(replies=["答案：A"])).reasoning(example("p-1"))
    with open(path, "ab") as f:
        f.write(b'{"key": "p-9:')  # killed mid-write
    reasoning(path, FakeBackend(replies=["答案：A"])).reasoning(example("p-2"))  # was glued onto the fragment: lost
    assert len(reasoning(path).known) == 2


def test_a_cache_that_cannot_be_written_does_not_stop_the_run(tmp_path):
    path = tmp_path / "cache.jsonl"
    with (
        mock.patch("eval.core.jsonl.os.write", side_effect=OSError(errno.ENOSPC, "No space left on device")),
        structlog.testing.capture_logs() as logs,
    ):
        assert reasoning(path, FakeBackend(replies=["答案：A"])).reasoning(example("p-1"))[1] == "A"
    assert any(e["event"] == "medprompt.cache_not_written" for e in logs)
    assert reasoning(path).known == {}


def pred(qid: str, answer: str = "B") -> Prediction:
    return Prediction(
        question_id=qid,
        graph="single",
        answer=answer,
        gold="A",
        correct=answer == "A",
        parse_status="ok",
        answer_method="next_token",
        trace=[],
        error="",
        extras={"note": "心电图"},
    )


def test_predictions_torn_inside_a_character_are_read_and_resumed(tmp_path):
    store = RunStore(tmp_path, CONFIG)
    store.append(pred("a"))
    store.close()
    with open(store.path, "ab") as f:
        f.write(cut_inside_a_character(pred("b").model_dump_json().encode()))
    # A report of the killed run reads what finished (was: UnicodeDecodeError).
    assert list(read_predictions(tmp_path)) == [("single", "a")]
    store = RunStore(tmp_path, CONFIG)
    assert store.done() == {("single", "a")}
    assert store.path.read_bytes() == (pred("a").model_dump_json() + "\n").encode()  # whole, before any append
    store.append(pred("b"))
    store.close()
    assert list(read_predictions(tmp_path)) == [("single", "a"), ("single", "b")]


def test_predictions_torn_at_an_ascii_boundary_lose_no_good_record(tmp_path):
    RunStore(tmp_path, CONFIG).close()
    path = tmp_path / "predictions.jsonl"
    path.write_text(pred("a").model_dump_json() + "\n" + pred("b").model_dump_json()[:40], encoding="utf-8")
    jsonl.append(path, pred("b").model_dump_json())  # any writer, not only a store that repairs the file on opening
    assert list(read_predictions(tmp_path)) == [("single", "a"), ("single", "b")]


def test_a_bad_complete_prediction_line_is_one_error_naming_file_and_line(tmp_path):
    path = tmp_path / "predictions.jsonl"
    path.write_text(pred("a").model_dump_json() + '\n{"not": "a prediction"}\n', encoding="utf-8")
    with pytest.raises(RunDirError, match=rf"^{path}:2: not a valid record"):
        read_predictions(tmp_path)


def test_a_failed_append_leaves_the_file_as_it_was(tmp_path):
    path = tmp_path / "f.jsonl"
    jsonl.append(path, '{"n": 1}')
    real = os.write

    def half(fd, data):  # the disk fills after half a record
        if len(data) > 4:
            real(fd, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data)

    with mock.patch("eval.core.jsonl.os.write", side_effect=half), pytest.raises(OSError):
        jsonl.append(path, '{"n": 2, "text": "心电图"}')
    assert path.read_bytes() == b'{"n": 1}\n'


def test_a_file_that_is_one_torn_line_is_emptied_before_appending(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_bytes(b"x" * (jsonl.CHUNK + 10))  # longer than one look back
    jsonl.append(path, '{"n": 1}')
    assert [r for _, r in jsonl.read(path, json.loads)] == [{"n": 1}]
