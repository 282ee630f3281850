"""The HTML pages say what the Markdown reports say, in the same units: a run page's headline columns are report.md's
(names and numbers), an ablation's and a leaderboard's are their Markdown tables'; parameter counts read as
eval.render.fmt.params_text writes them, in the text and on the leaderboard's log-scale axes; accuracy is plotted in
% on the same axis by a run's page and the leaderboard's."""

import json
import re

import pytest
from test_html_report import cells

pytest.importorskip("matplotlib", reason="the HTML report draws with matplotlib: pip install matplotlib")

from eval.core.schema import Message, Prediction, RunConfig, TraceStep
from eval.core.store import RunStore
from eval.render import board_page, run_page
from eval.render.fmt import params_text
from eval.render.report_md import render_markdown
from eval.results.pages import load_ablation_page, load_run_page


def markdown_table(text: str, first: str) -> list[list[str]]:
    """The cells of the Markdown table whose header starts with `first`, its separator line left out."""
    lines = text[text.index(f"| {first} |") :].split("\n\n")[0].splitlines()
    return [[c.strip() for c in line.strip().strip("|").split(" | ")] for i, line in enumerate(lines) if i != 1]


def by_name(table: list[list[str]]) -> dict[str, dict[str, str]]:
    """Each row of a table (its header first) by its first cell, as {column name: cell}."""
    return {row[0]: dict(zip(table[0], row, strict=True)) for row in table[1:]}


def figures(monkeypatch, module) -> list:
    """The matplotlib figures `module` draws from now on, kept open instead of encoded."""
    drawn = []

    def keep(fig) -> str:
        drawn.append(fig)
        return "data:image/png;base64,"

    monkeypatch.setattr(module, "png", keep)
    return drawn


# -- a run -----------------------------------------------------------------------------------------


def token_run(root, model_info: dict | None = None):
    """Two graphs on three questions, with prompt tokens partly cached, generated tokens and (cot) thinking."""
    data = root / "q.jsonl"
    questions = [
        {"id": f"q{i}", "stem": f"题{i}", "options": {"A": "甲", "B": "乙", "C": "丙"}, "answer": "AB"[i % 2]}
        for i in range(3)
    ]
    data.write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in questions), encoding="utf-8")
    out = root / "run"
    config = RunConfig(
        graphs=["cot", "single"], model="m.gguf", model_sha256="", data=str(data), data_sha256="",
        question_ids=[q["id"] for q in questions], model_info=model_info or {},
    )  # fmt: skip
    store = RunStore(out, config)
    for i, q in enumerate(questions):
        user = [Message(role="user", content=q["stem"])]
        for graph, calls, prompt, cached, completion, thinking in (("cot", 2, 301, 100, 57 + i, 20 + i),
                                                                   ("single", 1, 120, 40 * i, 0, 0)):  # fmt: skip
            step = TraceStep(
                node="answer", messages=user, output="A", prompt_tokens=prompt, completion_tokens=completion
            )
            store.append(
                Prediction(
                    question_id=q["id"], graph=graph, answer="A", gold=q["answer"], correct=q["answer"] == "A",
                    parse_status="ok", answer_method="regex", trace=[step] * calls, model_calls=calls,
                    prompt_tokens=prompt, prompt_tokens_evaluated=prompt - cached, completion_tokens=completion,
                    reasoning_tokens=thinking, seconds=0.5 + i,
                )
            )  # fmt: skip
    store.close()
    return out


def test_a_run_page_has_report_md_columns_and_numbers(tmp_path):
    page = load_run_page(token_run(tmp_path))
    document = run_page.render(page)
    markdown = by_name(markdown_table(render_markdown(page.summary), "graph"))
    html = by_name(cells(document, "<table class='headline'>"))
    names = ["calls/q", "prompt tok/q", "evaluated tok/q", "completion tok/q", "s/q"]
    assert set(html) == set(markdown) == {"cot", "single"}
    for graph in markdown:
        assert [html[graph].get(n) for n in names] == [markdown[graph][n] for n in names], graph
    assert markdown["cot"]["completion tok/q"] == "58 (21 thinking)"  # the numbers are not all zero
    assert (markdown["single"]["prompt tok/q"], markdown["single"]["evaluated tok/q"]) == ("120", "80")
    assert "steps/q" not in document and "tokens/q" not in document


@pytest.mark.parametrize(
    ("info", "said"),
    [
        ({"architecture": "llama", "total_params": 1.4e6, "quantization": "F32"}, "llama, 1.4M parameters, F32"),
        ({"architecture": "llama", "total_params": 135e6, "quantization": "Q4_1"}, "llama, 135M parameters, Q4_1"),
        (
            {"architecture": "qwen3moe", "total_params": 30.5e9, "is_moe": True, "n_experts": 128,
             "n_experts_used": 8, "active_params": 3.3e9, "quantization": "Q4_K_M"},
            "qwen3moe, 30.5B parameters, MoE: 128 experts, 8 used per token, 3.3B active, Q4_K_M",
        ),
    ],
)  # fmt: skip
def test_a_run_page_says_parameter_counts_as_the_tables_do(tmp_path, info, said):
    document = run_page.render(load_run_page(token_run(tmp_path, info)))
    assert f"Model <code>m.gguf ({said})</code>" in document
    assert not re.search(r"\d\.\d\dB parameters", document.replace(said, ""))


# -- an ablation ---------------------------------------------------------------------------------


