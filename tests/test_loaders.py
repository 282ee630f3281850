"""Real exam dataset loaders: detection, mapping, multi-answer handling, CMB answers, generic maps, the CLI.

Every fixture is a tiny original record written here, in the shape of the public dataset it stands for.
"""

from __future__ import annotations

import csv
import json
import logging
import subprocess
from pathlib import Path

import pytest
from conftest import run_main

from eval.data import DataError, load_questions
from eval.data.loaders import MultiQuestion, detect, load, load_mapping, stratified

ROOT = Path(__file__).resolve().parents[1]


# --- fixture writers -----------------------------------------------------------------------------------


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def write_json(path: Path, records) -> Path:
    path.write_text(json.dumps(records, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


CMEXAM_HEADER = [
    "Question",
    "Options",
    "Answer",
    "Explanation",
    "Clinical Department",
    "Disease Group",
    "Competency",
    "Difficulty level",
]


def cmexam_file(tmp_path: Path, *extra: list[str]) -> Path:
    rows = [
        [
            "高血压患者首选的一线降压药物类别不包括",
            "A 利尿剂\nB 钙通道阻滞剂\nC ACEI\nD ARB\nE 硝普钠",
            "E",
            "硝普钠用于急症。",
            "心血管内科",
            "循环系统疾病",
            "医学知识",
            "3",
        ],
        [
            "癫痫持续状态首选的药物是",
            "A 地西泮静注\nB 口服丙戊酸\nC 苯巴比妥口服\nD 卡马西平",
            "A",
            "",
            "内科",
            "神经系统疾病",
            "临床诊疗",
            "2",
        ],
        [
            "慢性颅内血肿的手术方式是",
            "A 钻孔引流\nB 开颅切除\nC 观察\nD 腰穿",
            "A",
            "",
            "神经外科",
            "神经系统疾病",
            "临床诊疗",
            "4",
        ],
        [
            "下列属于肾病综合征表现的有",
            "A 大量蛋白尿\nB 低白蛋白血症\nC 高血压必有\nD 水肿",
            "DBA",
            "",
            "肾内科",
            "泌尿系统疾病",
            "医学知识",
            "3",
        ],
        *extra,
    ]
    return write_csv(tmp_path / "cmexam.csv", CMEXAM_HEADER, rows)


def cmb_records(with_answers: bool = True) -> list[dict]:
    records = [
        {
            "id": 11,
            "exam_type": "医师考试",
            "exam_class": "中级职称",
            "exam_subject": "神经内科",
            "question": "短暂性脑缺血发作的典型持续时间是",
            "option": {"A": "数分钟至1小时内", "B": "超过24小时", "C": "1周", "D": "1个月", "E": "不定"},
            "question_type": "单项选择题",
            "answer": "A",
        },
        {
            "id": 12,
            "exam_type": "医师考试",
            "exam_class": "高级职称",
            "exam_subject": "呼吸内科",
            "question": "慢阻肺急性加重常见诱因有",
            "option": {"A": "呼吸道感染", "B": "空气污染", "C": "规律用药", "D": "停用吸入药", "E": ""},
            "question_type": "多项选择题",
            "answer": "ABD",
        },
        {
            "id": 13,
            "exam_type": "医师考试",
            "exam_class": "执业医师",
            "exam_subject": "泌尿外科",
            "question": "肾绞痛最常见的原因是",
            "option": {"A": "输尿管结石", "B": "肾囊肿", "C": "膀胱炎", "D": "前列腺增生", "E": ""},
            "question_type": "单项选择题",
            "answer": "A",
        },
    ]
    if not with_answers:
        for r in records:
            del r["answer"]
    return records


def medqa_records() -> list[dict]:
    return [
        {
            "question": "缺铁性贫血最可靠的诊断指标是",
            "options": {
                "A": "血清铁蛋白降低",
                "B": "MCV升高",
                "C": "网织红细胞升高",
                "D": "血小板减少",
                "E": "白细胞减少",
            },
            "answer": "血清铁蛋白降低",
            "meta_info": "血液系统",
            "answer_idx": "A",
        },
        {
            "question": "肝硬化腹水首选的利尿剂是",
            "options": {"A": "呋塞米单用", "B": "螺内酯", "C": "甘露醇", "D": "氢氯噻嗪", "E": "乙酰唑胺"},
            "answer": "螺内酯",
            "meta_info": "消化系统",
            "answer_idx": "B",
        },
    ]


MMLU_HEADER = ["", "Question", "A", "B", "C", "D", "Answer"]
CEVAL_HEADER = ["id", "question", "A", "B", "C", "D", "answer", "explanation"]


def generic_csv(tmp_path: Path) -> Path:
    return write_csv(
        tmp_path / "mine.csv",
        ["编号", "题目", "选项A", "选项B", "选项C", "选项D", "答案", "科室", "职称"],
        [
            ["g1", "急性肾损伤最常见的病因是", "肾前性", "肾后性", "肾性", "不明", "A", "肾内科", "主治医师"],
            [
                "g2",
                "社区获得性肺炎最常见病原体是",
                "肺炎链球菌",
                "支原体",
                "病毒",
                "真菌",
                "A",
                "呼吸与危重症医学科",
                "副主任医师",
            ],
        ],
    )


GENERIC_MAP = {
    "id": "编号",
    "stem": "题目",
    "A": "选项A",
    "B": "选项B",
    "C": "选项C",
    "D": "选项D",
    "answer": "答案",
    "specialty": "科室",
    "level": "职称",
}


def native_record(**change) -> dict:
    return {
        "id": "n-1",
        "stem": "题干",
        "options": {"A": "a", "B": "b", "C": "c", "D": "d"},
        "answer": "B",
        "specialty": "neurology",
        "level": "senior",
    } | change


def cli(*args: str) -> subprocess.CompletedProcess:
    return run_main("eval.data", *args)


# --- detection and loading, per format ------------------------------------------------------------------


def test_detects_each_format(tmp_path):
    assert detect(cmexam_file(tmp_path)) == "cmexam"
    assert detect(write_json(tmp_path / "cmb.json", cmb_records())) == "cmb"
    assert detect(write_jsonl(tmp_path / "medqa.jsonl", medqa_records())) == "medqa"
    assert detect(write_csv(tmp_path / "anatomy.csv", MMLU_HEADER, [["0", "q", "a", "b", "c", "d", "A"]])) == "mmlu"
    assert (
        detect(write_csv(tmp_path / "physician_val.csv", CEVAL_HEADER, [["0", "q", "a", "b", "c", "d", "A", ""]]))
        == "mmlu"
    )
    assert detect(write_jsonl(tmp_path / "ours.jsonl", [native_record()])) == "native"
    assert detect(ROOT / "eval/data/questions/neurology.jsonl") == "native"


def test_undetectable_files_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match=r"other\.csv:1: header: expected CMExam columns"):
        detect(write_csv(tmp_path / "other.csv", ["x", "y"], [["1", "2"]]))
    with pytest.raises(DataError, match=r"cannot tell the format"):
        detect(tmp_path.joinpath("q.txt"))
    with pytest.raises(DataError, match=r"x\.json\[0\]: fields: expected CMB records"):
        detect(write_json(tmp_path / "x.json", [{"foo": 1}]))


def test_cmexam(tmp_path):
    loaded = load(cmexam_file(tmp_path))
    assert loaded.formats == {str(tmp_path / "cmexam.csv"): "cmexam"} and loaded.records == 4
    first, second, third = loaded.questions
    assert first.id == "cmexam-cmexam-1" and first.answer == "E" and first.options["E"] == "硝普钠"
    assert (first.specialty, first.level, first.rationale) == ("cardiovascular", None, "硝普钠用于急症。")
    assert "心血管内科" in first.source and "cmexam.csv:2" in first.source
    assert second.specialty == "neurology" and len(second.options) == 4  # 内科 matches nothing; disease group decides
    assert third.specialty == "other"  # 神经外科 is surgery whatever its disease group
    assert loaded.skipped == 1 and loaded.kinds == {"single-5": 1, "single-4": 2, "multi": 1}


def test_cmb_with_inline_answers(tmp_path):
    qs = load_questions(write_json(tmp_path / "cmb.json", cmb_records()), multi="include")
    assert [(q.id, q.specialty, q.level, q.answer) for q in qs] == [
        ("11", "neurology", "attending", "A"),
        ("12", "respiratory", "senior", "ABD"),
        ("13", "other", None, "A"),
    ]
    assert list(qs[1].options) == ["A", "B", "C", "D"]  # the empty padding E is dropped
    assert isinstance(qs[1], MultiQuestion) and not isinstance(qs[0], MultiQuestion)


def test_cmb_answers_file_is_joined_by_id(tmp_path):
    questions = write_json(tmp_path / "cmb-test.json", cmb_records(with_answers=False))
    answers = write_json(
        tmp_path / "cmb-answers.json",
        [{"id": 13, "answer": "B"}, {"id": 11, "answer": "C"}, {"id": 12, "answer": "AB"}],
    )
    loaded = load(questions, answers=answers)
    assert [(q.id, q.answer) for q in loaded.questions] == [("11", "C"), ("13", "B")] and loaded.skipped == 1
    # JSONL answers work too; a question missing from the answers file is named
    partial = write_jsonl(tmp_path / "answers.jsonl", [{"id": 11, "answer": "A"}])
    with pytest.raises(
        DataError, match=r"cmb-test\.json\[1\]: answer: expected an answer for id '12' in the answers file"
    ):
        load(questions, answers=partial)
    with pytest.raises(DataError, match=r"cmb-test\.json\[0\]: answer: expected an answer field, or an answers file"):
        load(questions)
    with pytest.raises(DataError, match=r"only CMB data \(medqa detected\)"):
        load(write_jsonl(tmp_path / "medqa.jsonl", medqa_records()), answers=answers)


def test_medqa(tmp_path):
    qs = load_questions(write_jsonl(tmp_path / "medqa.jsonl", medqa_records()))
    assert [(q.id, q.answer, q.specialty) for q in qs] == [
        ("medqa-medqa-1", "A", "hematology"),
        ("medqa-medqa-2", "B", "gastroenterology"),
    ]
    # without answer_idx the letter comes from the answer text
    record = {k: v for k, v in medqa_records()[1].items() if k != "answer_idx"}
    assert load_questions(write_jsonl(tmp_path / "m2.jsonl", [record]))[0].answer == "B"


def test_cmmlu_and_ceval(tmp_path):
    cmmlu = write_csv(
        tmp_path / "clinical_knowledge.csv",
        MMLU_HEADER,
        [["0", "心电图P波代表", "心房除极", "心室除极", "心室复极", "房室传导", "A"]],
    )
    (q,) = load_questions(cmmlu)
    assert (q.id, q.answer, q.specialty, list(q.options)) == (
        "clinical_knowledge-1",
        "A",
        "other",
        ["A", "B", "C", "D"],
    )
    ceval = write_csv(
        tmp_path / "physician_val.csv",
        CEVAL_HEADER,
        [["7", "成人正常血钾范围是", "3.5–5.5", "2–3", "6–7", "1–2", "A", "常识"]],
    )
    (q,) = load_questions(ceval)
    assert (q.id, q.rationale) == ("physician_val-7", "常识")


def test_native_is_still_the_default_and_multi_answers_round_trip(tmp_path):
    path = write_jsonl(tmp_path / "ours.jsonl", [native_record(), native_record(id="n-2", answer="AC")])
    assert [q.id for q in load_questions(path)] == ["n-1"]
    qs = load_questions(path, multi="include")
    assert qs[1].answer == "AC" and isinstance(qs[1], MultiQuestion)
    with pytest.raises(DataError, match=r"bad\.jsonl:1: .*answer 'CA' must be distinct sorted letters"):
        # ours: sorted
        load_questions(write_jsonl(tmp_path / "bad.jsonl", [native_record(answer="CA")]), multi="include")


# --- mapping ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "specialty"),
    [
        ("神经内科", "neurology"),
        ("神经病学", "neurology"),
        ("神经外科", "other"),
        ("精神神经科", "other"),
        ("肾内科", "nephrology"),
        ("泌尿外科", "other"),
        ("泌尿系统疾病", "nephrology"),
        ("肾上腺疾病", "other"),
        ("血液内科", "hematology"),
        ("血液透析室", "nephrology"),
        ("血液净化中心", "nephrology"),
        ("心血管内科", "cardiovascular"),
        ("心内科", "cardiovascular"),
        ("心胸外科", "other"),
        ("心理科", "other"),
        ("感染性心内膜炎", "cardiovascular"),
        ("消化内科", "gastroenterology"),
        ("胃肠外科", "other"),
        ("呼吸与危重症医学科", "respiratory"),
        ("小儿呼吸科", "other"),
        ("儿科神经", "other"),
        ("新生儿科", "other"),
        ("感染科", "infectious_disease"),
        ("传染病学", "infectious_disease"),
        ("呼吸道感染", "respiratory"),
        ("中医内科", "other"),
        ("内科", "other"),
        ("", "other"),
        ("Cardiology", "cardiovascular"),
        ("Neurosurgery", "other"),
        ("Neurology", "neurology"),
        ("Urology", "other"),
        ("Hematuria", "other"),
        ("Urology and renal transplant", "other"),
        ("Hematology", "hematology"),
        ("Infectious Diseases", "infectious_disease"),
        ("Diseases of the respiratory system", "respiratory"),
        ("Pediatric nephrology", "other"),
        *[
            (s, s)
            for s in (
                "cardiovascular",
                "gastroenterology",
                "hematology",
                "infectious_disease",
                "nephrology",
                "neurology",
                "respiratory",
            )
        ],
    ],
)
def test_specialty_mapping(name, specialty):
    assert load_mapping().to_specialty(name) == specialty


