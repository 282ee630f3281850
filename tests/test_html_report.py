"""The HTML report: structure from a real tiny run, a synthetic run and an ablation; headless Chromium when present."""

import base64
import html
import json
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import ROOT, TINY

pytest.importorskip("matplotlib", reason="the HTML report draws with matplotlib: pip install matplotlib")

from eval.html_report import anchors
from eval.schema import Message, Prediction, RetrievedPassage, RunConfig, TraceStep
from eval.store import RunStore

PNG = b"\x89PNG\r\n\x1a\n"


class Structure(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: dict[str, int] = {}
        self.ids: list[str] = []
        self.hrefs: list[str] = []
        self.images: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags[tag] = self.tags.get(tag, 0) + 1
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag == "a" and "href" in attrs:
            self.hrefs.append(attrs["href"])
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag in ("script", "link", "iframe") and (attrs.get("src") or attrs.get("href")):
            self.external.append(str(attrs))


def parse(page: str) -> Structure:
    s = Structure()
    s.feed(page)
    return s


def report(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "eval.html_report", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def assert_self_contained(s: Structure) -> None:
    assert not s.external, f"the page must not load anything: {s.external}"
    assert len(s.images) >= 4
    for src in s.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG)


def assert_question_anchors(s: Structure, question_ids: list[str]) -> None:
    wanted = [f"q-{qid}" for qid in question_ids]
    assert [i for i in s.ids if i.startswith("q-")] == wanted, "one anchor per question, in run order"
    assert all(f"#{a}" in s.hrefs for a in wanted), "the index links every question"
    assert len(set(s.ids)) == len(s.ids), "ids are unique"


# -- a real run ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """sc (k=5 by default) on 2 questions with the real tiny model and tiny budgets."""
    out = tmp_path_factory.mktemp("html") / "run"
    args = [
        "--graph",
        "sc",
        "--baseline",
        "none",
        "--model",
        TINY,
        "--limit",
        "2",
        "--draft-tokens",
        "8",
        "--n-threads",
        "1",
        "--n-ctx",
        "2048",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "eval.agentic", *args, "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return out


def test_report_for_a_real_run(tiny_run):
    result = report(str(tiny_run))
    assert result.returncode == 0, result.stderr
    page = (tiny_run / "report.html").read_text(encoding="utf-8")
    s = parse(page)
    assert page.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in page.replace("'", '"')
    assert s.tags["table"] >= 2 and s.tags.get("details", 0) >= 2 * 2  # each question, and each graph's answer in it
    assert_self_contained(s)
    manifest = json.loads((tiny_run / "manifest.json").read_text())
    assert_question_anchors(s, manifest["question_ids"])
    # Every node's messages and output: all five samples of both questions, their votes, the prompt once.
    for i in range(1, 6):
        assert page.count(f"<b>{i}. sample</b>") == 2
    assert page.count("votes ") == 2 and page.count("the same prompt as the step above") == 2 * 4
    assert "samples 5, sample_temperature 0.7" in page and "first sample" in page
    assert "engine <code>llama-cpp-python 0.3.36, 1 slot</code>" in page and "shared the engine" not in page
    assert "Answer key: " in page and "a uniform guess scores 20.0%" in page
    assert "[the question and its options, as shown above]" in page  # shown once per question, not in every prompt


# -- a synthetic run: two graphs, retrieval, scores, and text that must be escaped ------------------


def synthetic_run(root: Path) -> Path:
    data = root / "q.jsonl"
    questions = [
        {
            "id": "x 1",
            "stem": "<script>alert(1)</script> 胸痛",
            "options": {"A": "甲", "B": "乙", "C": "丙"},
            "answer": "B",
            "specialty": "cardiovascular",
            "level": "senior",
            "rationale": "因为<b>乙</b>",
        },
        {
            "id": "x/1",
            "stem": "腹痛",
            "options": {"A": "甲", "B": "乙"},
            "answer": "A",
            "specialty": "gastroenterology",
            "level": "attending",
        },
    ]
    data.write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in questions), encoding="utf-8")
    out = root / "run"
    config = RunConfig(
        graphs=["reflect+rag", "single"],
        model="m.gguf",
        model_sha256="",
        data=str(data),
        data_sha256="",
        question_ids=["x 1", "x/1"],
    )
    store = RunStore(out, config)
    for q in questions:
        system = Message(role="system", content="你是医生。")
        user = Message(role="user", content=f"题目：{q['stem']}\n请作答。")
        retrieve = TraceStep(
            node="retrieve",
            messages=[Message(role="user", content=q["stem"])],
            output="1 of 1 passages",
            passages=[RetrievedPassage(id="p", source="guide.md", title="指南", score=0.5, text="<i>要点</i>")],
        )
        draft = TraceStep(
            node="draft",
            messages=[system, user],
            output="分析：……答案：A",
            prompt_tokens=50,
            completion_tokens=9,
            seconds=1,
        )
        critique_msgs = [
            system,
            user,
            Message(role="assistant", content=draft.output),
            Message(role="user", content="请审核。"),
        ]
        critique = TraceStep(
            node="critique",
            messages=critique_msgs,
            output="建议答案：B",
            prompt_tokens=70,
            completion_tokens=5,
            seconds=1,
        )
        extract = TraceStep(
            node="extract",
            messages=[
                *critique_msgs,
                Message(role="assistant", content="建议答案：B"),
                Message(role="user", content="答案？"),
            ],
            output="B",
            prompt_tokens=80,
            seconds=0.1,
            scores={"A": -2.0, "B": -0.2},
        )
        store.append(
            Prediction(
                question_id=q["id"],
                graph="reflect+rag",
                answer="B",
                gold=q["answer"],
                correct=q["answer"] == "B",
                parse_status="ok",
                answer_method="next_token",
                draft_answer="A",
                trace=[retrieve, draft, critique, extract],
                model_calls=4,
                seconds=2,
            )
        )
        single = TraceStep(
            node="answer",
            messages=[system, user],
            output="A",
            prompt_tokens=50,
            seconds=0.1,
            scores={"A": -0.1, "B": -3.0},
        )
        store.append(
            Prediction(
                question_id=q["id"],
                graph="single",
                answer="A",
                gold=q["answer"],
                correct=q["answer"] == "A",
                parse_status="ok",
                answer_method="next_token",
                trace=[single],
                model_calls=1,
                seconds=0.1,
            )
        )
    store.close()
    return out


