"""Option shuffling and the position-bias comparison."""

import subprocess
import sys

from conftest import ROOT, TINY

from eval.shuffle import option_order, original_letter, shuffle_options


def test_shuffle_moves_contents_and_the_key_together(question):
    moved = shuffle_options(question, seed=3)
    assert sorted(moved.options.values()) == sorted(question.options.values())
    assert moved.options[moved.answer] == question.options[question.answer]
    assert shuffle_options(question, seed=3) == moved  # deterministic
    assert any(option_order(question, s) != "ABCDE" for s in range(5))
    for letter in moved.options:
        assert question.options[original_letter(letter, question, 3)] == moved.options[letter]
    assert original_letter(None, question, 3) is None


def test_position_bias_report_from_two_real_runs(cli, tmp_path):
    args = ("--graph", "single", "--baseline", "none", "--model", TINY, "--limit", "4", "--n-threads", "1")
    assert cli(*args, "--out", str(tmp_path / "a")).returncode == 0
    shuffled = cli(*args, "--shuffle-options", "7", "--out", str(tmp_path / "b"))
    assert shuffled.returncode == 0, shuffled.stderr
    result = subprocess.run(
        [sys.executable, "-m", "eval.position_bias", str(tmp_path / "a"), str(tmp_path / "b")], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "| single | 4 |" in result.stdout and "chosen option changed" in result.stdout
    wrong_order = subprocess.run(
        [sys.executable, "-m", "eval.position_bias", str(tmp_path / "b"), str(tmp_path / "a")], cwd=ROOT, capture_output=True, text=True
    )
    assert wrong_order.returncode == 2 and "error:" in wrong_order.stderr