@pytest.mark.parametrize(
    ("name", "level"),
    [
        ("主治医师", "attending"),
        ("中级职称", "attending"),
        ("副主任医师", "senior"),
        ("主任医师", "senior"),
        ("高级职称", "senior"),
        ("执业医师", None),
        ("执业助理医师", None),
        ("", None),
        ("attending", "attending"),
        ("senior", "senior"),
    ],
)
def test_level_mapping(name, level):
    assert load_mapping().to_level(name) == level


def test_first_matching_name_decides():
    rules = load_mapping()
    assert rules.to_specialty("内科", "循环系统疾病") == "cardiovascular"  # no rule for 内科: falls through
    assert rules.to_specialty("外科", "消化系统疾病") == "other"  # an "other" rule is a match


def test_user_mapping_is_checked_first(tmp_path):
    user = tmp_path / "mine.toml"
    user.write_text(
        '[[specialty]]\nmatch = ["神经外科"]\nto = "neurology"\n\n[[level]]\nmatch = ["执业医师"]\nto = "attending"\n',
        encoding="utf-8",
    )
    rules = load_mapping(user)
    assert (rules.to_specialty("神经外科"), rules.to_specialty("泌尿外科"), rules.to_level("执业医师")) == (
        "neurology",
        "other",
        "attending",
    )
    qs = load_questions(write_json(tmp_path / "cmb.json", cmb_records()), mapping=user)
    assert [q.level for q in qs] == ["attending", "attending"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[specialty]]\nmatch = ["x"]\nto = "dermatology"\n', r"bad\.toml: specialty\[0\]: expected match"),
        ('[[level]]\nmatch = []\nto = "senior"\n', r"bad\.toml: level\[0\]: expected match"),
        ("[colors]\nx = 1\n", r"bad\.toml: colors: expected only"),
        ("[[specialty]\n", r"bad\.toml: not valid TOML"),
    ],
)
def test_bad_user_mapping(tmp_path, text, message):
    (tmp_path / "bad.toml").write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        load_mapping(tmp_path / "bad.toml")


