"""Real exam datasets: one function per format turns a record into an eval.core.schema.Question.

Formats: native (this project's JSONL), cmexam (CMExam CSV), cmb (CMB JSON, answers optionally in a second file),
medqa (MedQA Mainland JSONL), mmlu (CMMLU / C-Eval CSV), generic (JSONL, JSON or CSV with a field mapping).
`detect` tells them apart; `load` reads a file or a directory of them (CMMLU and C-Eval ship one CSV per subject),
in UTF-8 or GB18030/GBK (detected) or a named encoding. Department and exam-class names become specialty and level
through the rules in mapping.toml.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import json
import random
import re
import tomllib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from eval.core.schema import LETTERS, SPECIALTIES, MultiQuestion, Question
from eval.data import DataError, dataset_files

FORMATS = ("native", "cmexam", "cmb", "medqa", "mmlu", "generic")
MULTI = ("skip", "include")
LEVELS = ("attending", "senior", "none")
MAPPING = Path(str(files(__package__).joinpath("mapping.toml")))
# What a generic field mapping may name: our field -> the source's field (column or JSON key).
FIELD_KEYS = ("id", "stem", "options", *LETTERS, "answer", "specialty", "level", "rationale", "type")


def kind(q: Question) -> str:
    return "multi" if q.multi else f"single-{len(q.options)}"


@dataclass
class Loaded:
    """What `load` found: the usable questions, and everything it left out, counted so nothing is silent."""

    questions: list[Question] = field(default_factory=list)
    records: int = 0
    skipped: int = 0  # multi-answer questions left out under multi="skip"
    kinds: Counter = field(default_factory=Counter)  # over every valid record, skipped ones included
    bad: list[str] = field(default_factory=list)  # "FILE:LINE: why" per record left out (skip_bad or strict=False)
    problems: list[str] = field(default_factory=list)  # files that could not be read at all; only when strict=False
    formats: dict[str, str] = field(default_factory=dict)  # file -> format it was read as
    encodings: dict[str, str] = field(default_factory=dict)  # file (answers file included) -> encoding it was read in
    encoding: str = ""  # those encodings, comma-joined in the order tried: as `encoding`, it rereads the files alike


# --- specialty and level rules --------------------------------------------------------------------------


@dataclass(frozen=True)
class Rules:
    specialty: list[tuple[tuple[str, ...], str]]
    level: list[tuple[tuple[str, ...], str]]

    def to_specialty(self, *names: str) -> str:
        """The first name some rule matches decides (see mapping.toml); no match at all -> other."""
        for name in names:
            if (found := _match(self.specialty, name)) is not None:
                return found
        return "other"

    def to_level(self, name: str) -> str | None:
        found = _match(self.level, name)
        return None if found in (None, "none") else found


def _match(rules: list[tuple[tuple[str, ...], str]], name: Any) -> str | None:
    text = _text(name).lower()
    if text:
        for words, to in rules:
            if any(w in text for w in words):
                return to
    return None


def load_mapping(path: Path | str | None = None) -> Rules:
    """The bundled rules, with the user's file (if any) checked before them."""
    rules = _read_rules(MAPPING)
    if path is None:
        return rules
    user = _read_rules(Path(path))
    return Rules(user.specialty + rules.specialty, user.level + rules.level)


def _read_rules(path: Path) -> Rules:
    data = _toml(path)
    if unknown := set(data) - {"specialty", "level"}:
        raise DataError(f"{path}: {sorted(unknown)[0]}: expected only [[specialty]] and [[level]] rules")
    tables = {"specialty": SPECIALTIES, "level": LEVELS}
    parsed: dict[str, list] = {}
    for table, allowed in tables.items():
        parsed[table] = []
        for i, rule in enumerate(data.get(table, [])):
            words, to = (rule.get("match"), rule.get("to")) if isinstance(rule, dict) else (None, None)
            if (
                not (isinstance(words, list) and words and all(isinstance(w, str) and w.strip() for w in words))
                or to not in allowed
            ):
                raise DataError(
                    f'{path}: {table}[{i}]: expected match = ["keyword", …] and to = one of {", ".join(allowed)}'
                )
            parsed[table].append((tuple(w.strip().lower() for w in words), to))
    return Rules(parsed["specialty"], parsed["level"])


