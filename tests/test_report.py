import pytest
from scipy.stats import binomtest

from eval.core.schema import Prediction, Question, TraceStep
from eval.render.report_md import render_markdown
from eval.results.report import summarize


def q(i: int, specialty: str, level: str) -> Question:
    return Question(
        id=f"q{i}",
        stem="s",
        options={"A": "a", "B": "b", "C": "c", "D": "d", "E": "e"},
        answer="A",
        specialty=specialty,
        level=level,
    )


def pred(
    qid: str, graph: str, answer: str | None, status: str = "ok", draft: str | None = None, drafted: bool = False
) -> Prediction:
    """drafted: a draft step that named no option (draft stays None)."""
    trace = [TraceStep(node="draft", messages=[], output="")] if draft or drafted else []
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


QUESTIONS = [
    q(0, "neurology", "senior"),
    q(1, "neurology", "attending"),
    q(2, "hematology", "senior"),
    q(3, "hematology", "senior"),
]


def test_paired_comparison_counts_flips_and_excludes_errors():
    preds = [
        pred("q0", "single", "A"),
        pred("q0", "reflect", "B", draft="A"),  # right -> wrong
        pred("q1", "single", "B"),
        pred("q1", "reflect", "A", draft="B"),  # wrong -> right
        pred("q2", "single", "B"),
        pred("q2", "reflect", "A", draft="A"),  # wrong -> right
        pred("q3", "single", "A"),
        pred("q3", "reflect", None, status="error"),  # not paired
        pred("zz", "single", "A"),  # not in this run's questions: ignored
    ]
    summary = summarize("m", "d", ["reflect", "single"], "single", QUESTIONS, preds)
    reflect, single = summary.graphs
    assert (reflect.overall.correct, reflect.overall.total, reflect.errors) == (2, 3, 1)
    assert (single.overall.correct, single.overall.total) == (1, 3)  # q3 leaves every headline: reflect errored on it
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
    assert "McNemar p = 1: no evidence of a difference" in md


def paired_run(outcomes: list[tuple[bool, bool]]) -> list[Prediction]:
    """single's and reflect's predictions, one question per (single right, reflect right)."""
    preds = []
    for i, (base, chain) in enumerate(outcomes):
        preds += [
            pred(f"q{i}", "single", "A" if base else "B"),
            pred(f"q{i}", "reflect", "A" if chain else "C", draft="B"),
        ]
    return preds


def questions(n: int) -> list[Question]:
    return [q(i, "neurology", "senior") for i in range(n)]


@pytest.mark.parametrize(("r2w", "w2r"), [(1, 8), (2, 9), (0, 6), (7, 3), (5, 10), (4, 4)])
def test_mcnemar_is_the_exact_binomial_test_on_the_discordant_pairs(r2w, w2r):
    outcomes = [(True, False)] * r2w + [(False, True)] * w2r + [(True, True)] * 3 + [(False, False)] * 2
    summary = summarize("m", "d", ["reflect", "single"], "single", questions(len(outcomes)), paired_run(outcomes))
    (c,) = summary.comparisons
    assert (c.right_to_wrong, c.wrong_to_right, c.both_right, c.both_wrong) == (r2w, w2r, 3, 2)
    assert c.mcnemar_p == pytest.approx(binomtest(min(r2w, w2r), r2w + w2r, 0.5).pvalue)