# --- multi-answer questions -------------------------------------------------------------------------------


def test_multi_skip_is_counted_and_logged(tmp_path, caplog):
    path = cmexam_file(tmp_path)
    with caplog.at_level(logging.WARNING):
        qs = load_questions(path)
    assert len(qs) == 3 and "skipped 1 multi-answer" in caplog.text


def test_multi_exact_keeps_sorted_letters(tmp_path):
    qs = load_questions(cmexam_file(tmp_path), multi="include")
    (multi,) = [q for q in qs if isinstance(q, MultiQuestion)]
    assert multi.answer == "ABD" and multi.specialty == "nephrology"


def test_only_multi_answer_questions_left_is_an_error(tmp_path):
    path = write_json(tmp_path / "cmb.json", [cmb_records()[1]])
    with pytest.raises(DataError, match=r"no questions left: all 1 are multi-answer"):
        load_questions(path)


def test_single_answer_type_with_several_letters_is_an_error(tmp_path):
    record = cmb_records()[0] | {"answer": "AB"}
    with pytest.raises(
        DataError, match=r"cmb\.json\[0\]: answer: expected one letter for a single-answer question, got 'AB'"
    ):
        load_questions(write_json(tmp_path / "cmb.json", [record]))


# --- generic mapping --------------------------------------------------------------------------------------


