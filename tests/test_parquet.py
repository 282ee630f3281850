"""Parquet (issue 26, item 5's proof): as Hugging Face datasets ship CMB, CMExam and MedQA. A Parquet file with the
same questions as a CSV loads identically and gives the same run; each public layout reads as its own format."""

from __future__ import annotations

import csv
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import TINY
from test_loaders import CMEXAM_HEADER, cmb_records, cmexam_file, medqa_records, write_csv, write_json, write_jsonl

from eval.api import RunSpec, evaluate
from eval.data import BUNDLED, DataError, load_questions, select
from eval.data.__main__ import main as data_main
from eval.data.loaders import detect, load

HEADER = ["编号", "题目", "A", "B", "C", "D", "E", "答案", "解析", "科室"]


def bundled_table() -> list[list[str]]:
    """The bundled questions as a question bank's rows."""
    return [
        [q.id, q.stem, *(q.options.get(k, "") for k in "ABCDE"), q.answer, q.rationale, q.specialty]
        for q in load_questions(BUNDLED)
    ]


def write_parquet(path, records: list[dict] | None = None, table: pa.Table | None = None):
    pq.write_table(table if table is not None else pa.Table.from_pylist(records), path)
    return path


def same_questions(tmp_path):
    rows = bundled_table()
    csv_path = write_csv(tmp_path / "bank.csv", HEADER, rows)
    parquet_path = write_parquet(tmp_path / "bank.parquet", [dict(zip(HEADER, r, strict=True)) for r in rows])
    return csv_path, parquet_path


def without_source(questions):
    return [q.model_dump(exclude={"source"}) for q in questions]


def test_a_parquet_file_loads_like_the_csv_with_the_same_questions(tmp_path):
    csv_path, parquet_path = same_questions(tmp_path)
    from_csv, from_parquet = load(csv_path), load(parquet_path)
    assert from_parquet.formats == {str(parquet_path): "generic"} and detect(parquet_path) == "generic"
    assert len(from_parquet.questions) == len(load_questions(BUNDLED)) == 140
    assert without_source(from_parquet.questions) == without_source(from_csv.questions)
    assert [(q.id, q.stem, q.options, q.answer) for q in from_parquet.questions] == [
        (q.id, q.stem, q.options, q.answer) for q in load_questions(BUNDLED)
    ]
    assert from_parquet.questions[3].source == "bank.parquet[3]"  # row i, named as a JSON list's records are


def test_a_parquet_file_gives_the_same_run_as_the_csv(tmp_path, tiny_backend):
    csv_path, parquet_path = same_questions(tmp_path)
    runs = {}
    for path in (csv_path, parquet_path):
        spec = RunSpec(
            graph="single", baseline="none", data=path, limit=4, out=tmp_path / path.suffix[1:], model=TINY, n_ctx=2048
        )
        result = evaluate(spec, backend=tiny_backend)
        runs[path.suffix] = [
            (p["question_id"], p["answer"], p["correct"])
            for p in map(json.loads, result.predictions.read_text(encoding="utf-8").splitlines())
        ]
        assert result.summary.questions == 4
    assert runs[".parquet"] == runs[".csv"] and len(runs[".csv"]) == 4
    assert [qid for qid, _, _ in runs[".csv"]] == [q.id for q in select(load_questions(csv_path), limit=4)]


def hf_cmb() -> list[dict]:
    """CMB as its Parquet ships: no id, the options a struct (a missing fifth read back as null)."""
    records = [{k: v for k, v in r.items() if k != "id"} for r in cmb_records()]
    for r in records:
        r["option"] = {k: v or None for k, v in r["option"].items()}
    return records


def test_cmb_parquet_reads_as_cmb_with_the_ids_of_its_json(tmp_path):
    parquet_path = write_parquet(tmp_path / "cmb.parquet", hf_cmb())
    json_path = write_json(tmp_path / "cmb.json", [{k: v for k, v in r.items() if k != "id"} for r in cmb_records()])
    assert detect(parquet_path) == "cmb"
    from_parquet = load_questions(parquet_path, multi="include")
    assert from_parquet == load_questions(json_path, multi="include")  # CMB's source names no file: all equal
    assert [len(q.options) for q in from_parquet] == [5, 4, 4]  # the null padding is dropped as "" is


