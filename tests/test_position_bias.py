"""Option shuffling and the position-bias comparison."""

import json
import subprocess

from conftest import TINY, run_main

from eval.core.shuffle import option_order, original_letter, shuffle_options
from eval.data import BUNDLED, load_questions


def test_shuffle_moves_contents_and_the_key_together(question):
    moved = shuffle_options(question, seed=3)
    assert sorted(moved.options.values()) == sorted(question.options.values())
    assert moved.options[moved.answer] == question.options[question.answer]
    assert shuffle_options(question, seed=3) == moved  # deterministic
    assert any(option_order(question, s) != "ABCDE" for s in range(5))
    for letter in moved.options:
        assert question.options[original_letter(letter, question, 3)] == moved.options[letter]
    assert original_letter(None, question, 3) is None


def test_shuffle_handles_more_than_five_options(question):
    six = question.model_copy(update={"options": {**question.options, "F": "以上都不是"}, "answer": "F"})
    moved = shuffle_options(six, seed=1)
    assert moved.options[moved.answer] == "以上都不是" and sorted(moved.options) == list("ABCDEF")


def bias(*runs) -> subprocess.CompletedProcess:
    return run_main("eval.position_bias", *runs)


def answers(run) -> dict[str, str]:
    return {
        p["question_id"]: p["answer"] for p in map(json.loads, (run / "predictions.jsonl").read_text().splitlines())
    }


def test_position_bias_report_from_two_real_runs(cli, tmp_path):
    args = ("--graph", "single", "--baseline", "none", "--model", TINY, "--limit", "6")
    a, b = tmp_path / "a", tmp_path / "b"
    assert cli(*args, "--out", str(a)).returncode == 0
    shuffled = cli(*args, "--shuffle-options", "7", "--out", str(b))
    assert shuffled.returncode == 0, shuffled.stderr
    result = bias(a, b)
    assert result.returncode == 0, result.stderr
    questions = {q.id: q for q in load_questions(BUNDLED)}
    original, moved = answers(a), answers(b)
    changed = sum(
        original_letter(moved[qid], shuffle_options(questions[qid], 7), 7) != original[qid] for qid in original
    )
    assert f"| single | 6 | {changed} ({100 * changed / 6:.1f}% [" in result.stdout

    wrong_order = bias(b, a)
    assert wrong_order.returncode == 2 and "error:" in wrong_order.stderr and "Traceback" not in wrong_order.stderr
    other_seed = tmp_path / "c"
    assert cli(*args, "--shuffle-options", "7", "--seed", "3", "--out", str(other_seed)).returncode == 0
    differs = bias(a, other_seed)
    assert differs.returncode == 2 and "differ in more than the option order (changed: seed)" in differs.stderr
    not_a_run = bias(a, tmp_path)
    assert (
        not_a_run.returncode == 2 and "not a run directory" in not_a_run.stderr and "Traceback" not in not_a_run.stderr
    )


def test_position_bias_reloads_the_data_as_the_run_read_it(cli, tmp_path):
    """A dataset that needs a field map: the tool must read it with the run's --map, not guess its format."""
    data = tmp_path / "mine.jsonl"
    rows = [
        {"qid": f"m{i}", "q": f"题目{i}", "opts": {"A": "甲", "B": "乙", "C": "丙", "D": "丁"}, "key": "ABCD"[i]}
        for i in range(4)
    ]
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    args = (
        "--graph",
        "single",
        "--baseline",
        "none",
        "--model",
        TINY,
        "--data",
        str(data),
        "--limit",
        "0",
        "--map",
        "id=qid",
        "--map",
        "stem=q",
        "--map",
        "options=opts",
        "--map",
        "answer=key",
    )
    assert cli(*args, "--out", str(tmp_path / "a")).returncode == 0
    assert cli(*args, "--shuffle-options", "2", "--out", str(tmp_path / "b")).returncode == 0
    result = bias(tmp_path / "a", tmp_path / "b")
    assert result.returncode == 0, result.stderr
    assert "| single | 4 |" in result.stdout