def test_generic_csv_with_a_field_map(tmp_path):
    qs = load_questions(generic_csv(tmp_path), fields=GENERIC_MAP)
    assert [(q.id, q.specialty, q.level, q.options["A"]) for q in qs] == [
        ("g1", "nephrology", "attending", "肾前性"),
        ("g2", "respiratory", "senior", "肺炎链球菌"),
    ]


def test_generic_jsonl_with_options_in_one_field(tmp_path):
    path = write_jsonl(
        tmp_path / "mine.jsonl",
        [{"题": "哪项正确", "选项": {"A": "甲", "B": "乙", "C": "丙"}, "答": "C", "类型": "单选"}],
    )
    (q,) = load_questions(path, fields={"stem": "题", "options": "选项", "answer": "答", "type": "类型"})
    assert (q.id, q.answer, q.specialty, q.level) == ("mine-1", "C", "other", None)


def test_generic_map_problems(tmp_path):
    path = generic_csv(tmp_path)
    with pytest.raises(DataError, match=r"--map: colour: expected one of id, stem"):
        load(path, fields=GENERIC_MAP | {"colour": "x"})
    with pytest.raises(DataError, match=r"expected at least stem, answer, and options"):
        load(path, fields={"stem": "题目"})
    with pytest.raises(DataError, match=r"mine\.csv:2: 题干: expected a field '题干' \(mapped from stem\)"):
        load(path, fields=GENERIC_MAP | {"stem": "题干"})
    with pytest.raises(DataError, match=r"format generic: expected a field mapping"):
        load(path, "generic")


# --- malformed input, each format: file, line or record, field, expectation ------------------------------


def _cmexam_bad(tmp_path):
    return cmexam_file(tmp_path, ["题", "A 甲\nB 乙", "X", "", "", "", "", ""])