def test_an_ablation_page_has_the_ablation_tables_cost_columns(tmp_path):
    from test_ablate import make_ablation

    out = make_ablation(tmp_path)
    document = run_page.render(load_ablation_page(out))
    markdown = by_name([row[1:] for row in markdown_table((out / "ablation.md").read_text(), "model")])
    html = by_name(cells(document, "<table class='headline'>"))
    names = ["calls/q", "tok/q", "s/q"]
    assert len(html) == len(markdown) == 4
    markdown = {cell.strip("*"): row for cell, row in markdown.items()}  # the baseline's in bold
    for cell, row in html.items():
        assert [row.get(n) for n in names] == [markdown[cell.removesuffix(" baseline")][n] for n in names], cell


# -- the leaderboard -------------------------------------------------------------------------------


def leaderboard(root, params: dict[str, float]):
    """A leaderboard of endpoint models that declare their parameters, each right on a different share of the
    questions."""
    from eval.data import BUNDLED, load_questions, select
    from eval.plans.board import load_board
    from eval.results.board import analyse

    spec = root / "board.toml"
    spec.write_text(
        "limit = 6\n"
        + "".join(
            f'[[models]]\nname = "{name}"\nbase_url = "http://api.example/v1"\nmodel_name = "{name}"\n'
            f"[models.facts]\ntotal_params = {n:g}\n\n"
            for name, n in params.items()
        ),
        encoding="utf-8",
    )
    board = load_board(spec)
    questions = select(load_questions(BUNDLED), limit=6)
    out = root / "out"
    for k, entry in enumerate(board.models, start=1):
        config = RunConfig(
            graphs=["single"], model=f"openai:{entry.name}", model_sha256="", data=str(BUNDLED), data_sha256="",
            question_ids=[q.id for q in questions],
        )  # fmt: skip
        store = RunStore(board.run_dir(out, entry, "single"), config)
        for i, q in enumerate(questions):
            answer = q.answer if i < k else next(x for x in q.letters if x != q.answer)
            store.append(
                Prediction(
                    question_id=q.id, graph="single", answer=answer, gold=q.answer, correct=i < k,
                    parse_status="ok", answer_method="regex", prompt_tokens=100 + k, prompt_tokens_evaluated=90,
                    completion_tokens=7 * k, reasoning_tokens=k, model_calls=1,
                )
            )  # fmt: skip
        store.close()
    return analyse(board, out)


def tick_labels(ax) -> dict[float, str]:
    """The labelled major ticks of an axis's x axis that fall on it."""
    ax.figure.canvas.draw()
    low, high = ax.get_xlim()
    return {
        t.get_position()[0]: t.get_text()
        for t in ax.xaxis.get_majorticklabels()
        if t.get_text() and t.get_visible() and low <= t.get_position()[0] <= high
    }


@pytest.mark.parametrize(
    "params",
    [
        {"a": 1.2e9, "b": 1.5e9},  # under a decade: no power of ten on the axis
        {"a": 7e9},  # one model
        {"tiny": 1.4e6, "small": 135e6, "mid": 1.5e9},
        {"tiny": 1.4e6, "big": 671e9},  # six decades
    ],
)
def test_the_leaderboards_parameter_axes_are_labelled_as_the_tables_write_counts(tmp_path, monkeypatch, params):
    lb = leaderboard(tmp_path, params)
    drawn = figures(monkeypatch, board_page)
    assert board_page.size_scatter(lb)
    (fig,) = drawn
    for ax in fig.axes:
        assert ax.get_xscale() == "log"
        labels = tick_labels(ax)
        assert len(labels) >= 2, labels
        assert all(text == params_text(x) for x, text in labels.items()), labels
        low, high = ax.get_xlim()
        assert low < min(params.values()) and max(params.values()) < high  # every model on the axis


def test_the_leaderboard_pages_cost_columns_are_leaderboard_md_s(tmp_path):
    from eval.render.board_table import render_markdown as board_markdown

    lb = leaderboard(tmp_path, {"a": 1.2e9, "b": 1.5e9})
    markdown = by_name([row[1:] for row in markdown_table(board_markdown(lb), "rank [95% CI]")])
    html = by_name([row[1:] for row in cells(board_page.render(lb, "board"), "id='leaderboard'>")])
    names = ["tok/q", "thinking tok/q", "s/q"]
    assert [[html[m].get(n) for n in names] for m in "ab"] == [[markdown[m][n] for n in names] for m in "ab"]
    assert markdown["b"]["tok/q"] == "104" and markdown["b"]["thinking tok/q"] == "2"


def test_a_run_page_and_the_leaderboard_plot_accuracy_in_percent_on_the_same_axis(tmp_path, monkeypatch):
    page = load_run_page(token_run(tmp_path))
    run_figures, board_figures = figures(monkeypatch, run_page), figures(monkeypatch, board_page)
    run_page.cost_scatter(page)
    lb = leaderboard(tmp_path, {"a": 1.2e9, "b": 1.5e9})
    board_page.size_scatter(lb)
    run_axes, board_axes = run_figures[0].axes[0], board_figures[0].axes[0]
    assert run_axes.get_ylabel() == board_axes.get_ylabel() and "%" in run_axes.get_ylabel()
    assert run_axes.get_ylim() == board_axes.get_ylim() and run_axes.get_ylim()[1] >= 100

    def plotted(ax) -> list[float]:
        return sorted(float(y) for c in ax.containers for y in c.lines[0].get_ydata())

    wanted = sorted(100 * c.summary.overall.accuracy for c in page.columns)  # cot 2/3 right, single 2/3
    assert plotted(run_axes) == pytest.approx(wanted) and max(wanted) > 1
    assert plotted(board_axes) == pytest.approx(sorted(100 * r.overall.accuracy for r in lb.rows if r.overall))