def test_report_for_a_synthetic_run_escapes_text_and_shows_why_the_chain_changed(tmp_path):
    out = synthetic_run(tmp_path)
    target = tmp_path / "elsewhere.html"
    result = report(str(out), "--out", str(target))
    assert result.returncode == 0, result.stderr
    page = target.read_text(encoding="utf-8")
    s = parse(page)
    assert_self_contained(s)
    assert_question_anchors(s, ["x_1", "x_1-2"])
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>乙</b>" not in page and "&lt;i&gt;要点&lt;/i&gt;" in page  # rationale and retrieved passages are text
    assert "Paired against the baseline" in page and "reflect+rag vs single" in page
    assert "draft A → B" in page  # the chain changed its first answer, shown in the summary line
    assert "the reply above" in page and "continues the conversation above" in page
    assert "B: 86%" in page  # next-token scores, renormalised over the options
    assert (
        "[the question and its options, as shown above]" not in page
    )  # stems differ from render_question here: shown whole


class Badges(HTMLParser):
    """Every badge: its classes, its title attribute (decoded) and its text."""

    def __init__(self):
        super().__init__()
        self.badges: list[dict] = []
        self.inside = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "span" and "badge" in (attrs.get("class") or "").split():
            self.badges.append({"class": attrs["class"], "title": attrs.get("title"), "text": ""})
            self.inside = True

    def handle_endtag(self, tag):
        self.inside = self.inside and tag != "span"

    def handle_data(self, data):
        if self.inside:
            self.badges[-1]["text"] += data


def test_report_escapes_attributes_and_shows_errors_unparsed_and_missing_answers(tmp_path):
    """An error's quotes stay inside the badge's title; a model name and a variant are text; a question without a
    prediction is 'not run', an error without steps has 'no trace'; one graph draws no flips."""
    data = tmp_path / "q.jsonl"
    options = {"A": "甲", "B": "乙"}
    questions = [
        {"id": f"q{i}", "stem": f"题{i}", "options": options, "answer": "A", "specialty": "other"} for i in range(3)
    ]
    data.write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in questions), encoding="utf-8")
    out = tmp_path / "run"
    config = RunConfig(
        graphs=["single"],
        model="<m>&.gguf",
        model_sha256="",
        data=str(data),
        data_sha256="",
        question_ids=["q0", "q1", "q2"],
        prompt_variant="v<1>",
    )
    store = RunStore(out, config)
    error = "boom \"x\" 'y' <z> onmouseover=alert(1)"
    store.append(
        Prediction(
            question_id="q0",
            graph="single",
            answer=None,
            gold="A",
            correct=False,
            parse_status="error",
            answer_method="none",
            error=error,
        )
    )
    answer = TraceStep(node="answer", messages=[Message(role="user", content="题1")], output="嗯")
    store.append(
        Prediction(
            question_id="q1",
            graph="single",
            answer=None,
            gold="A",
            correct=False,
            parse_status="unparsed",
            answer_method="regex",
            trace=[answer],
            model_calls=1,
        )
    )
    store.close()
    result = report(str(out))
    assert result.returncode == 0, result.stderr
    page = (out / "report.html").read_text(encoding="utf-8")
    s = parse(page)
    assert not s.external and len(s.images) == 3 and "#flips" not in s.hrefs and "flips" not in s.ids
    assert_question_anchors(s, ["q0", "q1", "q2"])
    badges = Badges()
    badges.feed(page)
    errors = [b for b in badges.badges if b["class"] == "badge err"]
    assert errors and all(b["title"] == error and b["text"] == "error" for b in errors)
    assert "<z>" not in page and "<m>" not in page and "<1>" not in page
    assert "<code>&lt;m&gt;&amp;.gguf</code>" in page and "variant <code>v&lt;1&gt;</code>" in page
    assert any(b["class"] == "badge bad" and b["text"] == "unparsed" for b in badges.badges)
    assert "single: 1 of 3 questions finished" in page  # the error and the missing prediction are not finished
    assert page.count("not run</summary>") == 1 and page.count("no trace</p>") == 1
    assert "names no option" in page