MALFORMED = {
    "cmexam answer": (_cmexam_bad, r"cmexam\.csv:\d+: Answer: expected option letters such as 'C' or 'ABD', got 'X'"),
    "cmexam options": (
        lambda p: cmexam_file(p, ["题", "甲\n乙", "A", "", "", "", "", ""]),
        r"cmexam\.csv:\d+: Options: expected one option per line like 'A 文本', got '甲'",
    ),
    "cmexam header": (
        lambda p: write_csv(p / "cmexam.csv", ["Question", "Options", "Explanation"], [["q", "A a\nB b", ""]]),
        r"cmexam\.csv:1: header: expected CMExam columns",
    ),
    "cmb json": (
        lambda p: (p / "cmb.json").write_text("[{", encoding="utf-8") and p / "cmb.json",
        r"cmb\.json:1: not valid JSON",
    ),
    "cmb options": (
        lambda p: write_json(p / "cmb.json", [cmb_records()[0] | {"option": {"A": "x", "C": "y"}}]),
        r"cmb\.json\[0\]: option: expected 2–8 options labelled A, B, C… in order, got \['A', 'C'\]",
    ),
    "cmb stem": (
        lambda p: write_json(p / "cmb.json", [cmb_records()[0] | {"question": " "}]),
        r"cmb\.json\[0\]: question: expected a non-empty",
    ),
    "medqa mismatch": (
        lambda p: write_jsonl(p / "medqa.jsonl", [medqa_records()[0] | {"answer_idx": "B"}]),
        r"medqa\.jsonl:1: answer: expected the text of option 'B' \(answer_idx\)",
    ),
    "medqa line": (
        lambda p: (
            (p / "medqa.jsonl").write_text(json.dumps(medqa_records()[0]) + "\n{oops\n", encoding="utf-8")
            and p / "medqa.jsonl"
        ),
        r"medqa\.jsonl:2: not valid JSON",
    ),
    "mmlu option": (
        lambda p: write_csv(p / "anatomy.csv", MMLU_HEADER, [["0", "q", "a", "b", "", "d", "A"]]),
        r"anatomy\.csv:2: C: expected a text for option C",
    ),
    "ceval no answers": (
        lambda p: write_csv(
            p / "physician_test.csv", ["id", "question", "A", "B", "C", "D"], [["0", "q", "a", "b", "c", "d"]]
        ),
        r"physician_test\.csv:1: Answer or answer: expected this column in the header for mmlu",
    ),
    "native field": (
        lambda p: write_jsonl(p / "ours.jsonl", [native_record(level="intern")]),
        r"ours\.jsonl:1: field 'level'",
    ),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_input_is_one_clear_line(tmp_path, case):
    make, message = MALFORMED[case]
    path = make(tmp_path)
    with pytest.raises(DataError, match=message):
        load_questions(path)


def test_malformed_input_from_the_cli_exits_2_without_a_traceback(tmp_path):
    result = cli("sample", _cmexam_bad(tmp_path), "--per-cell", "1", "--out", tmp_path / "s.jsonl")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    # a record starts on the line after the previous one ends: the four rows above span lines 2-18
    assert result.stderr.count("\n") == 1 and "cmexam.csv:19: Answer: expected option letters" in result.stderr
    missing = cli("inspect", tmp_path / "nope.jsonl")
    assert (
        missing.returncode == 2
        and missing.stderr.strip() == f"error: {tmp_path / 'nope.jsonl'}: no such file or directory"
    )
    bad_map = cli("inspect", generic_csv(tmp_path), "--map", "stem")
    assert bad_map.returncode == 2 and "--map stem: expected KEY=FIELD" in bad_map.stderr


# --- the CLI ----------------------------------------------------------------------------------------------


def test_inspect_counts_kinds_and_lists_every_problem(tmp_path):
    path = cmexam_file(
        tmp_path,
        ["题一", "A 甲\nB 乙", "X", "", "", "", "", ""],
        ["", "A 甲\nB 乙", "A", "", "", "", "", ""],
    )
    result = cli("inspect", path, "--multi", "skip")
    out = result.stdout
    assert result.returncode == 2, result.stderr  # problems: a strict load would refuse this file
    assert f"{path}: cmexam" in out
    assert "records: 6  loaded: 3  skipped multi-answer: 1  bad records: 2  unreadable files: 0  encoding: utf-8" in out
    assert (
        "single, 4 options" in out
        and "single, 5 options" in out
        and "multi-answer" in out
        and "(skipped: --multi skip)" in out
    )
    assert any(line.split() == ["cardiovascular", "0", "0", "1", "1"] for line in out.splitlines())
    assert (
        "cmexam.csv:19: Answer: expected option letters" in out
        and "cmexam.csv:21: Question: expected a non-empty question text" in out
    )


def test_inspect_clean_file_exits_0_and_respects_format_and_multi(tmp_path):
    # Multi-answer questions are included by default, as a run includes them.
    result = cli("inspect", write_json(tmp_path / "cmb.json", cmb_records()), "--format", "cmb")
    assert result.returncode == 0, result.stderr
    assert "loaded: 3  skipped multi-answer: 0  bad records: 0" in result.stdout
    assert any(line.split() == ["respiratory", "0", "1", "0", "1"] for line in result.stdout.splitlines())


def test_inspect_generic_with_a_map_file(tmp_path):
    toml = tmp_path / "map.toml"
    toml.write_text("\n".join(f'{k} = "{v}"' for k, v in GENERIC_MAP.items()), encoding="utf-8")
    result = cli(
        "inspect", generic_csv(tmp_path), "--map-file", toml, "--map", "level=科室"
    )  # --map wins over the file
    assert result.returncode == 0, result.stderr
    assert "generic" in result.stdout and any(
        line.split() == ["nephrology", "0", "0", "1", "1"] for line in result.stdout.splitlines()
    )


def test_sample_is_stratified_seeded_and_in_our_schema(tmp_path):
    records = [
        native_record(id=f"n-{i}", specialty=s, level=lv)
        for i, (s, lv) in enumerate(
            [(s, lv) for s in ("neurology", "respiratory") for lv in ("attending", "senior") for _ in range(5)]
        )
    ]
    data = write_jsonl(tmp_path / "ours.jsonl", records)
    first, second = tmp_path / "a.jsonl", tmp_path / "out" / "b.jsonl"
    result = cli("sample", data, "--per-cell", "2", "--seed", "3", "--out", first)
    assert result.returncode == 0, result.stderr
    assert "wrote 8 of 20 questions (4 cells, up to 2 each)" in result.stdout
    assert cli("sample", data, "--per-cell", "2", "--seed", "3", "--out", second).returncode == 0
    assert first.read_text(encoding="utf-8") == second.read_text(encoding="utf-8")
    sampled = load_questions(first)
    assert {(q.specialty, q.level) for q in sampled} == {
        (s, lv) for s in ("neurology", "respiratory") for lv in ("attending", "senior")
    }
    assert len(sampled) == 8


def test_sample_converts_a_real_format_and_keeps_multi_answer_questions(tmp_path):
    out = tmp_path / "s.jsonl"
    records = cmb_records()
    records[2] = {**records[2], "question_type": "多项选择题"}  # a 多选 question whose key is one letter
    result = cli("sample", write_json(tmp_path / "cmb.json", records), "--per-cell", "5", "--out", out)
    assert result.returncode == 0, result.stderr
    assert "短暂性脑缺血发作" in out.read_text(encoding="utf-8")  # readable Chinese, no \u escapes
    # Kept by default, as a run keeps them; marked, so the one-letter 多选 question is still one when read back.
    kinds = sorted((q.answer, q.multi) for q in load_questions(out, multi="include"))
    assert kinds == [("A", False), ("A", True), ("ABD", True)]
    assert len(load_questions(out)) == 1  # read back skipping multi-answer questions, both are skipped again


def test_our_jsonl_multi_marker_must_be_a_boolean(tmp_path):
    path = tmp_path / "q.jsonl"
    record = {"id": "x-1", "stem": "题", "options": {"A": "甲", "B": "乙"}, "answer": "A", "multi": "yes"}
    path.write_text(json.dumps(record, ensure_ascii=False) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"q\.jsonl:1: multi: expected true or false, got 'yes'"):
        load(path, multi="include")


def test_stratified_takes_at_most_per_cell():
    qs = load_questions()
    picked = stratified(qs, per_cell=1, seed=0)
    assert (
        len(picked) == 14
        and picked == stratified(qs, per_cell=1, seed=0)
        and picked != stratified(qs, per_cell=1, seed=1)
    )


# --- real datasets: options beyond E, bad records, directories of CSVs, GB18030/GBK ----------------------------

CMMLU_DIR = ROOT.parent / "shared/data/cmmlu"  # real CMMLU clinical_knowledge, used in place (see its README)

SIX = {"A": "阿司匹林", "B": "氯吡格雷", "C": "替格瑞洛", "D": "华法林", "E": "肝素", "F": "达比加群"}


def cmb_six(**change) -> dict:
    return {
        "id": 21,
        "exam_type": "医师考试",
        "exam_class": "高级职称",
        "exam_subject": "心内科",
        "question": "非瓣膜性房颤抗凝可选的新型口服药是",
        "option": dict(SIX),
        "question_type": "单项选择题",
        "answer": "F",
    } | change


def test_cmb_six_options_answer_f(tmp_path):
    loaded = load(
        write_json(tmp_path / "cmb.json", [cmb_six(), cmb_six(id=22, question_type="多项选择题", answer="F，C")]),
        multi="include",
    )
    single, multi = loaded.questions
    assert (single.answer, list(single.options), single.specialty, single.level) == (
        "F",
        list("ABCDEF"),
        "cardiovascular",
        "senior",
    )
    assert isinstance(multi, MultiQuestion) and multi.answer == "CF"
    assert loaded.kinds == {"single-6": 1, "multi": 1}


def test_options_beyond_e_in_every_format(tmp_path):
    eight = dict(zip("ABCDEFGH", "甲乙丙丁戊己庚辛", strict=True))
    cmexam = cmexam_file(
        tmp_path, ["八选一", "\n".join(f"{k}、{v}" for k, v in eight.items()), "H", "", "心内科", "", "", ""]
    )
    assert load_questions(cmexam)[-1].answer == "H" and len(load_questions(cmexam)[-1].options) == 8
    medqa = write_jsonl(
        tmp_path / "medqa.jsonl", [medqa_records()[0] | {"options": dict(SIX), "answer": "达比加群", "answer_idx": "F"}]
    )
    assert load_questions(medqa)[0].answer == "F"
    mine = write_csv(
        tmp_path / "mine.csv", ["题目", *(f"选项{k}" for k in "ABCDEF"), "答案"], [["哪个", *SIX.values(), "F"]]
    )
    fields = {"stem": "题目", "answer": "答案"} | {k: f"选项{k}" for k in "ABCDEF"}
    assert load_questions(mine, fields=fields)[0].options["F"] == "达比加群"
    ours = write_jsonl(tmp_path / "ours.jsonl", [native_record(options=dict(SIX), answer="BF")])
    (q,) = load_questions(ours, multi="include")  # several letters up to H still mean a multi-answer question
    assert isinstance(q, MultiQuestion) and q.answer == "BF"
    with pytest.raises(
        DataError,
        match=r"expected 2–8 options labelled A, B, C… in order, got \['A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I'\]",
    ):
        load(write_json(tmp_path / "nine.json", [cmb_six(option=eight | {"I": "壬"})]))


def test_bad_records_stop_a_strict_load_and_are_listed_with_skip_bad(tmp_path):
    path = cmexam_file(tmp_path, ["答案为空的题", "A 甲\nB 乙", "", "", "", "", "", ""])  # as in CMExam's full release
    with pytest.raises(
        DataError, match=r"cmexam\.csv:19: Answer: expected option letters such as 'C' or 'ABD', got ''"
    ):
        load(path)
    loaded = load(path, skip_bad=True)
    assert loaded.bad == [f"{path}:19: Answer: expected option letters such as 'C' or 'ABD', got ''"]
    assert len(loaded.questions) == 3 and loaded.records == 5 and loaded.skipped == 1
    only_bad = write_csv(tmp_path / "bad.csv", CMEXAM_HEADER, [["题", "A 甲\nB 乙", "", "", "", "", "", ""]])
    with pytest.raises(
        DataError, match=r"bad\.csv: no questions left: 1 of 1 records are bad; the first: .*bad\.csv:2: Answer"
    ):
        load(only_bad, skip_bad=True)
    with pytest.raises(DataError, match=r"other\.csv:1: header: expected CMExam columns"):  # a file, not a record
        load(write_csv(tmp_path / "other.csv", ["x"], [["1"]]), skip_bad=True)


@pytest.mark.skipif(not CMMLU_DIR.is_dir(), reason="the shared CMMLU data is not here")
def test_a_directory_of_real_cmmlu_csvs_is_one_dataset():
    loaded = load(CMMLU_DIR)  # clinical_knowledge.csv (237) and clinical_knowledge_dev.csv (5); README.md is ignored
    assert len(loaded.questions) == 242 and loaded.encoding == "utf-8"
    assert set(loaded.formats.values()) == {"mmlu"} and len(loaded.formats) == 2
    ids = [q.id for q in loaded.questions]
    assert len(set(ids)) == 242 and ids[0] == "clinical_knowledge-1" and ids[-1] == "clinical_knowledge_dev-5"
    assert loaded.questions[-1].source == "clinical_knowledge_dev.csv:6"
    assert {q.specialty for q in loaded.questions} == {"other"}  # general clinical knowledge: see mapping.toml
    assert {len(q.options) for q in loaded.questions} == {4}


def test_a_directory_of_csvs_prefixes_ids_and_refuses_mixed_kinds(tmp_path):
    for subject in ("clinical_medicine_val", "physician_val"):  # C-Eval: both files number their rows from 0
        write_csv(
            tmp_path / f"{subject}.csv",
            CEVAL_HEADER,
            [["0", "成人正常血钾范围是", "3.5–5.5", "2–3", "6–7", "1–2", "A", ""]],
        )
    qs = load_questions(tmp_path)
    assert [(q.id, q.source) for q in qs] == [
        ("clinical_medicine_val-0", "clinical_medicine_val.csv:2"),
        ("physician_val-0", "physician_val.csv:2"),
    ]
    write_jsonl(tmp_path / "sample.jsonl", [native_record()])
    with pytest.raises(DataError, match=r"holds \.csv and \.jsonl files: a directory is one dataset of one kind"):
        load_questions(tmp_path)


def test_gb18030_and_gbk_files_are_read_and_the_encoding_recorded(tmp_path):
    row = ["0", "血氧饱和度SpO₂正常值是", "≥95%", "80%", "70%", "60%", "A"]  # ₂ is in GB18030, not in GBK
    gb = tmp_path / "gb" / "clinical_knowledge.csv"
    gb.parent.mkdir()
    gb.write_bytes((",".join(MMLU_HEADER) + "\n" + ",".join(row) + "\n").encode("gb18030"))
    loaded = load(gb)
    assert loaded.questions[0].stem == row[1] and loaded.encoding == "gb18030"
    cmb = tmp_path / "cmb.json"
    cmb.write_bytes(json.dumps(cmb_records(), ensure_ascii=False).encode("gbk"))
    assert load(cmb).encoding == "gb18030" and load(cmb, encoding="GBK").encoding == "gbk"  # GB18030 reads GBK alike
    assert [q.stem for q in load(cmb).questions] == [cmb_records()[0]["question"], cmb_records()[2]["question"]]
    # a directory whose files differ records both, in the order tried, and that value rereads it the same way
    write_csv(gb.parent / "anatomy.csv", MMLU_HEADER, [["0", "心脏位于", "纵隔", "腹腔", "盆腔", "颅腔", "A"]])
    mixed = load(gb.parent)
    assert mixed.encoding == "utf-8,gb18030" and mixed.encodings == {
        str(gb.parent / "anatomy.csv"): "utf-8",
        str(gb): "gb18030",
    }
    assert load(gb.parent, encoding=mixed.encoding).questions == mixed.questions


def test_undecodable_files_and_unknown_encodings_are_one_clear_line(tmp_path):
    path = tmp_path / "junk.jsonl"
    path.write_bytes(b'{"id": "\xff\xfe"}\n')
    with pytest.raises(
        DataError,
        match=(
            r"junk\.jsonl: cannot decode as utf-8 or gb18030 \(utf-8: invalid start byte at byte 8; .*\); "
            r"name its encoding with --encoding"
        ),
    ):
        load(path)
    with pytest.raises(DataError, match=r"--encoding base64: 'base64' is not a text encoding"):
        load(path, encoding="base64")
    with pytest.raises(DataError, match=r"--encoding nope: 'nope' is not a text encoding"):
        load(path, encoding="nope")


def test_cli_skip_bad_and_encoding(tmp_path):
    path = tmp_path / "cmexam.csv"
    cmexam_file(tmp_path, ["答案为空的题", "A 甲\nB 乙", "", "", "", "", "", ""])
    path.write_bytes(path.read_text(encoding="utf-8").encode("gb18030"))
    strict = cli("inspect", path)
    assert strict.returncode == 2 and "bad records (1):" in strict.stdout and "cmexam.csv:19: Answer" in strict.stdout
    result = cli("inspect", path, "--skip-bad")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        f"{path}: cmexam (gb18030)" in result.stdout
        and "bad records: 1" in result.stdout
        and "encoding: gb18030" in result.stdout
    )
    refused = cli("sample", path, "--per-cell", "1", "--out", tmp_path / "s.jsonl")
    assert refused.returncode == 2 and "cmexam.csv:19: Answer" in refused.stderr
    out = tmp_path / "s.jsonl"
    sample = cli("sample", path, "--per-cell", "5", "--out", out, "--skip-bad", "--encoding", "gb18030")
    assert (
        sample.returncode == 0
        and "1 bad records skipped" in sample.stdout
        and "高血压" in out.read_text(encoding="utf-8")
    )
    wrong = cli("inspect", path, "--encoding", "utf-8")
    assert (
        wrong.returncode == 2
        and "unreadable files (1):" in wrong.stdout
        and "cmexam.csv: cannot decode as utf-8 (" in wrong.stdout
    )


