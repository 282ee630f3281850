"""Questions the model can never take: refused cheaply, recorded as permanent errors, reported apart, never retried."""

from __future__ import annotations

import json
import time

import pytest
from conftest import TINY
from fakes import run_config

from agents.backends.base import PermanentError
from agents.messages import question_messages
from eval import agentic
from eval.core.schema import Question
from eval.core.store import RunStore, read_predictions
from eval.render.report_md import render_markdown
from eval.results.report import summarize
from eval.run.runner import run
from graphs import build_graph

HUGE = "胸痛" * 1_500_000  # 9 MB of UTF-8: millions of tokens, far past any context window


def huge(question: Question) -> Question:
    return question.model_copy(update={"id": "huge", "stem": HUGE})


class Counting:
    """The real backend, counting the calls that reach it."""

    def __init__(self, backend):
        self.backend, self.calls = backend, 0

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def score_next(self, *args, **kwargs):
        self.calls += 1
        return self.backend.score_next(*args, **kwargs)


def test_a_prompt_that_can_never_fit_is_refused_before_it_is_tokenised(tiny_backend, question, monkeypatch):
    tokenised: list[int] = []
    tokenize = tiny_backend.llm.tokenize

    def spy(text: bytes, *args, **kwargs):
        tokenised.append(len(text))
        return tokenize(text, *args, **kwargs)

    monkeypatch.setattr(tiny_backend.llm, "tokenize", spy)
    messages = question_messages("你是医生。", huge(question), "请直接给出答案字母。")
    start = time.perf_counter()
    with pytest.raises(PermanentError, match=r"prompt of [\d,]+ bytes \(at least [\d,]+ tokens\) does not fit"):
        tiny_backend.score_next(messages, question.letters, assistant_prefix="答案：")
    assert time.perf_counter() - start < 5
    assert tokenised == [], "the prompt was tokenised before it was refused"
    # A prompt just past the window is still counted exactly, and refused as permanent too.
    longer = question_messages("你是医生。", question, "很长的病史。" * 2000)
    with pytest.raises(PermanentError, match=r"prompt of \d+ tokens does not fit the context window"):
        tiny_backend.score_next(longer, question.letters)
    assert len(tokenised) == 1


def test_an_option_the_vocabulary_cannot_spell_is_permanent(tiny_backend, question):
    messages = question_messages("你是医生。", question, "请直接给出答案字母。")
    with pytest.raises(PermanentError, match="no token that spells option"):
        tiny_backend.score_next(messages, ["A", "龘"], assistant_prefix="答案：")


def test_a_permanent_error_is_recorded_reported_apart_and_not_retried(tiny_backend, question, tmp_path):
    questions = [question, huge(question)]
    config = run_config("single")
    backend = Counting(tiny_backend)
    store = RunStore(tmp_path, config)
    run(questions, {"single": build_graph("single", backend, config)}, store)
    store.close()
    made = read_predictions(tmp_path)
    failed = made[("single", "huge")]
    assert (failed.parse_status, failed.error_kind) == ("error", "permanent")
    assert "does not fit the context window" in failed.error
    assert made[("single", question.id)].parse_status == "ok" and backend.calls == 2

    again = Counting(tiny_backend)
    store = RunStore(tmp_path, config)
    run(questions, {"single": build_graph("single", again, config)}, store)
    store.close()
    assert again.calls == 0, "a resume asked the model again"
    assert len((tmp_path / "predictions.jsonl").read_text(encoding="utf-8").splitlines()) == 2

    summary = summarize("m", "d", ["single"], None, questions, made.values())
    assert (summary.graphs[0].errors, summary.graphs[0].permanent_errors, summary.scored) == (1, 1, 1)
    assert summary.dropped == {"permanent error in single": 1}
    text = render_markdown(summary)
    assert "1 predictions ended in a permanent error" in text and "retrying cannot help" in text


def test_the_cli_exits_2_for_permanent_errors_and_a_rerun_asks_nothing(tmp_path, question, capsys, own_logging):
    data = tmp_path / "q.jsonl"
    data.write_text(
        "".join(json.dumps(q.model_dump(), ensure_ascii=False) + "\n" for q in (question, huge(question))),
        encoding="utf-8",
    )
    out = tmp_path / "run"
    argv = ["--graph", "single", "--baseline", "none", "--model", TINY, "--n-ctx", "2048", "--data", str(data)]
    argv += ["--out", str(out)]
    assert agentic.main(argv) == 2
    err = capsys.readouterr().err
    assert "error: 1 predictions ended in a permanent error" in err and "Traceback" not in err
    assert "run the same command again" not in err
    lines = (out / "predictions.jsonl").read_text(encoding="utf-8")
    assert agentic.main(argv) == 2
    assert (out / "predictions.jsonl").read_text(encoding="utf-8") == lines, "the rerun redid a permanent error"
    assert "permanent error in single" in (out / "report.md").read_text(encoding="utf-8")


def test_a_leaderboard_run_with_a_permanent_error_is_done_and_the_question_leaves_every_statistic(tmp_path):
    from eval.core.schema import Prediction, RunConfig
    from eval.data import BUNDLED, load_questions, select
    from eval.plans.board import load_board
    from eval.results.board import analyse

    spec = tmp_path / "board.toml"
    spec.write_text('models = ["m1.gguf", "m2.gguf"]\nlimit = 4\n', encoding="utf-8")
    board = load_board(spec)
    questions = select(load_questions(BUNDLED), limit=4)
    for entry in board.models:
        config = RunConfig(
            graphs=["single"], model=entry.model, model_sha256="", data=str(BUNDLED), data_sha256="",
            question_ids=[q.id for q in questions],
        )  # fmt: skip
        store = RunStore(board.run_dir(tmp_path / "out", entry, "single"), config)
        for i, q in enumerate(questions):
            failed = entry.model == "m1.gguf" and i == 0  # m1 can never take the first question
            store.append(
                Prediction(question_id=q.id, graph="single", answer=None if failed else q.answer, gold=q.answer,
                           correct=not failed, parse_status="error" if failed else "ok",
                           answer_method="none" if failed else "next_token", model_calls=1,
                           error="PermanentError: prompt too long" if failed else None,
                           error_kind="permanent" if failed else None)
            )  # fmt: skip
        store.close()
    lb = analyse(board, tmp_path / "out")
    assert [r.status for r in lb.rows] == ["done", "done"]
    assert lb.question_ids == [q.id for q in questions[1:]]
    assert [r.overall.total for r in lb.rows] == [3, 3] and [r.errors for r in lb.rows] == [1, 0]
    assert any("some run can never answer them" in note for note in lb.notes)
