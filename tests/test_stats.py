import math

import pytest

from eval.core.schema import Prediction, Question
from eval.core.stats import LetterBias, letter_bias, mcnemar_exact, wilson_interval
from eval.results.analysis import answered_letters, letter_p_text


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        (5, 10, 0.2366, 0.7634),  # textbook value
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (74, 100, 0.6463, 0.8160),
    ],
)
def test_wilson_matches_reference_values(k, n, low, high):
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(low, abs=1e-4)
    assert hi == pytest.approx(high, abs=1e-4)


def test_wilson_with_no_data_is_uninformative():
    assert wilson_interval(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize(
    ("b", "c", "p"),
    [
        (0, 0, 1.0),
        (3, 3, 1.0),
        (0, 5, 0.0625),  # 2 * 0.5**5
        (1, 9, 0.021484375),  # 2 * (1 + 10) / 1024
        (9, 1, 0.021484375),  # symmetric
        (10, 20, 0.09873714),
    ],
)
def test_mcnemar_exact(b, c, p):
    assert mcnemar_exact(b, c) == pytest.approx(p, rel=1e-6)


# -- answered letters against a uniform guess --------------------------------------------------

FIVE, FOUR = list("ABCDE"), list("ABCD")


def chi2_sf_df4(x: float) -> float:
    """The chi-square(4) upper tail in closed form, e^(-x/2) (1 + x/2): a reference independent of scipy."""
    return math.exp(-x / 2) * (1 + x / 2)


def test_letter_bias_matches_a_hand_computed_chi_square():
    # 35 five-option questions: 7 expected per letter; (25 + 1 + 1 + 9 + 4) / 7 = 40/7 on 4 degrees of freedom.
    answered = ["A"] * 12 + ["B"] * 8 + ["C"] * 6 + ["D"] * 4 + ["E"] * 5
    bias = letter_bias(answered, [FIVE] * 35)
    assert bias.statistic == pytest.approx(40 / 7) and bias.p == pytest.approx(chi2_sf_df4(40 / 7)) and bias.why == ""
    assert bias.p == pytest.approx(0.22152581717509554)  # scipy.stats.chi2.sf(40 / 7, 4)


def test_letter_bias_expects_each_question_s_own_options():
    # 30 five-option and 20 four-option questions: A-D expect 30/5 + 20/4 = 11 each, E only 30/5 = 6.
    answered = ["A"] * 15 + ["B"] * 10 + ["C"] * 10 + ["D"] * 9 + ["E"] * 6
    shown = [FIVE] * 30 + [FOUR] * 20
    answered_on = sorted(answered, key=lambda a: a != "E")  # the E answers go to five-option questions
    bias = letter_bias(answered_on, shown)
    assert bias.statistic == pytest.approx((16 + 1 + 1 + 4) / 11) and bias.p == pytest.approx(chi2_sf_df4(2.0))


def test_uniform_answers_pass_and_a_constant_letter_fails():
    assert letter_bias(FIVE * 8, [FIVE] * 40).p == pytest.approx(1.0)
    always_a = letter_bias(["A"] * 40, [FIVE] * 40)
    assert always_a.statistic == pytest.approx((40 - 8) ** 2 / 8 + 4 * 8) and always_a.p < 1e-30


def test_letter_bias_gives_no_p_below_five_expected():
    assert letter_bias(["A"] * 24, [FIVE] * 24) == LetterBias(None, None, "expected count < 5")  # 4.8 each
    assert letter_bias(["A"] * 25, [FIVE] * 25).p is not None  # 5.0 each: tested
    assert letter_bias(["A"] * 15, [list("ABC")] * 15).p == pytest.approx(math.exp(-30 / 2))  # 5 each: χ² = 30, df 2
    # 40 questions, 38 of them with four options: E is expected only 2/5 of a time, so nothing is tested.
    assert letter_bias(["A"] * 40, [FOUR] * 38 + [FIVE] * 2).p is None
    assert letter_bias([], []) == LetterBias(None, None, "no answers")
    with pytest.raises(ValueError, match="'E' is not among the options shown"):
        letter_bias(["E"], [FOUR])


def question(i: int, answer: str) -> Question:
    return Question(id=f"q{i}", stem="s", options={k: k.lower() for k in FIVE}, answer=answer)


def prediction(q: Question, answer: str | None, status: str = "ok") -> Prediction:
    return Prediction(
        question_id=q.id,
        graph="single",
        answer=answer,
        gold=q.answer,
        correct=answer == q.answer,
        parse_status=status,
        answer_method="regex" if answer else "none",
    )


def test_a_letter_the_key_never_uses_is_tested_like_any_other():
    # The key is all A; the guesser answers every letter equally often, E included: nothing to flag.
    questions = {q.id: q for q in (question(i, "A") for i in range(42))}
    preds = [prediction(questions[f"q{i}"], FIVE[i % 5]) for i in range(40)]
    preds += [prediction(questions["q40"], None, "unparsed"), prediction(questions["q41"], "A", "error")]  # left out
    bias = answered_letters(preds, questions)
    assert bias.statistic == pytest.approx(0.0) and bias.p == pytest.approx(1.0)
    assert letter_p_text(bias.p, bias.why) == "1"
    assert letter_p_text(None, "expected count < 5") == "–, too few answers; see python -m eval.position_bias"
    assert letter_p_text(None, "no answers") == "–"
