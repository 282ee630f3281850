"""Bad input never crashes: any dataset file ends as questions or one DataError naming the file (and the record), and
the CLI turns bad data and corrupt models into one `error:` line with exit status 2, never a traceback."""

from __future__ import annotations

import csv
import importlib
import io
import json
import re
import struct
import tempfile
from pathlib import Path

import pytest
from conftest import TINY, run_process
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eval.core.schema import Prediction, Question, RunConfig
from eval.data import BUNDLED, DataError, load_questions
from eval.data.loaders import to_jsonl

# --- valid seed records, one set per supported format -----------------------------------------------------

OPTS = {"A": "急性心包炎", "B": "急性下壁心肌梗死", "C": "主动脉夹层", "D": "肺栓塞", "E": "气胸"}


def native(i: int) -> dict:
    return {
        "id": f"n-{i}",
        "stem": f"男，{60 + i}岁。突发胸痛。最可能的诊断是",
        "options": dict(OPTS),
        "answer": "B",
        "specialty": "cardiovascular",
        "level": "attending",
        "source": "test",
        "rationale": "ST段抬高",
    }


def medqa(i: int) -> dict:
    return {
        "question": f"第{i}题：最可能的诊断是",
        "options": dict(OPTS),
        "answer": OPTS["C"],
        "answer_idx": "C",
        "meta_info": "内科",
    }


def cmb(i: int) -> dict:
    return {
        "id": str(i),
        "question": f"第{i}题",
        "option": dict(OPTS),
        "answer": "D",
        "question_type": "单项选择题",
        "exam_type": "医师考试",
        "exam_class": "主治医师",
        "exam_subject": "心血管内科",
    }


def cmexam(i: int) -> dict:
    return {
        "Question": f"第{i}题",
        "Options": "\n".join(f"{k} {v}" for k, v in OPTS.items()),
        "Answer": "A",
        "Explanation": "解析",
        "Clinical Department": "内科",
        "Disease Group": "心血管",
    }


def mmlu(i: int) -> dict:
    return {"Question": f"第{i}题", "A": "甲", "B": "乙", "C": "丙", "D": "丁", "Answer": "B"}


# (suffix, record factory, how a record is named in messages)
FORMATS = {
    "native": (".jsonl", native, "line"),
    "medqa": (".jsonl", medqa, "line"),
    "cmb": (".json", cmb, "index"),
    "cmexam": (".csv", cmexam, "csv"),
    "mmlu": (".csv", mmlu, "csv"),
}

# --- mutations ----------------------------------------------------------------------------------------------

# Wrong types and bad values. Integers over 4300 digits and nesting deeper than the recursion limit have their
# own tests below (they are slow to generate here).
weird = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True),
    st.just([]),
    st.just({}),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.text(max_size=5), max_size=3),
    st.sampled_from(["", " ", "F", "a", "AB", "ABCDEF", "1", "A,B", "选A", "\x00", "\ufeff", "E\n"]),
    st.text(max_size=40),
    st.builds(
        lambda s, n: s * n, st.sampled_from(["病", "x", "A ", "\n"]), st.integers(10_000, 150_000)
    ),  # huge fields
)