def test_anchors_are_unique_and_url_safe():
    assert anchors(["a-1", "a 1", "a/1", "题1"]) == {"a-1": "q-a-1", "a 1": "q-a_1", "a/1": "q-a_1-2", "题1": "q-_1"}


def test_an_ablation_directory_gets_its_table_and_every_cell(tmp_path):
    from test_ablate import QUESTIONS, make_ablation

    from eval.analysis import answer_key, key_text

    out = make_ablation(tmp_path)
    result = report(str(out))
    assert result.returncode == 0, result.stderr
    page = (out / "report.html").read_text(encoding="utf-8")
    s = parse(page)
    assert_self_contained(s)
    ids = json.loads((out / "ablation.json").read_text())["question_ids"]
    assert_question_anchors(s, ids)
    assert "sc at equal calls/q" in page and "sc[zh,k=3]: 50.0%" in page and "add sc[zh,k=1]" in page
    # reflect's 21 generated tokens per question against sc's 10 per sample: its token-matched control is k=2.
    assert "sc at equal generated tokens/q" in page and "add sc[zh,k=2]" in page
    # make_ablation's reflect drafts: 2 name no option, 4 changed (1 right -> wrong, 2 wrong -> right); sc's all kept.
    rows = [
        ["unchanged", 14, 20],
        ["changed: right → wrong", 1, 0],
        ["changed: wrong → right", 2, 0],
        ["changed: wrong → another wrong", 1, 0],
        ["first proposal named no option", 2, 0],
        ["total", 20, 20],
    ]
    flips = "<tr><th>first proposal → final</th><th>reflect (draft)</th><th>sc[zh,k=3] (first sample)</th></tr>"
    flips += "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    assert flips in page
    assert (
        page.count("–, too few answers; see python -m eval.position_bias") == 4
    )  # 20 questions: 4 expected per letter
    assert page.count("<details class='pred'>") == 4 * len(ids)
    assert html.escape(key_text(answer_key(QUESTIONS))) in page


def test_not_a_run_directory_is_one_clear_line(tmp_path):
    result = report(str(tmp_path))
    assert result.returncode == 2 and "not a run directory" in result.stderr and "Traceback" not in result.stderr


# -- in a browser --------------------------------------------------------------------------


def chromium() -> str | None:
    return next(
        (
            p
            for p in (shutil.which("chromium"), "/usr/bin/chromium", shutil.which("chromium-browser"))
            if p and Path(p).exists()
        ),
        None,
    )


def test_headless_chromium_renders_the_page_and_opens_a_linked_question(tiny_run, tmp_path):
    browser = chromium()
    if browser is None:
        pytest.skip("Chromium is not installed (/usr/bin/chromium): the browser check of the HTML report is skipped")
    page = tiny_run / "report.html"
    if not page.exists():
        assert report(str(tiny_run)).returncode == 0
    qid = json.loads((tiny_run / "manifest.json").read_text())["question_ids"][1]
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", f"{page.as_uri()}#q-{qid}"], capture_output=True, text=True, timeout=120
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    # The page's script opened the linked question's section; the others stay closed.
    assert f'<section class="question" id="q-{qid}"><details open="">' in dom.stdout
    assert dom.stdout.count('<details open="">') == 1
    shot = tmp_path / "page.png"
    subprocess.run(
        [browser, *flags, "--window-size=1280,2000", f"--screenshot={shot}", page.as_uri()],
        capture_output=True,
        timeout=120,
    )
    assert shot.exists() and shot.read_bytes().startswith(PNG) and shot.stat().st_size > 20_000