def test_report_renders_exactly_the_counts():
    outcomes = [(True, False)] + [(False, True)] * 8 + [(True, True)] + [(False, False)] * 2
    preds = paired_run(outcomes)
    # reflect's drafts are "B" (wrong) unless set here: q0's was right and spoiled, q9's right and kept, q8's named no
    # option (its final answer is right: neither a change nor wrong -> right). q1-q7 were corrected; q10, q11 -> "C".
    reflect = {p.question_id: i for i, p in enumerate(preds) if p.graph == "reflect"}
    for qid in ("q0", "q9"):
        preds[reflect[qid]] = preds[reflect[qid]].model_copy(update={"draft_answer": "A"})
    preds[reflect["q8"]] = pred("q8", "reflect", "A", drafted=True)
    md = render_markdown(summarize("m", "d", ["reflect", "single"], "single", questions(12), preds))
    assert (
        "## reflect vs single (paired, n=12)\n\n"
        "|  | single right | single wrong |\n|---|---|---|\n| reflect right | 1 | 8 |\n| reflect wrong | 1 | 2 |\n\n"
        "reflect − single: +58.3 points [+16.7, +91.7], McNemar p = 0.0391: reflect answers better than single.\n\n"
        "The interval is a paired bootstrap 95% interval, the p exact McNemar's on the flips: 1 right→wrong, "
        "8 wrong→right."
    ) in md
    assert md.endswith(
        "## reflect: draft → final answer\n\n"
        "| draft → final | questions |\n|---|---|\n"
        "| unchanged | 1 |\n"
        "| changed: right → wrong | 1 |\n"
        "| changed: wrong → right | 7 |\n"
        "| changed: wrong → another wrong | 2 |\n"
        "| draft cut at its token budget | 0 |\n"
        "| draft named no option | 1 |\n"
        "| total | 12 |\n"
    )


@pytest.mark.parametrize("n", [28, 200])
def test_no_difference_says_what_the_questions_could_have_detected(n):
    """A comparison without evidence says so in words, with the smallest difference its questions detect with 80%
    power (McNemar at the observed discordance), or that they detect none."""
    from eval.core.stats import min_detectable_difference

    flips = n // 14  # each way: 4 of 28 discordant, 28 of 200
    outcomes = [(True, False)] * flips + [(False, True)] * flips + [(True, True)] * (n - 2 * flips)
    md = render_markdown(summarize("m", "d", ["reflect", "single"], "single", questions(n), paired_run(outcomes)))
    mdd = min_detectable_difference(n, 2 * flips / n)
    reach = "no difference" if mdd is None else f"only differences of ±{100 * mdd:.1f} points or more"
    assert (n == 28) == (mdd is None)
    assert "reflect − single: +0.0 points [" in md
    assert (
        f"], McNemar p = 1: no evidence of a difference; {n} questions ({2 * flips} answered right by only one of the "
        f"two) detect {reach} reliably (80% power)."
    ) in md


@pytest.mark.parametrize(
    ("n", "said"), [(1.4e6, "1.4M"), (135e6, "135M"), (999.6e6, "1B"), (1.54e9, "1.54B"), (671e9, "671B"), (1e12, "1T")]
)
def test_parameter_counts_read_as_people_say_them(n, said):
    """report.md heads a run with its model's size as every table writes it: a 1.4M-parameter model was "0.00B"."""
    from eval.render.fmt import params_text

    assert params_text(n) == said
    summary = summarize("m", "d", ["single"], None, QUESTIONS, [pred("q0", "single", "A")])
    summary.model_info = {"architecture": "llama", "total_params": n, "quantization": "F32"}
    assert f"Model `m` (llama, {said} parameters, F32)" in render_markdown(summary)


def test_data_without_levels_says_so_instead_of_an_empty_table():
    questions = [q.model_copy(update={"level": None}) for q in QUESTIONS]
    md = render_markdown(summarize("m", "d", ["single"], None, questions, [pred("q0", "single", "A")]))
    assert "## By level\n\nNo question of this run has a level." in md
    assert "## By specialty\n\n| specialty | single |" in md


