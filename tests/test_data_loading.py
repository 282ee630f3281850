import json

import pytest

from eval.data import DataError, load_questions, select

GOOD = {
    "id": "x-1",
    "stem": "题干",
    "options": {"A": "a", "B": "b", "C": "c", "D": "d", "E": "e"},
    "answer": "C",
    "specialty": "neurology",
    "level": "senior",
}


def write(tmp_path, *lines: str):
    path = tmp_path / "qs.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_loads_a_user_file(tmp_path):
    path = write(tmp_path, json.dumps(GOOD), "", json.dumps({**GOOD, "id": "x-2"}))
    assert [q.id for q in load_questions(path)] == ["x-1", "x-2"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"qs.jsonl:2: not valid JSON"),
        (json.dumps([1, 2]), r"qs.jsonl:2: expected a JSON object"),
        (json.dumps({**GOOD, "id": "x-2", "answer": "F"}), r"qs.jsonl:2: .*answer 'F' is not one of the options"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "stem"} | {"id": "x-2"}), r"qs.jsonl:2: field 'stem'"),
        (json.dumps({**GOOD, "id": "x-2", "level": "intern"}), r"qs.jsonl:2: field 'level'"),
        (json.dumps({**GOOD, "id": "x-2", "options": {"A": "a", "C": "c"}}), r"qs.jsonl:2: field 'options'"),
        (json.dumps({**GOOD, "id": "x-2", "specialty": "dermatology"}), r"qs.jsonl:2: field 'specialty'"),
        (json.dumps(GOOD), r"duplicate question id 'x-1'"),
    ],
)
def test_bad_records_name_file_line_and_field(tmp_path, line, message):
    path = write(tmp_path, json.dumps(GOOD), line)
    with pytest.raises(DataError, match=message):
        load_questions(path)


def test_empty_and_missing_datasets_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="empty"):
        load_questions(write(tmp_path, ""))
    with pytest.raises(DataError, match="no such file"):
        load_questions(tmp_path / "missing.jsonl")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(DataError, match=r"no \.jsonl, \.json, \.csv(, [.\w]+)* or \.\w+ files in this directory"):
        load_questions(tmp_path / "empty_dir")


def test_gbk_file_loads_and_undecodable_file_is_a_clear_error(tmp_path):
    path = tmp_path / "gbk.jsonl"
    path.write_bytes(json.dumps(GOOD | {"stem": "下列哪项是心房颤动的心电图表现"}, ensure_ascii=False).encode("gbk"))
    assert [q.stem for q in load_questions(path)] == ["下列哪项是心房颤动的心电图表现"]
    path.write_bytes(b"\xff" + json.dumps(GOOD).encode())
    with pytest.raises(DataError, match=r"gbk\.jsonl: cannot decode as utf-8 or gb18030 .*--encoding"):
        load_questions(path)


def test_a_directory_of_jsonl_still_loads(tmp_path):
    (tmp_path / "README.md").write_text("not data", encoding="utf-8")
    write(tmp_path, json.dumps(GOOD)).rename(tmp_path / "b.jsonl")
    write(tmp_path, json.dumps(GOOD | {"id": "x-0"})).rename(tmp_path / "a.jsonl")
    assert [q.id for q in load_questions(tmp_path)] == ["x-0", "x-1"]


def test_limit_is_stratified_over_cells():
    from eval.data import BUNDLED

    chosen = select(load_questions(BUNDLED), limit=14)
    assert len({(q.specialty, q.level) for q in chosen}) == 14


def test_filters_then_limit():
    from eval.data import BUNDLED

    chosen = select(load_questions(BUNDLED), specialties=["neurology"], levels=["senior"], limit=3)
    assert [q.id for q in chosen] == ["neuro-sen-01", "neuro-sen-02", "neuro-sen-03"]