def _toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid TOML ({e})") from None


def read_fields(path: Path | str) -> dict[str, str]:
    """A generic field mapping from TOML: one `ourfield = "source field"` line each, e.g. stem = "题目"."""
    data = _toml(Path(path))
    if bad := [k for k, v in data.items() if not isinstance(v, str)]:
        raise DataError(f"{path}: {bad[0]}: expected a field name in quotes")
    return check_fields(data, str(path))


def check_fields(fields: dict[str, str], origin: str = "--map") -> dict[str, str]:
    if unknown := [k for k in fields if k not in FIELD_KEYS]:
        raise DataError(f"{origin}: {unknown[0]}: expected one of {', '.join(FIELD_KEYS)}")
    if not ({"stem", "answer"} <= set(fields) and ("options" in fields or {"A", "B"} <= set(fields))):
        raise DataError(f"{origin}: expected at least stem, answer, and options (or A, B, …) to be mapped")
    return dict(fields)


# --- reading files into (where, record) pairs -------------------------------------------------------------
# A record that cannot even be parsed comes through as a DataError, so `load` can list it and go on.


# Without an encoding given: strict UTF-8, else strict GB18030, the superset of GBK and GB2312 in which Chinese
# datasets otherwise come. Kept over a guessing library: with each of CMMLU clinical_knowledge's 237 questions alone
# in GB18030, this rule decodes every one, while charset-normalizer 3.5 finds no encoding or cp874 for 11. And UTF-8
# Chinese mixed with ASCII almost never decodes as GB18030 (three-byte characters leave a byte unpaired before the
# next ASCII one), so a corrupt UTF-8 file fails both and is named, not misread.
DETECT = ("utf-8", "gb18030")


def encodings(encoding: str | None) -> tuple[str, ...]:
    """The codecs to try, in order: DETECT for None, else the one named ("gbk") or several comma-joined."""
    if encoding is None:
        return DETECT
    names = []
    for name in (n.strip() for n in encoding.split(",")):
        try:
            "".encode(name)  # a LookupError for unknown names and for bytes-to-bytes codecs such as base64
        except LookupError:
            raise DataError(
                f"--encoding {encoding}: {name!r} is not a text encoding (e.g. utf-8, gb18030, big5)"
            ) from None
        names.append(codecs.lookup(name).name)
    return tuple(dict.fromkeys(names))


def _read(file: Path, tried: tuple[str, ...] = DETECT) -> tuple[str, str]:
    """The file's text, and the first of `tried` that decodes all of it."""
    try:
        data = file.read_bytes()
    except OSError as e:
        raise DataError(f"{file}: cannot read ({e.strerror})") from None
    errors = []
    for name in tried:
        try:
            return data.decode(name).removeprefix("\ufeff"), name  # spreadsheet exports often start with a BOM
        except UnicodeDecodeError as e:
            errors.append(f"{name}: {e.reason} at byte {e.start}")
    tried_text = " or ".join(tried)
    raise DataError(f"{file}: cannot decode as {tried_text} ({'; '.join(errors)}); name its encoding with --encoding")


def _json_error(e: ValueError | RecursionError) -> str:
    # ValueError also covers over-long integers; RecursionError, absurdly deep nesting.
    return (
        f"{e.msg}, column {e.colno}"
        if isinstance(e, json.JSONDecodeError)
        else type(e).__name__ + (f": {e}"[:120] if str(e) else "")
    )


def _jsonl_rows(file: Path, text: str) -> Iterator[tuple[str, Any]]:
    # Split on "\n" only: str.splitlines() also breaks on U+2028/U+0085, which JSON strings may hold raw.
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            where = f"{file}:{number}"
            try:
                yield where, json.loads(line)
            except (ValueError, RecursionError) as e:
                yield where, DataError(f"{where}: not valid JSON ({_json_error(e)})")


