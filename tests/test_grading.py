"""What a score is graded against: a balanced sample, the key's own floor, one question set, the current key."""

import json
from collections import Counter

import pytest
from conftest import TINY

from eval.core.schema import Prediction, Question, RunConfig
from eval.core.store import RunDirError, RunStore
from eval.data import BUNDLED, key_sha256, load_questions, questions_sha256, select
from eval.render.report_md import render_markdown
from eval.results.report import summarize


@pytest.mark.parametrize("limit", [14, 28, 70])
def test_default_sample_balances_answer_letters_within_the_stratification(limit):
    chosen = select(load_questions(BUNDLED), limit=limit)
    letters = Counter(q.answer for q in chosen)
    assert len(chosen) == limit and len({(q.specialty, q.level) for q in chosen}) == 14
    assert set(letters) == set("ABCDE") and max(letters.values()) - min(letters.values()) <= 1, letters


def test_balance_never_overrides_the_stratification():
    qs = [_q(f"{s}-{i}", s, "A") for s in ("cardiovascular", "neurology") for i in range(3)] + [
        _q("n-b", "neurology", "B")
    ]
    chosen = select(qs, limit=2)  # one per cell; within neurology the B question evens the letters
    assert [q.id for q in chosen] == ["cardiovascular-0", "n-b"]
    assert [q.id for q in select(qs, limit=4)] == ["cardiovascular-0", "n-b", "cardiovascular-1", "neurology-0"]


def _q(qid: str, specialty: str = "cardiovascular", answer: str = "A", n_options: int = 5) -> Question:
    options = {letter: f"option {letter}" for letter in "ABCDEFGH"[:n_options]}
    return Question(id=qid, stem="stem", options=options, answer=answer, specialty=specialty, level="attending")


def _p(qid: str, graph: str, answer: str | None, gold: str, status: str = "ok") -> Prediction:
    return Prediction(
        question_id=qid,
        graph=graph,
        answer=answer,
        gold=gold,
        correct=answer == gold,
        parse_status=status,
        answer_method="none" if answer is None else "next_token",
    )


def test_report_gives_the_keys_letters_and_the_best_constant_letter():
    questions = [_q("1", answer="A"), _q("2", answer="A"), _q("3", answer="B"), _q("4", answer="C", n_options=4)]
    predictions = [_p(q.id, "single", "A", q.answer) for q in questions]
    summary = summarize("m", "d", ["single"], None, questions, predictions)
    assert summary.key.letters == {"A": 2, "B": 1, "C": 1}
    assert (summary.key.best_constant_letter, summary.key.best_constant_accuracy) == ("A", 0.5)
    assert summary.key.chance == pytest.approx((3 / 5 + 1 / 4) / 4)
    assert (
        "Answer key: A 2 · B 1 · C 1. Always answering A would score 50.0%; a uniform guess scores 21.3%."
        in render_markdown(summary)
    )


def test_an_error_in_one_graph_removes_the_question_from_every_headline():
    questions = [_q(str(i), answer="A") for i in range(4)]
    predictions = [_p(q.id, "single", "A", "A") for q in questions] + [_p(q.id, "cot", "A", "A") for q in questions[:3]]
    predictions.append(_p("3", "cot", None, "A", status="error"))
    summary = summarize("m", "d", ["cot", "single"], "single", questions, predictions)
    assert [g.overall.total for g in summary.graphs] == [3, 3] and summary.comparisons[0].n == 3
    assert summary.scored == 3 and summary.dropped == {"error in cot": 1}
    assert [g.errors for g in summary.graphs] == [1, 0]
    assert "Scored: 3 of 4 questions, the same for every graph. Left out: 1 (error in cot)." in render_markdown(summary)


def test_unparsed_answers_are_shown_beside_the_paired_result():
    questions = [_q(str(i), answer="A") for i in range(3)]
    predictions = [_p(q.id, "single", "A", "A") for q in questions] + [_p("0", "cot", None, "A", "unparsed")]
    predictions += [_p(q.id, "cot", "A", "A") for q in questions[1:]]
    (comparison,) = summarize("m", "d", ["cot", "single"], "single", questions, predictions).comparisons
    assert (comparison.unparsed, comparison.baseline_unparsed, comparison.right_to_wrong) == (1, 0, 1)


