"""The HTML report: structure from a real tiny run, a synthetic run and an ablation; headless Chromium when present."""

import base64
import html
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import TINY, run_main

pytest.importorskip("matplotlib", reason="the HTML report draws with matplotlib: pip install matplotlib")

from eval.core.schema import Message, Prediction, RetrievedPassage, RunConfig, TraceStep
from eval.core.store import RunStore
from eval.render.run_page import anchors

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
    return run_main("eval.html_report", *args)


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
        "--n-ctx",
        "2048",
    ]
    result = run_main("eval.agentic", *args, "--out", out)
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
    # 8-token samples: those that stopped at the budget, counted in the headline and badged in the trace.
    steps = [s for line in (tiny_run / "predictions.jsonl").read_text().splitlines() for s in json.loads(line)["trace"]]
    hits = sum(s["finish_reason"] == "length" for s in steps)
    assert len(steps) == 10 and hits and page.count(">cut at budget</span>") == hits
    assert f"<td>sample {hits}/10 ⚠</td>" in page


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


def cells(page: str, table: str) -> list[list[str]]:
    """The text of each row of the first table from `table` (its opening tag or first row) on."""
    import re

    body = page[page.index(table) :].split("</table>")[0]
    return [
        [html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    ]


def test_thinking_truncation_and_budget_hits_are_shown_apart(tmp_path):
    """A reasoning model's run: reflect's first draft stopped at its budget (named no option), the second thought
    and answered; single's first answer is truncated (its thinking never ended), its second stopped by itself. The
    headline counts truncated apart from unparsed and each node's outputs at the budget; the flips tell the cut
    draft from one that named no option; the trace folds the thinking apart from the output, with a badge."""
    data = tmp_path / "q.jsonl"
    questions = [
        {"id": f"q{i}", "stem": f"题{i}", "options": {"A": "甲", "B": "乙", "C": "丙"}, "answer": "B"} for i in range(2)
    ]
    data.write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in questions), encoding="utf-8")
    out = tmp_path / "run"
    config = RunConfig(
        graphs=["reflect", "single"], model="m.gguf", model_sha256="", data=str(data), data_sha256="",
        question_ids=["q0", "q1"],
    )  # fmt: skip
    store = RunStore(out, config)
    user = [Message(role="user", content="题")]
    unfinished = "首先分析……答案应该是C。不过再想想，"
    for i, q in enumerate(questions):
        cut = i == 0
        draft = TraceStep(
            node="draft", messages=user, output="分析：首先" if cut else "答案：B", completion_tokens=30,
            reasoning="" if cut else "想一想：乙对。", reasoning_tokens=0 if cut else 6,
            finish_reason="length" if cut else "stop",
        )  # fmt: skip
        critique = TraceStep(node="critique", messages=user, output="建议答案：B", finish_reason="stop")
        extract = TraceStep(node="extract", messages=user, output="B", scores={"A": -3.0, "B": -0.1, "C": -4.0})
        store.append(
            Prediction(
                question_id=q["id"], graph="reflect", answer="B", gold="B", correct=True, parse_status="ok",
                answer_method="next_token", draft_answer=None if cut else "B", draft_cut=cut,
                trace=[draft, critique, extract], completion_tokens=40, reasoning_tokens=draft.reasoning_tokens,
                model_calls=3,
            )
        )  # fmt: skip
        answer = TraceStep(
            node="answer", messages=user, output="" if cut else "答案：A", completion_tokens=12,
            reasoning=unfinished if cut else "想完了。", reasoning_finished=not cut, reasoning_tokens=12 if cut else 4,
            finish_reason="stop",
        )  # fmt: skip
        store.append(
            Prediction(
                question_id=q["id"], graph="single", answer=None if cut else "A", gold="B", correct=False,
                parse_status="truncated" if cut else "ok", answer_method="none" if cut else "regex", trace=[answer],
                completion_tokens=12, reasoning_tokens=answer.reasoning_tokens, model_calls=1,
            )
        )  # fmt: skip
    store.close()
    result = report(str(out))
    assert result.returncode == 0, result.stderr
    page = (out / "report.html").read_text(encoding="utf-8")
    headline = {row[0]: dict(zip(cells(page, "<table class='headline'>")[0], row, strict=True)) for row in
                cells(page, "<table class='headline'>")[1:]}  # fmt: skip
    assert [(r["unparsed"], r["truncated"], r["at the token budget"]) for r in headline.values()] == [
        ("0", "0", "draft 1/2 ⚠, critique 0/2"),
        ("0", "1", "answer 0/2"),
    ]
    flips = {row[0]: row[1] for row in cells(page, "<tr><th>first proposal → final</th>")}
    assert (flips["first proposal cut at its token budget"], flips["first proposal named no option"]) == ("1", "0")
    badges = Badges()
    badges.feed(page)
    texts = [b["text"] for b in badges.badges]
    assert texts.count("cut at budget") == 1 and texts.count("unfinished thinking") == 1
    assert texts.count("truncated") == 3  # single's q0: in the index, its question's summary and its answer's
    assert "draft cut at budget → B" in page and "answer → truncated" not in page
    # The thinking, folded apart from the output and escaped like it; never the answer.
    assert f"<summary>thinking (unfinished)</summary><pre>{unfinished}</pre></details>" in page
    assert page.count('<details class="reasoning">') == 3 and "12 generated (12 thinking)" in page
    assert "names no option" in page  # single's q0: its empty output, not the C inside its thinking


def test_anchors_are_unique_and_url_safe():
    assert anchors(["a-1", "a 1", "a/1", "题1"]) == {"a-1": "q-a-1", "a 1": "q-a_1", "a/1": "q-a_1-2", "题1": "q-_1"}


def test_an_ablation_directory_gets_its_table_and_every_cell(tmp_path):
    from test_ablate import QUESTIONS, make_ablation

    from eval.results.analysis import answer_key, key_text

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
    # make_ablation's reflect drafts: 2 name no option (1 cut at its budget), 4 changed (1 right -> wrong, 2 wrong ->
    # right); sc's all kept.
    rows = [
        ["unchanged", 14, 20],
        ["changed: right → wrong", 1, 0],
        ["changed: wrong → right", 2, 0],
        ["changed: wrong → another wrong", 1, 0],
        ["first proposal cut at its token budget", 1, 0],
        ["first proposal named no option", 1, 0],
        ["total", 20, 20],
    ]
    flips = "<tr><th>first proposal → final</th><th>reflect (draft)</th><th>sc[zh,k=3] (first sample)</th></tr>"
    flips += "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    assert flips in page
    table = cells(page, "<table class='headline'>")
    columns = {row[0]: dict(zip(table[0], row, strict=True)) for row in table[1:]}
    assert (columns["cot[zh]"]["truncated"], columns["cot[zh]"]["at the token budget"]) == ("2", "reason 2/20 ⚠")
    assert (columns["reflect"]["truncated"], columns["reflect"]["at the token budget"]) == ("0", "draft 1/60")
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