def _json_rows(file: Path, text: str) -> Iterator[tuple[str, Any]]:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as e:
        line = f":{e.lineno}" if isinstance(e, json.JSONDecodeError) else ""
        raise DataError(f"{file}{line}: not valid JSON ({_json_error(e)})") from None
    if not isinstance(data, list):
        raise DataError(f"{file}: expected a JSON list of records, got {type(data).__name__}")
    for i, record in enumerate(data):
        yield f"{file}[{i}]", record  # JSON records are named by their index in the list


def _csv_rows(file: Path, text: str) -> Iterator[tuple[str, Any]]:
    reader = csv.DictReader(io.StringIO(text))
    end = 1  # a record may span lines (CMExam options are one per line); name the line it starts on
    try:
        for row in reader:
            start, end = end + 1, reader.line_num
            yield f"{file}:{start}", {(k or "").strip(): (v or "") for k, v in row.items() if k is not None}
    except csv.Error as e:
        raise DataError(f"{file}:{reader.line_num}: not valid CSV ({e})") from None


def _csv_header(file: Path, text: str) -> list[str]:
    try:
        first = next(csv.reader(io.StringIO(text)), [])
    except csv.Error as e:
        raise DataError(f"{file}:1: not valid CSV ({e})") from None
    return [name.strip() for name in first]


# Columns a CSV format cannot do without ("a|b": either name).
_COLUMNS = {
    "cmexam": ("Question", "Options", "Answer"),
    "mmlu": ("Question|question", "A", "B", "C", "D", "Answer|answer"),
}


def _check_header(file: Path, text: str, fmt: str) -> None:
    cols = set(_csv_header(file, text))
    for need in _COLUMNS[fmt]:
        if not cols & set(need.split("|")):
            raise DataError(
                f"{file}:1: {need.replace('|', ' or ')}: expected this column in the header for {fmt}, "
                f"got {sorted(cols)}"
            )


def _rows_by_suffix(file: Path, text: str) -> Iterator[tuple[str, Any]]:
    readers = {".csv": _csv_rows, ".json": _json_rows, ".jsonl": _jsonl_rows}
    if file.suffix.lower() not in readers:
        raise DataError(f"{file}: expected a .jsonl, .json or .csv file")
    return readers[file.suffix.lower()](file, text)


def detect(file: Path | str, text: str | None = None) -> str:
    """Which format a file is in, from its extension and its first record's fields; `text`: the file, decoded."""
    file = Path(file)
    suffix = file.suffix.lower()
    if suffix not in (".csv", ".json", ".jsonl"):
        raise DataError(f"{file}: cannot tell the format: expected a .jsonl, .json or .csv file")
    if text is None:
        text, _ = _read(file)
    if suffix == ".csv":
        cols = set(_csv_header(file, text))
        if {"Question", "Options", "Answer"} <= cols:
            return "cmexam"
        if {"A", "B", "C", "D"} <= cols and cols & {"Question", "question"}:
            return "mmlu"
        raise DataError(
            f"{file}:1: header: expected CMExam columns (Question, Options, Answer, …) or CMMLU/C-Eval columns "
            f"(Question, A, B, C, D, Answer), got {sorted(cols)}; for other columns use --map"
        )
    if suffix == ".json":
        first = next((r for _, r in _json_rows(file, text)), None)
        if isinstance(first, dict) and {"question", "option"} <= set(first):
            return "cmb"
        raise DataError(
            f"{file}[0]: option: expected CMB records (id, question, option, answer, …); for other fields use --map"
        )
    first = next((r for _, r in _jsonl_rows(file, text)), None)
    # Our own schema stays the default: anything that is not clearly MedQA gets the native loader's messages.
    if isinstance(first, dict) and "stem" not in first and "question" in first and "options" in first:
        return "medqa"
    return "native"


# --- one record in common terms, then checked and built ---------------------------------------------------


@dataclass
class Raw:
    """One record before validation; `names` maps our keys to the source's field names, for messages."""

    id: Any
    stem: Any
    options: Any
    answer: Any
    names: dict[str, str]
    subjects: tuple[Any, ...] = ()  # department / subject / disease-group names, most telling first
    exam_class: Any = ""
    rationale: Any = ""
    source: str = ""
    multi: bool | None = None  # what the source says about the kind; None: it does not say


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _bad(where: str, name: str, expected: str) -> DataError:
    return DataError(f"{where}: {name}: expected {expected}")