def test_summary_grades_against_the_current_key_not_the_recorded_one():
    questions = [_q("1", answer="B"), _q("2", answer="A")]
    recorded = [_p("1", "single", "A", gold="A"), _p("2", "single", "A", gold="A")]  # graded when the key said A, A
    (graph,) = summarize("m", "d", ["single"], None, questions, recorded).graphs
    assert (graph.overall.correct, graph.overall.total) == (1, 2)


def _config(questions, **changes) -> RunConfig:
    base = dict(
        graphs=["single"],
        model="m",
        model_sha256="x",
        data="d",
        data_sha256=questions_sha256(questions),
        key_sha256=key_sha256(questions),
        question_ids=[q.id for q in questions],
    )
    return RunConfig(**(base | changes))


def test_a_corrected_key_resumes_and_regrades_while_changed_questions_are_refused(tmp_path):
    old = [_q("1", answer="A"), _q("2", answer="A")]
    fixed = [_q("1", answer="B"), old[1]]
    assert questions_sha256(old) == questions_sha256(fixed) and key_sha256(old) != key_sha256(fixed)
    store = RunStore(tmp_path, _config(old, answers="key-v1.json"))
    store.append(_p("1", "single", "A", "A"))
    store.close()
    store = RunStore(tmp_path, _config(fixed, answers="key-v2.json"))  # accepted: only the key changed
    assert store.done() == {("single", "1")}
    (graph,) = summarize("m", "d", ["single"], None, fixed[:1], store.predictions().values()).graphs
    assert graph.overall.correct == 0
    store.close()
    assert json.loads((tmp_path / "manifest.json").read_text())["key_sha256"] == key_sha256(fixed)
    reworded = [_q("1", answer="B").model_copy(update={"stem": "another stem"}), old[1]]
    with pytest.raises(RunDirError, match="changed: data_sha256"):
        RunStore(tmp_path, _config(reworded, answers="key-v2.json"))
    with pytest.raises(RunDirError, match="changed: format"):
        RunStore(tmp_path, _config(fixed, answers="key-v2.json", format="cmb"))


def test_a_changed_answers_file_regrades_on_the_next_run(cli, tmp_path):
    """CMB-style data with its key in a second file: correcting the key changes the report, not the predictions."""
    records = [
        {
            "id": i,
            "exam_type": "医师考试",
            "exam_class": "主治医师",
            "exam_subject": "心内科",
            "question": f"题目{i}",
            "question_type": "单项选择题",
            "option": {"A": "甲", "B": "乙", "C": "丙", "D": "丁"},
        }
        for i in range(3)
    ]
    data, answers = tmp_path / "cmb.json", tmp_path / "answers.json"
    data.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    common = (
        "--graph",
        "single",
        "--baseline",
        "none",
        "--model",
        TINY,
        "--data",
        str(data),
        "--answers",
        str(answers),
        "--limit",
        "0",
        "--out",
        str(tmp_path / "run"),
    )
    answers.write_text(json.dumps([{"id": i, "answer": "A"} for i in range(3)]), encoding="utf-8")
    first = cli(*common)
    assert first.returncode == 0, first.stderr
    chosen = [json.loads(line)["answer"] for line in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()]
    flipped = [{"id": i, "answer": "B" if chosen[i] == "A" else chosen[i]} for i in range(3)]  # every verdict inverts
    answers.write_text(json.dumps(flipped), encoding="utf-8")
    second = cli(*common)
    assert second.returncode == 0, second.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    first_correct = sum(a == "A" for a in chosen)
    assert summary["graphs"][0]["overall"]["correct"] == 3 - first_correct
    assert len((tmp_path / "run" / "predictions.jsonl").read_text().splitlines()) == 3  # nothing re-run


def test_prompt_variant_on_a_strategy_without_variants_is_refused(cli, tmp_path):
    result = cli("--graph", "reflect", "--prompt-variant", "en", "--model", TINY, "--out", str(tmp_path / "r"))
    assert (
        result.returncode == 2
        and "reflect's prompts have no variants" in result.stderr
        and "Traceback" not in result.stderr
    )
    assert not (tmp_path / "r").exists()


def test_retrieval_budget_counts_every_reflect_round(cli, tmp_path):
    # 1024 context + 2 x (384 + 256) + 1024 > 3000: fits one round, not two.
    args = ("--graph", "reflect+rag", "--model", TINY, "--n-ctx", "3000", "--out", str(tmp_path / "r"))
    args += ("--draft-tokens", "384", "--critique-tokens", "256")
    result = cli(*args, "--rounds", "2")
    assert result.returncode == 2 and "raise --n-ctx to at least 3328" in result.stderr
