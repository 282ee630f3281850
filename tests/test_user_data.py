"""Data as users have it (issue 27, item 4): identity columns A–H, the headers Chinese question banks use, and CMB's
documented item format without ids. Tiny original records written here."""

from __future__ import annotations

import pytest
from test_loaders import cmb_records, write_csv, write_json, write_jsonl

from eval.data import DataError, load_questions
from eval.data.__main__ import main as data_main
from eval.data.loaders import detect, load

ROWS = [
    ["急性肾损伤最常见的病因是", "肾前性", "肾后性", "肾性", "不明", "A"],
    ["社区获得性肺炎最常见病原体是", "支原体", "肺炎链球菌", "病毒", "真菌", "B"],
]


def test_columns_named_a_to_h_need_no_mapping(tmp_path):
    path = write_csv(tmp_path / "bank.csv", ["问题描述", "A", "B", "C", "D", "标准答案"], ROWS)
    qs = load_questions(path, fields={"stem": "问题描述", "answer": "标准答案"})  # no --map A=A … D=D
    assert [(q.stem, q.options["B"], q.answer) for q in qs] == [(r[0], r[2], r[5]) for r in ROWS]
    # five columns, five options; mapped letters still win over the identity
    five = write_csv(tmp_path / "five.csv", ["q", "A", "B", "C", "D", "E", "k"], [["题", "a", "b", "c", "d", "e", "E"]])
    assert list(load_questions(five, fields={"stem": "q", "answer": "k"})[0].options) == list("ABCDE")
    swapped = write_csv(tmp_path / "swapped.csv", ["q", "A", "B", "C", "k"], [["题", "a", "b", "c", "A"]])
    (q,) = load_questions(swapped, fields={"stem": "q", "answer": "k", "A": "B", "B": "A"})
    assert q.options == {"A": "b", "B": "a"}


def test_no_options_and_no_letter_columns_is_one_clear_line(tmp_path):
    path = write_csv(tmp_path / "bank.csv", ["问题描述", "甲", "乙", "标准答案"], [["题", "a", "b", "A"]])
    with pytest.raises(DataError, match=r"bank\.csv:2: options: expected options mapped \(--map options=FIELD"):
        load(path, fields={"stem": "问题描述", "answer": "标准答案"})


@pytest.mark.parametrize(
    "header",
    [
        ["题目", "A", "B", "C", "D", "答案"],
        ["题干", "选项A", "选项B", "选项C", "选项D", "正确答案"],
        ["问题", "A", "B", "C", "D", "正确答案"],
    ],
)
def test_question_bank_headers_are_detected(tmp_path, header):
    path = write_csv(
        tmp_path / "bank.csv",
        ["编号", *header, "科室", "职称"],
        [[f"b{i}", *r, "肾内科", "主治医师"] for i, r in enumerate(ROWS)],
    )
    assert detect(path) == "generic"
    qs = load_questions(path)
    assert [(q.id, q.answer, q.options["A"]) for q in qs] == [("b0", "A", "肾前性"), ("b1", "B", "支原体")]
    assert (qs[0].specialty, qs[0].level) == ("nephrology", "attending")


def test_question_bank_headers_in_json_lines_and_a_single_options_column(tmp_path):
    path = write_jsonl(
        tmp_path / "bank.jsonl", [{"题干": "哪项正确", "选项": "A 甲\nB 乙\nC 丙", "答案": "C", "题型": "单选题"}]
    )
    (q,) = load_questions(path)
    assert (q.id, q.options, q.answer) == ("bank-1", {"A": "甲", "B": "乙", "C": "丙"}, "C")


def test_unknown_headers_still_name_what_is_expected(tmp_path):
    path = write_csv(tmp_path / "other.csv", ["x", "A", "B"], [["1", "2", "3"]])
    with pytest.raises(
        DataError, match=r"other\.csv:1: header: expected .*题目/题干/问题.*; for other columns use --map"
    ):
        load(path)


def test_inspect_reads_a_question_bank_without_a_map(tmp_path, capsys):
    path = write_csv(tmp_path / "bank.csv", ["题目", "A", "B", "C", "D", "答案"], ROWS)
    assert data_main(["inspect", str(path)]) == 0
    assert f"{path}: generic (utf-8)" in capsys.readouterr().out


def cmb_without_ids() -> list[dict]:
    return [{k: v for k, v in r.items() if k != "id"} for r in cmb_records()]


def test_cmb_without_ids_loads_with_ids_derived_from_the_content(tmp_path):
    records = cmb_without_ids()
    first = load_questions(write_json(tmp_path / "cmb.json", records), multi="include")
    assert len(first) == 3 and len({q.id for q in first}) == 3 and all(q.id.startswith("cmb-") for q in first)
    # stable across runs, and across file order: the id goes with the question, not with its position
    again = load_questions(write_json(tmp_path / "again.json", records), multi="include")
    reordered = load_questions(write_json(tmp_path / "reordered.json", records[::-1]), multi="include")
    by_stem = {q.stem: q.id for q in first}
    assert [q.id for q in again] == [q.id for q in first]
    assert {q.stem: q.id for q in reordered} == by_stem
    # key keys in another order, an option padded with an empty fifth or not: the same question, the same id
    padded = [r | {"option": dict(reversed(list(r["option"].items())))} for r in records]
    assert {q.stem: q.id for q in load_questions(write_json(tmp_path / "p.json", padded), multi="include")} == by_stem
    # a corrected key is the same question
    fixed = [records[0] | {"answer": "B"}, *records[1:]]
    assert load_questions(write_json(tmp_path / "f.json", fixed), multi="include")[0].id == first[0].id
    # different text, a different id
    other = [records[0] | {"question": records[0]["question"] + "？"}]
    assert load_questions(write_json(tmp_path / "o.json", other))[0].id != first[0].id


def test_cmb_without_ids_and_an_answers_file_is_refused(tmp_path):
    questions = write_json(
        tmp_path / "cmb.json", [{k: v for k, v in r.items() if k != "answer"} for r in cmb_without_ids()]
    )
    answers = write_json(tmp_path / "answers.json", [{"id": 11, "answer": "A"}])
    with pytest.raises(DataError, match=r"cmb\.json\[0\]: id: expected an id \(answers files are joined by it\)"):
        load(questions, answers=answers)


def test_two_identical_cmb_items_without_ids_are_named_as_duplicates(tmp_path):
    records = cmb_without_ids()
    path = write_json(tmp_path / "cmb.json", [records[0], records[2], records[0]])
    with pytest.raises(
        DataError,
        match=r"cmb\.json\[2\]: id: duplicate question id 'cmb-[0-9a-f]{16}' \(first seen at .*cmb\.json\[0\]\)",
    ):
        load(path)