# A line of options: "A 文本", "A. 文本", "A、文本", "A）文本", or "A文本" (but not "Aspirin": no letter after it).
_OPTION_LINE = re.compile(rf"\s*([{LETTERS[0]}-{LETTERS[-1]}])(?![A-Za-z])[\s.、．:：)）]*(.*)")


def _options(value: Any, where: str, names: dict[str, str]) -> dict[str, str]:
    name = names["options"]
    if isinstance(value, dict):
        pairs = sorted((_text(k).upper(), _text(v)) for k, v in value.items())  # keys carry the order, not the dict
    elif isinstance(value, str):
        pairs = []
        for line in value.splitlines():
            if line.strip():
                if not (m := _OPTION_LINE.fullmatch(line)):
                    raise _bad(where, name, f"one option per line like 'A 文本', got {line.strip()!r}")
                pairs.append((m[1], m[2].strip()))
    else:
        raise _bad(where, name, f"options as a mapping or one per line, got {type(value).__name__}")
    # Datasets pad four-option questions with an empty fifth; drop trailing empties, report inner ones.
    while pairs and not pairs[-1][1]:
        pairs.pop()
    letters = [k for k, _ in pairs]
    if letters != list(LETTERS[: len(letters)]) or not 2 <= len(letters) <= len(LETTERS):
        raise _bad(where, name, f"2–{len(LETTERS)} options labelled A, B, C… in order, got {letters}")
    for letter, text in pairs:
        if not text:
            raise _bad(where, names.get(letter, name), f"a text for option {letter}")
    return dict(pairs)


def _letters(value: Any, where: str, name: str, options: dict[str, str]) -> str:
    text = re.sub(r"[\s,，、;；]", "", _text(value)).upper()  # "A, B" and "A、B" both mean AB
    if not re.fullmatch(f"[{LETTERS[0]}-{LETTERS[-1]}]+", text):
        raise _bad(where, name, f"option letters such as 'C' or 'ABD', got {_text(value)!r}")
    if not set(text) <= set(options):
        raise _bad(where, name, f"letters among the options {''.join(options)}, got {text!r}")
    return "".join(sorted(set(text)))


def build(raw: Raw, where: str, rules: Rules) -> Question:
    names = raw.names
    qid, stem = _text(raw.id), _text(raw.stem)
    if not qid:
        raise _bad(where, names.get("id", "id"), "a non-empty id")
    if not stem:
        raise _bad(where, names["stem"], "a non-empty question text")
    options = _options(raw.options, where, names)
    answer = _letters(raw.answer, where, names["answer"], options)
    if raw.multi is False and len(answer) > 1:
        raise _bad(where, names["answer"], f"one letter for a single-answer question, got {answer!r}")
    cls = MultiQuestion if raw.multi or len(answer) > 1 else Question
    try:
        return cls(
            id=qid,
            stem=stem,
            options=options,
            answer=answer,
            specialty=rules.to_specialty(*raw.subjects),
            level=rules.to_level(raw.exam_class),
            source=raw.source,
            rationale=_text(raw.rationale),
        )
    except ValidationError as e:  # checked above; kept so a schema change still gives a one-line error
        raise DataError(f"{where}: {_describe(e)}") from None


# C0 control characters other than tab and line breaks, and DEL: no exam text holds them, and a NUL or an escape code
# would reach the model as is. (U+0085 and the Unicode line separators are text: they load.)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _check_text(q: Question, where: str) -> None:
    for name, text in (("stem", q.stem), *((f"option {k}", v) for k, v in q.options.items())):
        if m := _CONTROL.search(text):
            raise _bad(where, name, f"text without control characters, got U+{ord(m[0]):04X} at character {m.end()}")


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "record"
    return f"field {where!r}: {first['msg']}"


def _need_object(record: Any, where: str) -> dict:
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    return record


# --- one function per format: (record, where, n, ctx) -> Question ----------------------------------------


