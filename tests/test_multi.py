"""Multi-answer (多选) questions through the graphs: letter sets parsed and grammar-constrained, the key moved with
its options, exact match and partial credit reported apart from single-answer accuracy."""

from __future__ import annotations

import json
import re

import pytest
from fakes import FakeBackend, run_config
from test_loaders import cmb_records, write_json

from agents.answer import letter_set_grammar, parse_answer, parse_letters
from agents.messages import question_messages
from agents.prompts import load_prompts, prompts_for
from eval.api import RunSpec, evaluate
from eval.core.schema import MultiQuestion, Prediction, Question
from eval.core.shuffle import back, reorder, rotations
from eval.data import load_questions
from eval.render.run_page import render
from eval.results.analysis import collapse_rotations, partial_credit
from eval.results.pages import load_run_page
from eval.run.runner import predict
from graphs import build_graph

OPTIONS = {"A": "呼吸道感染", "B": "空气污染", "C": "规律用药", "D": "停用吸入药"}
MULTI = MultiQuestion(id="m-1", stem="慢阻肺急性加重常见诱因有", options=OPTIONS, answer="ABD")
SINGLE = Question(id="s-1", stem="题干", options={"A": "甲", "B": "乙", "C": "丙", "D": "丁"}, answer="C")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("分析：……\n答案：ABD", "ABD"),
        ("答案：A、B、D。", "ABD"),
        ("答案：D，B", "BD"),
        ("The answers are A and C.", "AC"),
        ("Answer: ACD", "ACD"),
        ("我认为应选BD。", "BD"),
        ("……\nA、C", "AC"),  # a last line of letters only
        ("答案：C", "C"),  # one letter is a set too
        ("答案：ABZ", None),  # Z is not an option
        ("the answer is bad", None),  # an English word is not a run of letters
        ("无法确定", None),
        ("答案：AB\n……修正：答案：ABD", "ABD"),  # the last statement wins
        ("答案：AB（首选ACE抑制剂或ARB）", "AB"),  # a term that starts with letters is not an answer
        ("答案：ACD。不选BE，因为……", "ACD"),  # a negated choice is not one
        ("建议答案：ACD（草稿答案AC遗漏了D）", "ACD"),  # the draft's answer, mentioned, is not this reply's
        ("答案：ABD\n选择CABG手术", "ABD"),
        ("答案：A B D", "ABD"),
        ("答案：ABD\n（旧题答案：FG。）", "ABD"),  # a later statement naming no option falls back to the earlier
    ],
)
def test_letter_sets_are_parsed_from_free_text(text, expected):
    assert parse_letters(text, "ABCDE") == expected


def test_parse_answer_reads_a_set_only_for_a_multi_answer_question():
    assert parse_answer("答案：AB", MULTI) == "AB"
    assert parse_answer("答案：A、B", SINGLE) is None  # two letters for one answer: unparsed, as before
    assert parse_answer("答案：C", SINGLE) == "C"


def test_the_grammar_allows_exactly_the_nonempty_sets_in_order():
    # Expand the grammar's alternatives by hand: each is a first letter then optional later letters.
    grammar = letter_set_grammar("ABC")
    assert grammar == 'root ::= ("A" "B"? "C"?) | ("B" "C"?) | ("C")'


def test_the_key_moves_with_its_options_and_answers_come_back():
    turned = reorder(MULTI, "DCBA")  # position A shows the original D ...
    assert turned.answer == "ACD" and turned.options["A"] == "停用吸入药"
    assert back("ACD", "DCBA") == "ABD" and back(None, "DCBA") is None
    # Every rotation keeps the key on the same contents.
    for r in rotations(MULTI):
        assert {r.options[x] for x in r.answer} == {"呼吸道感染", "空气污染", "停用吸入药"}
    answers = {r.id: r.answer for r in rotations(MULTI)}
    preds = {
        qid: Prediction(question_id=qid, graph="single", answer=a, gold=a, correct=True, parse_status="ok",
                        answer_method="grammar")
        for qid, a in answers.items()
    }  # fmt: skip
    collapsed = collapse_rotations(preds, {MULTI.id: MULTI})[MULTI.id]
    assert collapsed.correct and collapsed.answer == "ABD"


def test_partial_credit():
    assert partial_credit("ABD", "ABD") == 1.0
    assert partial_credit("AB", "ABD") == pytest.approx(2 / 3)  # a missing letter costs its share
    assert partial_credit("ABC", "ABD") == 0.0  # a wrong letter costs the question
    assert partial_credit(None, "ABD") == 0.0


def test_multi_answer_questions_see_their_own_prompts():
    cases = [("single", None, "answer"), ("cot", "zh", "instruction"), ("cot", "en", "instruction"),
             ("reflect", None, "draft"), ("medprompt", "zh", "answer"), ("panel", None, "opinion")]  # fmt: skip
    for name, variant, key in cases:
        prompts = load_prompts(name, variant)
        assert prompts_for(prompts, SINGLE) is prompts
        multi = prompts_for(prompts, MULTI)
        assert multi[key] != prompts[key] and ("全部正确选项" in multi[key] or "every correct option" in multi[key])
    sc = load_prompts("sc", "zh")  # sc samples cot's prompts, its multi ones too
    assert prompts_for(sc, MULTI)["instruction"] == prompts_for(load_prompts("cot", "zh"), MULTI)["instruction"]