def test_engine_section_counts_predictions_made_under_batching():
    from eval.core.schema import Engine

    preds = [pred(f"q{i}", "single", "A").model_copy(update={"in_flight": 4, "shared_batch": i < 3}) for i in range(4)]
    batching = summarize("m", "d", ["single"], None, QUESTIONS, preds, engine=Engine(name="llama-server", slots=4))
    assert batching.batched == 3
    text = render_markdown(batching)
    assert "llama-server, 4 slots." in text and "3 of 4 predictions were made while another question shared" in text
    # Four in flight on an engine that serialises: the runner marks none as sharing a batch.
    alone = [p.model_copy(update={"shared_batch": False}) for p in preds]
    serial = summarize("m", "d", ["single"], None, QUESTIONS, alone, engine=Engine(name="llama_cpp.server", slots=1))
    assert serial.batched == 0
    assert "No prediction shared a batch with another question (one request at a time)" in render_markdown(serial)
    assert batching.methods == {"next_token": 4} and "Letters committed by" not in text
    committed = [p.model_copy(update={"answer_method": "grammar"}) if p.question_id == "q0" else p for p in preds]
    text = render_markdown(summarize("m", "d", ["single"], None, QUESTIONS, committed, engine=Engine(name="x")))
    assert "Letters committed by: grammar 1, next_token 3 (" in text and "slots unknown (may batch)" in text


def test_in_flight_is_the_peak_over_each_prediction():
    from eval.run.runner import InFlight

    flight = InFlight()
    with flight.question(), flight.prediction() as first:
        assert first == [1]
        with flight.question():  # another question starts, and finishes, while the first is being made
            pass
        assert first == [2]
    with flight.question(), flight.prediction() as alone:
        pass
    assert first == [2] and alone == [1]


def test_near_ties_count_the_answers_whose_two_best_options_are_within_a_hundredth_of_a_nat():
    def scored(qid: str, graph: str, *scores: dict | None, method: str = "next_token") -> Prediction:
        trace = [TraceStep(node="answer", messages=[], output="A", scores=s) for s in scores]
        return pred(qid, graph, "A").model_copy(update={"trace": trace, "answer_method": method})

    preds = [
        scored("q0", "single", {"A": -1.0, "B": -1.004, "C": -4.0}),  # 0.004 apart: a near-tie
        scored("q1", "single", {"A": -0.5, "B": -0.52}),  # 0.02 apart
        scored("q2", "single", {"A": -0.7}),  # the only option among the top log-probabilities
        scored("q3", "single", {"A": 0.0, "B": 0.0}, method="grammar"),  # committed: no probabilities to compare
        scored("q0", "reflect", {"B": -1.0, "A": -1.001}, {"A": -0.2, "C": -2.0}),  # the answer's step is the last
        scored("q1", "reflect", None, {"C": -0.9, "A": -0.895, "B": -3.0}),  # a draft, then a near-tie extraction
        scored("q2", "reflect", None, {"A": -0.1, "B": -0.1}),  # an exact tie
        scored("q3", "reflect", None),  # no scoring step
    ]
    summary = summarize("m", "d", ["reflect", "single"], "single", QUESTIONS, preds)
    assert {g.graph: g.near_ties for g in summary.graphs} == {"reflect": 2, "single": 1}
    assert summary.model_dump()["graphs"][0]["near_ties"] == 2  # summary.json
    md = render_markdown(summary)
    header, _, *rows = md.split("## Overall\n\n")[1].split("\n\n")[0].splitlines()
    column = [c.strip() for c in header.split("|")].index("near-ties ≤0.01 nats")
    assert [[c.strip() for c in row.split("|")][column] for row in rows] == ["2", "1"]


def test_the_other_row_says_what_other_is():
    """A question outside the seven specialties is counted under other, and the report says where its department
    names are listed; with none, no note."""
    questions = [QUESTIONS[0].model_copy(update={"specialty": "other"}), *QUESTIONS[1:]]
    preds = [pred(q.id, "single", "A") for q in questions]
    md = render_markdown(summarize("m", "d", ["single"], None, questions, preds))
    assert "| other |" in md and "`python -m eval.data inspect DATA` lists their department names" in md
    assert "department names" not in render_markdown(summarize("m", "d", ["single"], None, QUESTIONS, preds))