@dataclass
class Ctx:
    file: Path
    rules: Rules
    fields: dict[str, str] | None = None
    answers: dict[str, Any] | None = None


def _short(where: str, ctx: Ctx) -> str:
    """`where` with the file's name instead of its path: what a question's `source` keeps."""
    return ctx.file.name + where[len(str(ctx.file)) :]


def native(record: Any, where: str, n: int, ctx: Ctx) -> Question:
    """Our own schema, validated as before. A multi-answer question is marked `"multi": true` (a 多选 question may
    have a one-letter key); unmarked, an answer of several letters ("ABD") makes one."""
    record = dict(_need_object(record, where))
    answer, marked = record.get("answer"), record.pop("multi", None)
    if marked is not None and not isinstance(marked, bool):
        raise DataError(f"{where}: multi: expected true or false, got {marked!r}")
    multi = (
        marked if marked is not None else isinstance(answer, str) and len(answer) > 1 and set(answer) <= set(LETTERS)
    )
    try:
        return (MultiQuestion if multi else Question).model_validate(record)
    except ValidationError as e:
        raise DataError(f"{where}: {_describe(e)}") from None


def cmexam(row: dict, where: str, n: int, ctx: Ctx) -> Question:
    meta = [row.get(k, "") for k in ("Clinical Department", "Disease Group", "Competency", "Difficulty level")]
    return build(
        Raw(
            id=f"cmexam-{ctx.file.stem}-{n}",
            stem=row.get("Question"),
            options=row.get("Options"),
            answer=row.get("Answer"),
            names={"stem": "Question", "options": "Options", "answer": "Answer"},
            subjects=(row.get("Clinical Department"), row.get("Disease Group")),
            rationale=row.get("Explanation", ""),
            source=" | ".join(["CMExam " + _short(where, ctx), *filter(None, meta)]),
        ),
        where,
        ctx.rules,
    )


def cmb(record: Any, where: str, n: int, ctx: Ctx) -> Question:
    record = _need_object(record, where)
    if "id" not in record:
        raise _bad(where, "id", "an id (answers files are joined by it)")
    qid = _text(record["id"])
    if ctx.answers is not None:
        if qid not in ctx.answers:
            raise _bad(where, "answer", f"an answer for id {qid!r} in the answers file")
        answer = ctx.answers[qid]
    elif "answer" in record:
        answer = record["answer"]
    else:
        raise _bad(where, "answer", "an answer field, or an answers file joined by id (--answers)")
    qtype = _text(record.get("question_type"))
    meta = [_text(record.get(k)) for k in ("exam_type", "exam_class", "exam_subject", "question_type")]
    return build(
        Raw(
            id=qid,
            stem=record.get("question"),
            options=record.get("option"),
            answer=answer,
            names={"stem": "question", "options": "option", "answer": "answer"},
            subjects=(record.get("exam_subject"),),
            exam_class=record.get("exam_class"),
            source=" | ".join(["CMB", *filter(None, meta)]),
            multi=True if "多" in qtype else False if "单" in qtype else None,
        ),
        where,
        ctx.rules,
    )


def medqa(record: Any, where: str, n: int, ctx: Ctx) -> Question:
    record = _need_object(record, where)
    options, text, letter = record.get("options"), record.get("answer"), record.get("answer_idx")
    if isinstance(options, dict):
        # answer_idx is the key, answer its text; when both are there they must agree.
        if letter is None:
            letter = next((k for k, v in options.items() if _text(v) == _text(text)), None)
            if letter is None:
                raise _bad(where, "answer", f"the text of one of the options, got {_text(text)!r}")
        elif text is not None and _text(options.get(_text(letter))) != _text(text):
            raise _bad(where, "answer", f"the text of option {_text(letter)!r} (answer_idx), got {_text(text)!r}")
    return build(
        Raw(
            id=f"medqa-{ctx.file.stem}-{n}",
            stem=record.get("question"),
            options=options,
            answer=letter,
            names={"stem": "question", "options": "options", "answer": "answer_idx"},
            subjects=(record.get("meta_info"),),
            source=" | ".join(filter(None, ["MedQA " + _short(where, ctx), _text(record.get("meta_info"))])),
        ),
        where,
        ctx.rules,
    )