CONFIG = run_config("single")


def test_every_strategy_commits_to_a_set():
    """single and reflect's extractor generate under the letter-set grammar; cot parses the set from its text."""
    single = FakeBackend(replies=["BDA"])  # the grammar would keep it in order; the parser sorts it anyway
    prediction = predict("single", build_graph("single", single, CONFIG), MULTI)
    assert (prediction.answer, prediction.correct, prediction.answer_method) == ("ABD", True, "grammar")
    assert [kind for kind, _ in single.calls] == ["chat"] and "全部正确选项" in single.calls[0][1][-1].content

    cot = predict("cot", build_graph("cot", FakeBackend(replies=["……\n答案：AB"]), CONFIG), MULTI)
    assert (cot.answer, cot.correct) == ("AB", False)

    reflect = FakeBackend(replies=["……\n答案：AB", "漏选了D。建议答案：ABD", "ABD"])
    prediction = predict("reflect", build_graph("reflect", reflect, CONFIG), MULTI)
    assert (prediction.draft_answer, prediction.answer, prediction.correct) == ("AB", "ABD", True)

    sc = FakeBackend(replies=["答案：ABD", "答案：AB", "答案：ABD"])
    config = CONFIG.model_copy(update={"options": {"sc": {"samples": 3}}})
    prediction = predict("sc", build_graph("sc", sc, config), MULTI)
    assert prediction.extras["votes"] == ["ABD", "AB", "ABD"] and prediction.answer == "ABD"


def test_a_mixed_run_reports_multi_answer_questions_apart(tmp_path):
    """Two single-answer and one multi-answer CMB question: the headline counts the two, the multi section the one."""
    data = write_json(tmp_path / "cmb.json", cmb_records())
    questions = load_questions(data, "cmb", multi="include")
    assert sum(q.multi for q in questions) == 1
    # Scores favour B for single-answer questions; the multi-answer one gets "AB" (A and B right, D missed).
    backend = FakeBackend(replies=["AB"])
    result = evaluate(RunSpec(graph="single", baseline="none", data=data, format="cmb", out=tmp_path / "run"),
                      backend=backend)  # fmt: skip
    summary = result.summary
    assert summary.graphs[0].overall.total == len(questions) - 1
    (multi,) = summary.multi
    assert (multi.exact.total, multi.exact.correct, multi.partial) == (1, 0, pytest.approx(2 / 3))
    assert (
        "## Multi-answer questions" in result.markdown and "multi-answer questions are scored apart" in result.markdown
    )
    manifest = json.loads((result.out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["multi"] == "include"
    page = load_run_page(result.out)  # the HTML report reads the multi-answer question back as such
    assert page.summary.multi[0].exact.total == 1 and "Multi-answer questions (scored apart" in render(page)
    given = load_run_page(result.out, data=data, fmt="cmb")  # --data: read as the run read it, every kind
    assert given.summary.multi[0].exact.total == 1 and given.summary.graphs[0].overall.total == len(questions) - 1
    assert {qid: q.stem for qid, q in given.questions.items()} == {q.id: q.stem for q in questions}  # no stand-ins
    skipped = evaluate(
        RunSpec(graph="single", baseline="none", data=data, format="cmb", multi="skip", out=tmp_path / "skip"),
        backend=FakeBackend(),
    )
    assert skipped.summary.questions == len(questions) - 1 and not skipped.summary.multi


def test_a_real_model_answers_a_set_under_the_grammar(tiny_backend):
    messages = question_messages("你是临床医师。", MULTI, prompts_for(load_prompts("single"), MULTI)["answer"])
    completion = tiny_backend.chat(messages, max_tokens=6, grammar=letter_set_grammar(MULTI.letters),
                                   assistant_prefix="答案：")  # fmt: skip
    letters = completion.text.removeprefix("答案：")
    assert re.fullmatch(r"A?B?C?D?", letters) and letters  # a non-empty set, in order
    assert parse_letters(completion.text, MULTI.letters) == letters


def test_a_run_made_before_multi_answer_questions_were_included_resumes(tmp_path):
    """An older manifest reads multi = "skip"; on data with no multi-answer question (the bundled set) the same
    questions are asked, so today's default (include) resumes it instead of refusing a "different config"."""
    from eval.data import BUNDLED, select

    questions = select(load_questions(BUNDLED), limit=2)
    out = tmp_path / "run"
    evaluate(
        RunSpec(graph="single", baseline="none", multi="skip", out=out), questions=questions, backend=FakeBackend()
    )
    again = FakeBackend()
    evaluate(RunSpec(graph="single", baseline="none", out=out), questions=questions, backend=again)
    assert again.calls == []  # everything was done: nothing asked again
    assert json.loads((out / "manifest.json").read_text(encoding="utf-8"))["multi"] == "include"
