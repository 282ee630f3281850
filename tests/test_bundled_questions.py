"""The bundled question set: schema, unique ids, balance, answers among the options."""

from collections import Counter

from eval.core.schema import SPECIALTIES
from eval.data import BUNDLED, load_questions

FIVE = ("A", "B", "C", "D", "E")  # the bundled set has five options each; the schema allows up to eight


def test_bundled_set_is_complete_and_balanced():
    questions = load_questions(BUNDLED)
    assert len(questions) == 140
    assert len({q.id for q in questions}) == 140
    cells = Counter((q.specialty, q.level) for q in questions)
    assert cells == {(s, lv): 10 for s in SPECIALTIES if s != "other" for lv in ("attending", "senior")}


def test_every_bundled_question_is_well_formed():
    for q in load_questions(BUNDLED):
        assert tuple(q.options) == FIVE, q.id
        assert len(set(q.options.values())) == 5, f"{q.id}: duplicate option texts"
        assert q.answer in q.options, q.id
        assert q.rationale.strip(), f"{q.id}: missing rationale"
        assert q.source, q.id
        assert not any(text.lstrip().startswith(f"{k}.") for k, text in q.options.items()), (
            f"{q.id}: option carries its letter"
        )


def test_bundled_answers_are_spread_over_letters():
    # A key skewed to one letter would reward a model's position bias.
    counts = Counter(q.answer for q in load_questions(BUNDLED))
    assert counts == {letter: 28 for letter in FIVE}