def mmlu(row: dict, where: str, n: int, ctx: Ctx) -> Question:
    """CMMLU (Question, A–D, Answer) and C-Eval (id, question, A–D, answer, explanation); the subject is the file
    name."""
    stem = "Question" if "Question" in row else "question"
    answer = "Answer" if "Answer" in row else "answer"
    letters = [k for k in LETTERS if k in row]  # A–D (the header is checked); a later column only if the file has it
    return build(
        Raw(
            id=f"{ctx.file.stem}-{row.get('id') or n}",
            stem=row.get(stem),
            options={k: row.get(k, "") for k in letters},
            answer=row.get(answer),
            names={"stem": stem, "options": f"A–{letters[-1]}", "answer": answer} | {k: k for k in letters},
            subjects=(ctx.file.stem.replace("_", " "),),
            rationale=row.get("explanation", ""),
            source=_short(where, ctx),
        ),
        where,
        ctx.rules,
    )


def generic(record: Any, where: str, n: int, ctx: Ctx) -> Question:
    fields = ctx.fields or {}
    record = _need_object(record, where)

    def get(key: str, required: bool = False) -> Any:
        name = fields.get(key)
        if name is None:
            return None
        if name not in record:
            if required:
                raise _bad(where, name, f"a field {name!r} (mapped from {key})")
            return None
        return record[name]

    if "options" in fields:
        options = get("options", required=True)
        if isinstance(options, str) and options.lstrip().startswith("{"):
            with contextlib.suppress(ValueError, RecursionError):  # a CSV cell may hold the options as a JSON object
                options = json.loads(options)
    else:
        options = {k: get(k, required=True) for k in LETTERS if k in fields}
    qtype = _text(get("type")).lower()
    return build(
        Raw(
            id=get("id", required=True) if "id" in fields else f"{ctx.file.stem}-{n}",
            stem=get("stem", required=True),
            options=options,
            answer=get("answer", required=True),
            names={"options": "/".join(fields.get(k, "") for k in LETTERS if k in fields)} | fields,
            subjects=(get("specialty"),),
            exam_class=get("level"),
            rationale=get("rationale"),
            source=_short(where, ctx),
            multi=True
            if ("多" in qtype or "multi" in qtype)
            else False
            if ("单" in qtype or "single" in qtype)
            else None,
        ),
        where,
        ctx.rules,
    )


FORMAT_READERS: dict[str, tuple[Callable[[Path, str], Iterator[tuple[str, Any]]], Callable[..., Question]]] = {
    "native": (_jsonl_rows, native),
    "cmexam": (_csv_rows, cmexam),
    "cmb": (_json_rows, cmb),
    "medqa": (_jsonl_rows, medqa),
    "mmlu": (_csv_rows, mmlu),
    "generic": (_rows_by_suffix, generic),
}


def read_answers(path: Path, text: str) -> dict[str, Any]:
    """A CMB answers file: records of the questions' shape with at least id and answer; JSON list or JSONL."""
    key: dict[str, Any] = {}
    for where, record in _json_rows(path, text) if path.suffix.lower() == ".json" else _jsonl_rows(path, text):
        if isinstance(record, DataError):
            raise record
        if not isinstance(record, dict) or "id" not in record or "answer" not in record:
            raise _bad(where, "id, answer", "an object with an id and an answer")
        key[_text(record["id"])] = record["answer"]
    return key