@st.composite
def malformed_file(draw):
    """(suffix, bytes, format to ask for, the 0-based record whose fields were broken or None)."""
    if draw(st.integers(0, 9)) == 0:  # pure noise under any name
        return draw(st.sampled_from([".jsonl", ".json", ".csv", ".txt"])), draw(st.binary(max_size=3000)), "auto", None
    fmt = draw(st.sampled_from(sorted(FORMATS)))
    suffix, make, _ = FORMATS[fmt]
    records = [make(i) for i in range(draw(st.integers(0, 4)))]
    broken = None
    if records and draw(st.integers(0, 3)) > 0:
        broken = draw(st.integers(0, len(records) - 1))
        rec = records[broken]
        how = draw(st.sampled_from(["drop", "retype", "retype", "dup", "extra", "not-object", "options"]))
        if how == "drop":
            del rec[draw(st.sampled_from(sorted(rec)))]
        elif how == "retype":
            rec[draw(st.sampled_from(sorted(rec)))] = draw(weird)
        elif how == "dup" and len(records) > 1:
            other = records[(broken + 1) % len(records)]
            for key in ("id", "question", "Question"):  # whatever the format builds its id from
                if key in rec:
                    rec[key] = other[key]
            broken = "dup"
        elif how == "extra":
            rec[draw(st.text(min_size=1, max_size=8))] = draw(weird)
        elif how == "not-object":
            records[broken] = draw(weird)
        elif how == "options":
            key = next((k for k in ("options", "option", "Options") if k in rec), None)
            if key:
                rec[key] = draw(
                    st.one_of(weird, st.dictionaries(st.sampled_from("ABCDEFab12"), st.text(max_size=5), max_size=7))
                )
    data = serialize(suffix, records).encode("utf-8", "surrogatepass")
    corruption = draw(st.sampled_from(["none", "none", "truncate", "bytes", "bom", "crlf", "empty", "dup-file"]))
    if corruption == "truncate" and data:
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif corruption == "bytes":  # non-UTF-8 and other junk spliced in anywhere
        at = draw(st.integers(0, len(data)))
        junk = draw(
            st.one_of(
                st.sampled_from([b"\xff", b"\xfe\xff", b"\xc3", b"\xe4\xb8", b"\x00", b"\x80\x80"]),
                st.binary(min_size=1, max_size=20),
            )
        )
        data = data[:at] + junk + data[at:]
    elif corruption == "bom":
        data = b"\xef\xbb\xbf" + data
    elif corruption == "crlf":
        data = data.replace(b"\n", b"\r\n")
    elif corruption == "empty":
        data = draw(st.sampled_from([b"", b"\n", b"  \n\n", b"[]", b"{}"]))
    elif corruption == "dup-file":  # every record twice: duplicate ids
        data = serialize(suffix, records + records).encode("utf-8", "surrogatepass")
    if corruption != "none":
        broken = None  # the damage is no longer confined to one record
    ask = draw(st.sampled_from(["auto"] * 15 + ["native", "cmexam", "cmb", "medqa", "mmlu"]))
    return suffix, data, ask, broken


def serialize(suffix: str, records: list) -> str:
    if suffix == ".jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if suffix == ".json":
        return json.dumps(records, ensure_ascii=False, indent=1)
    buf = io.StringIO()
    columns = list(dict.fromkeys(k for r in records if isinstance(r, dict) for k in r)) or ["Question"]
    writer = csv.DictWriter(buf, fieldnames=columns, restval="", extrasaction="ignore")
    writer.writeheader()
    for r in records:
        writer.writerow(
            {k: "" if v is None else str(v) for k, v in r.items()} if isinstance(r, dict) else {columns[0]: str(r)}
        )
    return buf.getvalue()


def check(path: Path, ask: str, broken) -> None:
    """The property: a non-empty list of questions, or a DataError whose message names the file (and record)."""
    try:
        questions = load_questions(path, ask)
    except DataError as e:
        message = str(e)
        assert str(path) in message, message[:300]
        located = re.search(re.escape(str(path)) + r"(:(\d+)|\[(\d+)\])", message)
        if broken == "dup":
            assert "duplicate" in message or located, message[:300]
        elif isinstance(broken, int) and ask == "auto" and "no questions left" not in message:
            # Only one record was broken and the file is otherwise well-formed: the message points at it
            # (unless the breakage made it a skipped multi-answer question and nothing else was left).
            naming = FORMATS[next(f for f, (s, _, _) in FORMATS.items() if path.suffix == s)][2]
            assert located, message[:300]
            if naming == "line":
                assert f"{path}:{broken + 1}:" in message, message[:300]
            elif naming == "index":
                assert f"{path}[{broken}]" in message, message[:300]
        return
    assert questions and all(isinstance(q, Question) for q in questions)
    assert len({q.id for q in questions}) == len(questions)


def test_malformed_files_end_in_questions_or_a_data_error(capsys):
    tried = 0

    # derandomize: the same few hundred files on every run, so a failure here is never a fluke of the seed.
    @settings(
        max_examples=1500, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(malformed_file())
    def property_(case):
        nonlocal tried
        suffix, data, ask, broken = case
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"data{suffix}"
            path.write_bytes(data)
            tried += 1
            check(path, ask, broken)

    property_()
    with capsys.disabled():
        print(f"\n[malformed] {tried} generated dataset files thrown at load_questions")
    assert tried >= 1000


# Any text a question may hold survives our own writer and loader, U+0085 / U+2028 / U+2029 included (C0 control
# characters other than tab and line breaks, and DEL, are a bad record).
CONTROL = "".join(chr(c) for c in (*range(9), 11, 12, *range(14, 32), 127))
safe_text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters=CONTROL), min_size=1, max_size=30)


