from eval.report import render_markdown, summarize
from eval.schema import Prediction, Question, TraceStep


def q(i: int, specialty: str, level: str) -> Question:
    return Question(
        id=f"q{i}", stem="s", options={"A": "a", "B": "b", "C": "c", "D": "d", "E": "e"}, answer="A", specialty=specialty, level=level
    )


def pred(qid: str, graph: str, answer: str | None, status: str = "ok", draft: str | None = None) -> Prediction:
    trace = [TraceStep(node="draft", messages=[], output="")] if draft else []
    return Prediction(
        question_id=qid,
        graph=graph,
        answer=answer,
        gold="A",
        correct=answer == "A",
        parse_status=status,
        answer_method="next_token" if answer else "none",
        draft_answer=draft,
        trace=trace,
        seconds=1.0,
        model_calls=1,
    )


QUESTIONS = [q(0, "neurology", "senior"), q(1, "neurology", "attending"), q(2, "hematology", "senior"), q(3, "hematology", "senior")]


def test_paired_comparison_counts_flips_and_excludes_errors():
    preds = [
        pred("q0", "single", "A"), pred("q0", "reflect", "B", draft="A"),  # right -> wrong
        pred("q1", "single", "B"), pred("q1", "reflect", "A", draft="B"),  # wrong -> right
        pred("q2", "single", "B"), pred("q2", "reflect", "A", draft="A"),  # wrong -> right
        pred("q3", "single", "A"), pred("q3", "reflect", None, status="error"),  # not paired
        pred("zz", "single", "A"),  # not in this run's questions: ignored
    ]
    summary = summarize("m", "d", ["reflect", "single"], "single", QUESTIONS, preds)
    reflect, single = summary.graphs
    assert (reflect.overall.correct, reflect.overall.total, reflect.errors) == (2, 3, 1)
    assert (single.overall.correct, single.overall.total) == (2, 4)
    c = summary.comparisons[0]
    assert (c.n, c.right_to_wrong, c.wrong_to_right, c.both_right, c.both_wrong) == (3, 1, 2, 0, 0)
    assert c.difference == 1 / 3
    assert c.mcnemar_p == 1.0
    assert reflect.by_specialty["hematology"].total == 1
    assert reflect.by_level["senior"].correct == 1
    flips = reflect.draft_to_final
    assert (flips.n, flips.changed, flips.right_to_wrong, flips.wrong_to_right) == (3, 2, 1, 1)
    assert single.draft_to_final is None


def test_unparsed_counts_as_wrong_and_is_reported():
    preds = [pred("q0", "single", None, status="unparsed"), pred("q1", "single", "A")]
    (single,) = summarize("m", "d", ["single"], None, QUESTIONS, preds).graphs
    assert (single.overall.correct, single.overall.total, single.unparsed) == (1, 2, 1)


def test_markdown_has_every_section():
    preds = [pred(f"q{i}", g, "A") for i in range(4) for g in ("reflect", "single")]
    md = render_markdown(summarize("m", "d", ["reflect", "single"], "single", QUESTIONS, preds))
    for heading in ("## Overall", "## By specialty", "## By level", "## reflect vs single (paired, n=4)"):
        assert heading in md
    assert "100.0% [51.0%–100.0%] (4/4)" in md
    assert "McNemar exact p = 1" in md
