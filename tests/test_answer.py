import math

import pytest

from agents.answer import best_letter, parse_letter

LETTERS = list("ABCDE")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("分析：……\n答案：C", "C"),
        ("建议答案: b", "B"),
        ("Answer: (D)", "D"),
        ("综上所述，本题答案选B。", "B"),
        ("最终答案为【E】", "E"),
        ("最终答案是：A", "A"),
        ("The answer is: c", "C"),
        ("初步答案：A\n……\n建议答案：D", "D"),  # the last commitment wins
        ("答案：F", None),  # not an option
        ("我认为是急性心肌梗死", None),  # no letter committed to
        ("", None),
        ("答案：Acute MI", None),  # a word starting with A is not a letter
        ("答案：" + "A" * 0 + "很难说" * 200, None),  # long garbage
    ],
)
def test_parse_letter(text, expected):
    assert parse_letter(text, LETTERS) == expected


def test_parse_letter_respects_four_option_questions():
    assert parse_letter("答案：E", list("ABCD")) is None


def test_best_letter_ignores_non_finite_scores():
    assert best_letter({"A": -1.0, "B": -0.5, "C": -math.inf}) == "B"
    assert best_letter({"A": math.nan, "B": -math.inf}) is None