@settings(max_examples=100, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(
    st.lists(
        st.tuples(
            safe_text, safe_text.filter(str.strip), st.lists(safe_text.filter(str.strip), min_size=2, max_size=5)
        ),
        min_size=1,
        max_size=4,
        unique_by=lambda t: t[0],
    )
)
def test_valid_questions_round_trip(items):
    questions = [
        Question(id=qid, stem=stem, options=dict(zip("ABCDE", opts, strict=False)), answer="B")
        for qid, stem, opts in items
    ]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "q.jsonl"
        path.write_text(to_jsonl(questions), encoding="utf-8")
        assert load_questions(path) == questions


# --- inputs that once escaped as a non-DataError exception or rejected valid data -----------------------------


def _load(tmp_path: Path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path, lambda: load_questions(path)


@pytest.mark.parametrize("name,text", [("deep.jsonl", "[" * 100_000 + "\n"), ("deep.json", "[" * 100_000)])
def test_deeply_nested_json_is_a_data_error(tmp_path, name, text):
    path, load = _load(tmp_path, name, text)
    with pytest.raises(DataError, match=re.escape(str(path))):
        load()


@pytest.mark.parametrize(
    "name,text", [("big.jsonl", '{"id": ' + "7" * 5000 + "}\n"), ("big.json", "[" + "7" * 5000 + "]")]
)
def test_huge_integer_is_a_data_error(tmp_path, name, text):
    path, load = _load(tmp_path, name, text)
    with pytest.raises(DataError, match=re.escape(str(path))):
        load()


def test_huge_csv_header_is_a_data_error(tmp_path):
    path, load = _load(tmp_path, "wide.csv", "Question," + "x" * 200_000 + "\nq,a\n")
    with pytest.raises(DataError, match=re.escape(str(path))):
        load()


@pytest.mark.parametrize("char", ["\x85", "\u2028", "\u2029"])
def test_unicode_line_separators_inside_a_string_load(tmp_path, char):
    q = Question(id="u-1", stem=f"第一行{char}第二行", options={"A": "甲", "B": "乙"}, answer="A")
    path = tmp_path / "sep.jsonl"
    path.write_text(to_jsonl([q]), encoding="utf-8")
    assert load_questions(path) == [q]


# --- the CLI: one line, exit 2, no traceback ---------------------------------------------------------------------


def assert_one_line_error(result, *expected: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr[-2000:]
    for line in result.stderr.splitlines():  # anything else on stderr is a structured log line
        assert line in errors or json.loads(line)["level"] in ("info", "warning"), line
    for text in expected:
        assert text in errors[0], errors[0]
    assert result.stdout == ""


def _bad_data(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


DATA_CASES = [
    pytest.param(
        "missing.jsonl",
        b'{"id": "1", "options": {"A": "x", "B": "y"}, "answer": "A"}\n',
        ":1: field 'stem'",
        id="missing-field",
    ),
    pytest.param("torn.jsonl", json.dumps(native(1)).encode()[:50] + b"\n", ":1: not valid JSON", id="torn-record"),
    pytest.param(
        "junk.jsonl",
        b"\xff" + json.dumps(native(1)).encode() + b"\n",
        "cannot decode as utf-8 or gb18030",
        id="undecodable",
    ),
    pytest.param("letter.jsonl", json.dumps(native(1) | {"answer": "F"}).encode() + b"\n", ":1:", id="bad-letter"),
    pytest.param("dup.jsonl", (json.dumps(native(1)) + "\n").encode() * 2, ":2: id: duplicate", id="duplicate-id"),
    pytest.param("header.csv", b"foo,bar\n1,2\n", ":1: header", id="unknown-csv"),
    pytest.param("empty.jsonl", b"", "empty", id="empty-dataset"),
    pytest.param("deep.jsonl", b"[" * 100_000 + b"\n", ":1:", id="deep-nesting"),
]


@pytest.mark.parametrize("name,data,expected", DATA_CASES)
def test_cli_bad_data_is_one_line(cli, tmp_path, name, data, expected):
    path = _bad_data(tmp_path, name, data)
    assert_one_line_error(
        cli("--data", str(path), "--model", TINY, "--out", str(tmp_path / "run")), str(path), expected
    )


def _gguf_garbage(tmp_path: Path, real: Path) -> Path:
    path = tmp_path / "garbage.gguf"
    path.write_bytes(b"GGUF" + bytes(range(256)) * 400)
    return path


def _gguf_header_lies(tmp_path: Path, real: Path) -> Path:
    path = tmp_path / "lies.gguf"  # version 3 with absurd tensor and metadata counts
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 2**62, 2**62) + b"\0" * 64)
    return path


def _gguf_truncated(tmp_path: Path, real: Path) -> Path:
    path = tmp_path / "truncated.gguf"
    with open(real, "rb") as f:
        path.write_bytes(f.read(real.stat().st_size // 3))
    return path


@pytest.mark.parametrize(
    "make", [_gguf_garbage, _gguf_header_lies, _gguf_truncated], ids=["magic-then-garbage", "header-lies", "truncated"]
)
def test_cli_corrupt_model_is_one_line(tmp_path, tiny_model, make):
    model = make(tmp_path, tiny_model)
    # Its own process: llama.cpp reads the corrupt file in native code, where a crash would end the whole session.
    result = run_process(
        "eval.agentic", "--model", model, "--limit", "1", "--n-ctx", "2048", "--out", tmp_path / "run", timeout=120
    )
    assert_one_line_error(result, str(model))


# --- every program over a table of bad inputs: one line, exit status 2, never a traceback ----------------------------

PROGRAMS = {
    "agentic": "eval.agentic",
    "ablate": "eval.ablate",
    "leaderboard": "eval.leaderboard",
    "html_report": "eval.html_report",
    "position_bias": "eval.position_bias",
    "data": "eval.data.__main__",
    "power": "eval.power",
    "bench": "eval.bench",
    "bench_serve": "eval.bench_serve",
}
GRID = 'models = ["smollm2-135m"]\ngraphs = ["single"]\nlimit = 2\n'
BOARD = 'models = ["smollm2-135m"]\nlimit = 2\n'
MANIFEST = RunConfig(
    graphs=["single"], model="m.gguf", model_sha256="x", data="questions.jsonl", data_sha256="y", question_ids=["q1"]
).model_dump_json()
PREDICTION = Prediction(
    question_id="q1", graph="single", answer="A", gold="A", correct=True, parse_status="ok", answer_method="next_token"
).model_dump_json()
GOOD_RUN = {"run/manifest.json": MANIFEST, "run/predictions.jsonl": f"{PREDICTION}\n"}
# A complete line that is not a prediction (once a pydantic traceback in every reader).
BAD_RUN = {"run/manifest.json": MANIFEST, "run/predictions.jsonl": f'{PREDICTION}\n{{"answer": "B"}}\n'}
# {t} is the test's directory; "file" there is a regular file, so "{t}/file/out" cannot be made, by root either.
BAD_INPUTS = [
    ("agentic", ["--limit", "-1"], {}, "--limit"),
    ("agentic", ["--graph", "nosuch"], {}, "unknown graph 'nosuch'"),
    ("agentic", ["--data", "{t}/missing.jsonl"], {}, "missing.jsonl: no such file"),
    ("agentic", ["--model", "{t}/missing.gguf"], {}, "missing.gguf"),
    ("agentic", ["--model", TINY, "--out", "{t}/file/out"], {}, "file/out: cannot write (Not a directory)"),
    ("agentic", ["--model", TINY, "--out", "{t}/file"], {}, "file: cannot write (File exists)"),
    ("agentic", ["--model", TINY, "--out", "{t}/run"], {"run/manifest.json": "{not json"}, "unreadable manifest"),
    ("agentic", ["--map", "stem"], {}, "--map 'stem'"),
    ("agentic", ["--backend", "openai"], {}, "needs --base-url"),
    ("agentic", ["--samples", "many"], {}, "--samples"),
    ("agentic", ["--graph", "single", "--critic-model", TINY], {}, "no critic"),
    ("agentic", ["--prompt-variant", "xx"], {}, "--prompt-variant"),
    ("agentic", ["--answers", "{t}/missing.json"], {}, "missing.json"),
    ("agentic", ["--mapping", "{t}/m.toml"], {"m.toml": "[[specialty"}, "not valid TOML"),
    ("agentic", ["--concurrency", "0"], {}, "--concurrency"),
    ("agentic", ["--encoding", "nosuch"], {}, "not a text encoding"),
    ("agentic", ["--graph", "medprompt", "--pool", "{t}/missing.jsonl"], {}, "--pool"),
    ("ablate", ["{t}/missing.toml"], {}, "missing.toml"),
    ("ablate", ["{t}/g.toml"], {"g.toml": "graphs = ["}, "not valid TOML"),
    ("ablate", ["{t}/g.toml"], {"g.toml": GRID + 'options = {rounds = "many"}\n'}, "options.rounds"),
    ("ablate", ["{t}/g.toml"], {"g.toml": GRID + "options = {rounds = 0}\n"}, "options.rounds"),
    ("ablate", ["{t}/g.toml"], {"g.toml": GRID.replace('"single"', '"nosuch"')}, "unknown graph"),
    ("ablate", ["{t}/g.toml"], {"g.toml": GRID + "colour = 1\n"}, "colour"),
    ("ablate", ["{t}/g.toml", "--out", "{t}/file/out"], {"g.toml": GRID}, "file/out: Not a directory"),
    ("ablate", ["{t}/g.toml"], {"g.toml": GRID + 'extra_args = ["--n-ctx", "zero"]\n'}, "--n-ctx"),
    ("ablate", ["{t}/g.toml"], {"g.toml": GRID + 'data = "missing.jsonl"\n'}, "data = 'missing.jsonl'"),
    ("leaderboard", ["{t}/missing.toml"], {}, "missing.toml"),
    ("leaderboard", ["{t}/b.toml"], {"b.toml": BOARD + 'options = {samples = "many"}\n'}, "options.samples"),
    ("leaderboard", ["{t}/b.toml"], {"b.toml": BOARD + 'options = {pool_overlap = "yes"}\n'}, "options.pool_overlap"),
    ("leaderboard", ["{t}/b.toml"], {"b.toml": "models = []\n"}, "models"),
    ("leaderboard", ["{t}/b.toml", "--out", "{t}/file/out"], {"b.toml": BOARD}, "file/out: Not a directory"),
    ("leaderboard", ["{t}/b.toml", "--no-run", "--out", "{t}/file/out"], {"b.toml": BOARD}, "Not a directory"),
    ("leaderboard", ["{t}/b.toml"], {"b.toml": BOARD + 'strategies = ["nosuch"]\n'}, "unknown graph"),
    ("leaderboard", ["{t}/b.toml"], {"b.toml": BOARD + 'data = "missing.jsonl"\n'}, "data = 'missing.jsonl'"),
    ("leaderboard", ["{t}/b.toml"], {"b.toml": BOARD + 'answers = "missing.json"\n'}, "answers = 'missing.json'"),
    ("leaderboard", ["{t}/b.toml"], {"b.toml": BOARD.replace("2", "-1")}, "limit"),
    ("html_report", ["{t}/missing"], {}, "no manifest.json"),
    ("html_report", ["{t}/run"], {"run/manifest.json": "{not json"}, "unreadable manifest"),
    ("html_report", ["{t}/run"], BAD_RUN, "predictions.jsonl:2: not a valid record"),
    ("html_report", ["{t}/a"], {"a/ablation.json": "{"}, "ablation.json is not an ablation"),
    ("html_report", ["{t}/b"], {"b/leaderboard.json": "{}"}, "leaderboard.json is not a leaderboard"),
    ("html_report", ["{t}/run", "--out", "{t}/file/out.html"], GOOD_RUN, "file/out.html: Not a directory"),
    ("position_bias", ["{t}/missing", "{t}/missing"], {}, "no manifest.json"),
    ("position_bias", ["{t}/run", "{t}/run"], {"run/manifest.json": "{not json"}, "unreadable manifest"),
    ("data", ["inspect", "{t}/missing.jsonl"], {}, "missing.jsonl"),
    ("data", ["inspect", "{t}/q.jsonl", "--encoding", "nosuch"], {"q.jsonl": ""}, "not a text encoding"),
    ("data", ["inspect", "{t}/q.jsonl", "--map-file", "{t}/missing.toml"], {"q.jsonl": ""}, "missing.toml"),
    ("data", ["inspect", "{t}/q.jsonl", "--map", "nonsense"], {"q.jsonl": ""}, "--map nonsense"),
    ("data", ["inspect", "{t}/q.jsonl", "--format", "nosuch"], {"q.jsonl": ""}, "--format"),
    ("data", ["sample", "{t}/q.jsonl", "--per-cell", "0", "--out", "{t}/s.jsonl"], {"q.jsonl": ""}, "--per-cell"),
    ("data", ["sample", str(BUNDLED), "--per-cell", "1", "--out", "{t}/file/out"], {}, "cannot write"),
    ("power", ["--difference", "2", "--discordance", "0.3"], {}, "--difference"),
    ("power", ["--n", "-5", "--discordance", "0.3"], {}, "--n"),
    ("power", ["--difference", "0.05"], {}, "--discordance"),
    ("power", ["--accuracy", "0.7"], {}, "--half-width"),
    ("power", ["--difference", "x"], {}, "--difference"),
    ("bench", ["--model", "{t}/missing.gguf"], {}, "missing.gguf"),
    ("bench", ["--questions", "0"], {}, "--questions"),
    ("bench", ["--n-threads", "0"], {}, "--n-threads"),
    ("bench", ["--draft-tokens", "0"], {}, "--draft-tokens"),
    ("bench", ["--baseline", "{t}/missing.json"], {}, "missing.json"),
    ("bench", ["--baseline", "{t}/b.json"], {"b.json": "{"}, "not JSON"),
    ("bench", ["--json", "{t}/file/x.json"], {}, "--json"),
    ("bench_serve", ["--concurrency", "a,b"], {}, "--concurrency"),
    ("bench_serve", ["--model", "{t}/missing.gguf"], {}, "missing.gguf"),
    ("bench_serve", ["--graph", "single,nosuch"], {}, "unknown graph 'nosuch'"),
    ("bench_serve", ["--json", "{t}/file/x.json"], {}, "--json"),
    ("bench_serve", ["--n-ctx", "0"], {}, "--n-ctx"),
    ("bench_serve", ["--questions", "0"], {}, "--questions"),
    ("bench_serve", ["--engine", "nosuch"], {}, "--engine"),
]


def _no_model(*args, **kwargs):
    raise AssertionError("a model was loaded: a bad-input row must fail before that")


@pytest.mark.parametrize(
    "program,argv,files,expected", BAD_INPUTS, ids=[f"{p}-{i}" for i, (p, *_) in enumerate(BAD_INPUTS)]
)
def test_every_program_refuses_bad_input_in_one_line(
    tmp_path, monkeypatch, capsys, own_logging, program, argv, files, expected
):
    """In-process (main(argv)), so the table runs in seconds: an exception escaping main fails the row."""
    from agents.backends.llamacpp import LlamaCppBackend

    monkeypatch.setattr(LlamaCppBackend, "__init__", _no_model)
    monkeypatch.chdir(tmp_path)  # relative paths in the specs; default output directories
    (tmp_path / "file").write_text("a file, not a directory")
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    try:
        status = importlib.import_module(PROGRAMS[program]).main([a.format(t=tmp_path) for a in argv])
    except SystemExit as e:  # argparse's own errors: its usage, then one error line
        status = e.code
    out, err = capsys.readouterr()
    assert status == 2, err[-2000:]
    assert "Traceback" not in err and out == "", err[-2000:]
    errors = [line for line in err.splitlines() if "error: " in line]
    assert len(errors) == 1 and expected in errors[0], err[-2000:]
    lines = err.splitlines()
    if not errors[0].startswith("error: "):  # argparse's: its usage block, then "PROG: error: ..."
        assert lines[0].startswith("usage: "), err[-2000:]
        lines = lines[lines.index(errors[0]) :]
    for line in lines:  # anything but the error: a grid's or a leaderboard's progress, or a structured log line
        assert line in errors or re.match(r"\[\d+/\d+\] ", line) or json.loads(line)["level"] in ("info", "warning")