def test_medqa_parquet_with_options_as_a_map_column(tmp_path):
    records = medqa_records()
    options = pa.array([list(r["options"].items()) for r in records], type=pa.map_(pa.string(), pa.string()))
    columns = {k: pa.array([r[k] for r in records]) for k in ("question", "answer", "meta_info", "answer_idx")}
    parquet_path = write_parquet(tmp_path / "medqa.parquet", table=pa.table({**columns, "options": options}))
    jsonl_path = write_jsonl(tmp_path / "medqa.jsonl", records)
    assert detect(parquet_path) == "medqa"
    assert without_source(load_questions(parquet_path)) == without_source(load_questions(jsonl_path))


def test_cmexam_parquet_with_options_as_key_value_records(tmp_path):
    csv_path = cmexam_file(tmp_path)
    rows = [dict(zip(CMEXAM_HEADER, r, strict=True)) for r in csv.reader(csv_path.open(encoding="utf-8"))][1:]
    for r in rows:  # some hubs store "A 文本" lines as [{"key": "A", "value": "文本"}, …]
        r["Options"] = [{"key": line[0], "value": line[2:]} for line in r["Options"].splitlines()]
    parquet_path = write_parquet(tmp_path / "cmexam.parquet", rows)
    assert detect(parquet_path) == "cmexam"
    assert without_source(load_questions(parquet_path)) == without_source(load_questions(csv_path))


def test_a_field_map_and_a_directory_of_parquet_files(tmp_path):
    rows = [{"问题描述": "哪项正确", "A": "甲", "B": "乙", "标准答案": "B"}]
    write_parquet(tmp_path / "part-0.parquet", rows)
    write_parquet(tmp_path / "part-1.parquet", [rows[0] | {"问题描述": "哪项错误"}])
    qs = load_questions(tmp_path, fields={"stem": "问题描述", "answer": "标准答案"})
    assert [(q.id, q.stem, q.answer) for q in qs] == [("part-0-1", "哪项正确", "B"), ("part-1-1", "哪项错误", "B")]


def test_inspect_a_parquet_file(tmp_path, capsys):
    path = write_parquet(tmp_path / "cmb.parquet", hf_cmb())
    assert data_main(["inspect", str(path), "--multi", "include"]) == 0
    out = capsys.readouterr().out
    assert f"{path}: cmb (parquet)" in out and "records: 3  loaded: 3" in out


def test_bad_parquet_is_one_clear_line(tmp_path, capsys):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match=r"broken\.parquet: not a readable Parquet file"):
        load(path)
    assert data_main(["inspect", str(path)]) == 2
    bad_row = write_parquet(tmp_path / "cmb.parquet", [hf_cmb()[0], hf_cmb()[1] | {"answer": "X"}])
    with pytest.raises(DataError, match=r"cmb\.parquet\[1\]: answer: expected option letters"):
        load(bad_row, multi="include")
    other = write_parquet(tmp_path / "other.parquet", [{"x": 1}])
    with pytest.raises(DataError, match=r"other\.parquet: columns: expected our JSONL fields .*, got \['x'\]"):
        load(other)


def test_format_parquet_names_the_file_kind_and_the_records_are_still_detected(tmp_path):
    exported = write_parquet(tmp_path / "cmb.bin", hf_cmb())  # a download without its suffix
    with pytest.raises(DataError, match=r"cmb\.bin: cannot tell the format"):
        load(exported)
    loaded = load(exported, "parquet", multi="include")
    assert loaded.formats == {str(exported): "cmb"} and len(loaded.questions) == 3
    assert load(write_parquet(tmp_path / "cmb.parquet", hf_cmb()), "cmb", multi="include").questions == loaded.questions