def test_control_characters_in_question_text_are_a_bad_record(tmp_path):
    def record(i: int, stem: str, b: str = "乙") -> dict:
        return {"id": f"c-{i}", "stem": stem, "options": {"A": "甲", "B": b}, "answer": "A"}

    # Tabs, line breaks and U+0085 are text; a NUL or an escape code (JSON's \u0000, \u001b) is not.
    path = write_jsonl(
        tmp_path / "q.jsonl",
        [record(1, "第一行\t第二行\n第三行\x85"), record(2, "胸痛\x00两小时"), record(3, "胸痛", b="乙\x1b[31m")],
    )
    assert "\\u0000" in path.read_text(encoding="utf-8")
    stem_error = f"{path}:2: stem: expected text without control characters, got U+0000 at character 3"
    with pytest.raises(DataError) as e:
        load(path)
    assert str(e.value) == stem_error
    loaded = load(path, skip_bad=True)
    option_error = f"{path}:3: option B: expected text without control characters, got U+001B at character 2"
    assert loaded.bad == [stem_error, option_error]
    assert [q.id for q in loaded.questions] == ["c-1"] and loaded.records == 3


def test_inspect_names_the_departments_that_became_other(tmp_path):
    """Paediatrics (a rule maps it to other), endocrinology (no rule), none given, and a bad 儿科 record that is not
    counted; the mapped cardiology is not listed."""
    path = tmp_path / "mine.csv"
    path.write_text(
        "题目,A,B,C,D,答案,科室\n"
        "小儿发热最常见的原因是,病毒,细菌,真菌,寄生虫,A,儿科\n"
        "新生儿黄疸,生理性,病理性,溶血,感染,A,儿科\n"
        "糖尿病诊断标准,6.1,7.0,11.1,5.6,B,内分泌科\n"
        "心梗首选检查,心电图,胸片,CT,B超,A,心内科\n"
        "无科室的题,甲,乙,丙,丁,C,\n"
        "坏记录,甲,乙,丙,丁,Z,儿科\n",
        encoding="utf-8",
    )
    result = cli("inspect", path)
    assert "bad records: 1" in result.stdout
    assert "other: outside the seven specialties, by department name: 儿科 2, 内分泌科 1, (no department) 1." in (
        result.stdout
    )