def load(
    path: Path | str,
    format: str = "auto",
    *,
    answers: Path | str | None = None,
    fields: dict[str, str] | None = None,
    mapping: Path | str | None = None,
    multi: str = "skip",
    strict: bool = True,
    skip_bad: bool = False,
    encoding: str | None = None,
) -> Loaded:
    """Read a file (or a directory of them, see dataset_files) into Questions.

    strict: the first bad record or unreadable file raises DataError; otherwise each is listed in `bad` or `problems`.
    skip_bad: bad records are left out and listed in `bad` ("FILE:LINE: why"), but a file that cannot be read and a
    dataset with no question left still raise.
    multi: "skip" leaves multi-answer questions out and counts them; "include" keeps them as MultiQuestion.
    encoding: None detects UTF-8 or GB18030 per file; else a codec name, or several comma-joined tried in order.
    """
    if format not in ("auto", *FORMATS):
        raise DataError(f"format {format!r}: expected one of auto, {', '.join(FORMATS)}")
    if multi not in MULTI:
        raise DataError(f"multi {multi!r}: expected one of {', '.join(MULTI)}")
    if format == "generic" and not fields:
        raise DataError("format generic: expected a field mapping (--map stem=题目 --map answer=答案 … or --map-file)")
    tried = encodings(encoding)
    rules = load_mapping(mapping)
    ctx_fields = check_fields(fields) if fields else None
    out, seen = Loaded(), {}

    def read(file: Path) -> str:
        text, out.encodings[str(file)] = _read(file, tried)
        return text

    key = read_answers(Path(answers), read(Path(answers))) if answers is not None else None
    for file in dataset_files(Path(path)):
        try:
            text = read(file)
            fmt = format if format != "auto" else "generic" if ctx_fields else detect(file, text)
            if key is not None and fmt != "cmb":
                raise DataError(f"{file}: --answers: only CMB data ({fmt} detected) takes a separate answers file")
            out.formats[str(file)] = fmt
            if fmt in _COLUMNS:
                _check_header(file, text, fmt)
            rows, convert = FORMAT_READERS[fmt]
            ctx = Ctx(file, rules, ctx_fields, key)
            for n, (where, record) in enumerate(rows(file, text), start=1):
                out.records += 1
                try:
                    if isinstance(record, DataError):
                        raise record
                    q = convert(record, where, n, ctx)
                    _check_text(q, where)
                    if q.id in seen:
                        raise DataError(f"{where}: id: duplicate question id {q.id!r} (first seen at {seen[q.id]})")
                except DataError as e:
                    if strict and not skip_bad:
                        raise
                    out.bad.append(str(e))
                    continue
                seen[q.id] = where
                out.kinds[kind(q)] += 1
                if isinstance(q, MultiQuestion) and multi == "skip":
                    out.skipped += 1
                else:
                    out.questions.append(q)
        except DataError as e:  # a whole file that cannot be read: listed too when not strict
            if strict:
                raise
            out.problems.append(str(e))
    out.encoding = ",".join(name for name in tried if name in out.encodings.values())
    if strict and not out.questions:
        if out.bad:  # skip_bad, and nothing was good
            also = f", {out.skipped} multi-answer skipped" if out.skipped else ""
            bad = f"{len(out.bad)} of {out.records} records are bad{also}"
            raise DataError(f"{path}: no questions left: {bad}; the first: {out.bad[0]}")
        if out.skipped:
            raise DataError(
                f"{path}: no questions left: all {out.skipped} are multi-answer and multi='skip' (use --multi include)"
            )
        raise DataError(f"{path}: the dataset is empty")
    return out


def stratified(questions: list[Question], per_cell: int, seed: int = 0) -> list[Question]:
    """Up to `per_cell` questions drawn at random from each specialty x level cell; same seed, same sample."""
    cells: dict[tuple[str, str | None], list[int]] = {}
    for i, q in enumerate(questions):
        cells.setdefault((q.specialty, q.level), []).append(i)
    order = {"attending": 0, "senior": 1, None: 2}
    rng = random.Random(seed)
    chosen: list[int] = []
    for cell in sorted(cells, key=lambda c: (SPECIALTIES.index(c[0]), order[c[1]])):
        picked = rng.sample(cells[cell], min(per_cell, len(cells[cell])))
        chosen.extend(sorted(picked))  # file order within a cell reads better than draw order
    return [questions[i] for i in chosen]


def to_jsonl(questions: list[Question]) -> str:
    """Our own JSONL schema, one question a line, readable Chinese (no \\u escapes); multi-answer questions are
    marked, so that one whose key is a single letter stays one when read back."""
    return "".join(
        json.dumps({**q.model_dump(), **({"multi": True} if q.multi else {})}, ensure_ascii=False) + "\n"
        for q in questions
    )
