"""python -m eval.html_report DIR: one self-contained HTML page for a run directory or an ablation directory.

Writes DIR/report.html (or --out): inline CSS, figures as PNG data URIs, nothing fetched from anywhere, so
the file can be mailed or opened offline. It holds

- the headline table (accuracy with Wilson intervals, paired differences with bootstrap intervals, McNemar
  and Holm p-values, unparsed answers, cost per question);
- a specialty x level heatmap of accuracy per graph (or per ablation cell);
- accuracy against cost: tokens per question and seconds per question;
- flips against the baseline (right->wrong, wrong->right) and within chains (first proposal -> final answer);
- the answered letters against the answer key (a first look at position bias);
- every question, with an anchor (report.html#q-ID) and a collapsible section showing each graph's answer and
  every node's messages and output, so a clinician can read why a chain changed its answer.

Needs matplotlib (`pip install matplotlib`).
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from eval.analysis import answered_letters, draft_flips, flip_rows, key_text, letter_p_text, regrade
from eval.schema import LETTERS, Message, Prediction, Question, RunConfig, TraceStep

LEVELS = ("attending", "senior")
STAND_IN = "(question text unavailable)"  # the stem of a question the dataset could not supply: its options are guessed


class ReportError(Exception):
    """The directory cannot be reported on; the message says why."""


@dataclass
class Column:
    """One graph of a run, or one cell of an ablation: what the page shows side by side."""

    key: str
    title: str
    graph: str  # registry name, +rag included
    model: str
    config: RunConfig
    predictions: dict[str, Prediction]  # question id -> final prediction
    summary: object = None  # eval.schema.GraphSummary
    group: str = ""  # colour group in the figures (the model, in an ablation)


@dataclass
class Page:
    title: str
    meta: list[str]  # lines under the title (HTML)
    questions: dict[str, Question]
    columns: list[Column]
    comparisons: list[
        dict
    ]  # {"column", "baseline", n, diff, diff_ci_low, diff_ci_high, mcnemar_p, holm_p, right_to_wrong, wrong_to_right}
    headline: str = ""  # HTML table(s)
    notes: list[str] = field(default_factory=list)


# -- loading ----------------------------------------------------------------------------------


def read_run(run_dir: Path) -> tuple[RunConfig, dict[tuple[str, str], Prediction]]:
    """The manifest and the final prediction per (graph, question), read through eval.store.

    Read-only: a run still in progress is read as far as its finished lines go.
    """
    from eval.store import MANIFEST, read_predictions

    manifest = run_dir / MANIFEST
    if not manifest.exists():
        raise ReportError(
            f"{run_dir}: no {MANIFEST}; not a run directory (python -m eval.agentic --out DIR writes one)"
        )
    config = RunConfig.model_validate_json(manifest.read_text(encoding="utf-8"))
    return config, read_predictions(run_dir)


def run_questions(
    config: RunConfig, predictions: Sequence[Prediction], data: Path | None, fmt: str
) -> tuple[dict[str, Question], list[str]]:
    """The run's questions from its dataset; stand-ins (no text, specialty 'other') when it cannot be read."""
    from eval.data import DataError, load_for_config, load_questions, questions_sha256

    notes = []
    source = data or Path(config.data)
    try:
        if data is None:  # read exactly as the run did: its format, key, field map, mapping and encoding
            run_order = load_for_config(config).questions
            loaded = {q.id: q for q in run_order}
            if questions_sha256(run_order) != config.data_sha256:
                notes.append(f"{source} changed since the run; question texts shown are today's")
        else:
            loaded = {q.id: q for q in load_questions(source, fmt)}
    except (DataError, OSError, ValueError) as e:
        loaded = {}
        notes.append(
            f"could not read the questions from {source} ({e}); pass --data/--format to show their text and breakdowns"
        )
    questions: dict[str, Question] = {}
    by_id = {p.question_id: p for p in predictions}
    for qid in config.question_ids:
        if qid in loaded:
            questions[qid] = loaded[qid]
        elif qid in by_id:
            gold = by_id[qid].gold
            letters = LETTERS[: max(LETTERS.index(gold) + 1, 2)] if gold in LETTERS else LETTERS
            questions[qid] = Question(id=qid, stem=STAND_IN, options={k: "?" for k in letters}, answer=gold)
    return questions, notes


def load_run_page(run_dir: Path, data: Path | None = None, fmt: str = "auto") -> Page:
    from eval.ablate import compare
    from eval.report import describe_model, summarize
    from eval.stats import holm

    config, found = read_run(run_dir)
    questions, notes = run_questions(config, list(found.values()), data, fmt)
    graphs = config.graphs
    baseline = graphs[1] if len(graphs) > 1 else None
    summary = summarize(
        Path(config.model).name, config.data, graphs, baseline, list(questions.values()), found.values()
    )
    columns = [
        Column(
            key=g.graph,
            title=g.graph,
            graph=g.graph,
            model=Path(config.model).name,
            config=config,
            predictions={
                q: regrade(p, questions[q]) for (graph, q), p in found.items() if graph == g.graph and q in questions
            },
            summary=g,
        )
        for g in summary.graphs
    ]
    comparisons = []
    if baseline:
        base = next(c for c in columns if c.key == baseline)
        for c in columns:
            if c is not base:
                comparisons.append({"column": c.key, "baseline": base.key, **compare(base.predictions, c.predictions)})
        for comp, p in zip(comparisons, holm([c["mcnemar_p"] for c in comparisons])):
            comp["holm_p"] = p
    model = Path(config.model).name + (f" ({describe_model(config.model_info)})" if config.model_info else "")
    meta = [
        f"Model <code>{_e(model)}</code> · data <code>{_e(config.data)}</code> · {len(questions)} questions · seed {config.seed}",
        f"Budgets: draft {config.draft_tokens}, critique {config.critique_tokens} tokens · prompts <code>{_e(config.prompts_version)}</code>"
        + (f" · variant <code>{_e(config.prompt_variant)}</code>" if config.prompt_variant else "")
        + (
            f" · sc: k={config.samples}, temperature {config.sample_temperature}"
            if any(_base(g) == "sc" for g in graphs)
            else ""
        )
        + (f" · retrieval <code>{_e(config.retrieval)}</code>" if config.retrieval else ""),
        _e(key_text(summary.key)),
    ]
    for c in columns:
        if (finished := sum(p.parse_status != "error" for p in c.predictions.values())) < len(questions):
            notes.append(
                f"{c.title}: {finished} of {len(questions)} questions finished (the run is incomplete or has errors; rerun it to resume)"
            )
    page = Page(f"{' vs '.join(graphs)}", meta, questions, columns, comparisons, notes=notes)
    page.headline = _run_headline(page)
    return page


def load_ablation_page(out: Path) -> Page:
    from eval.ablate import load_ablation, model_slug, summary_of

    ablation = load_ablation(out)
    several = len(ablation.grid.models) > 1
    columns = []
    for run in ablation.runs:
        if not run.config:
            continue
        title = f"{model_slug(run.model)} · {run.label}" if several else run.label
        preds = {q: p for q, p in run.predictions.items() if q in ablation.questions}
        columns.append(
            Column(
                title,
                title,
                run.cell.graph,
                run.model,
                run.config,
                preds,
                summary_of(run, ablation.questions),
                group=model_slug(run.model),
            )
        )
    comparisons = []
    for row in ablation.rows:
        if row.get("diff") is not None:
            title = f"{model_slug(row['model'])} · {row['cell']}" if several else row["cell"]
            base = f"{model_slug(row['model'])} · {row['baseline']}" if several else row["baseline"]
            comparisons.append(
                {
                    "column": title,
                    "baseline": base,
                    **{
                        k: row.get(k)
                        for k in (
                            "n",
                            "diff",
                            "diff_ci_low",
                            "diff_ci_high",
                            "mcnemar_p",
                            "holm_p",
                            "right_to_wrong",
                            "wrong_to_right",
                        )
                    },
                }
            )
    g = ablation.grid
    meta = [
        f"{len(ablation.questions)} questions, the same for every cell · models: {', '.join(f'<code>{_e(m)}</code>' for m in g.models)} · seed {g.seed}",
        f"graphs {_e(', '.join(g.graphs))} × prompt variants {_e(', '.join(g.variants) or 'default')} × retrieval "
        f"{'/'.join('on' if r else 'off' for r in g.retrieval)} · sc: k ∈ {{{', '.join(map(str, g.samples))}}}, temperature {g.sample_temperature}"
        f" · baseline <b>{_e(ablation.baseline.label)}</b>",
        _e(key_text(ablation.key)),
    ]
    page = Page(f"Ablation: {out.name}", meta, ablation.questions, columns, comparisons, notes=list(ablation.notes))
    page.headline = _ablation_headline(ablation.rows, ablation.baseline.label, several, g)
    return page


def _base(graph: str) -> str:
    return graph.split("+", 1)[0]


# -- figures ----------------------------------------------------------------------------------


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ReportError("the HTML report draws its figures with matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def heatmap(page: Page) -> str:
    """Accuracy per specialty x level, one panel per column, each cell annotated correct/total."""
    import numpy as np

    plt = _pyplot()
    specialties = sorted({q.specialty for q in page.questions.values()}, key=lambda s: (s == "other", s))
    levels = [lv for lv in LEVELS if any(q.level == lv for q in page.questions.values())]
    if any(q.level is None for q in page.questions.values()):
        levels.append("(none)")
    n = len(page.columns)
    per_row = min(n, 4)
    rows = math.ceil(n / per_row)
    fig, axes = plt.subplots(
        rows, per_row, figsize=(2.2 + 2.3 * per_row, 0.9 + 0.42 * len(specialties) * rows), squeeze=False
    )
    for ax in axes.flat[n:]:
        ax.axis("off")
    cmap = plt.get_cmap("RdYlGn").copy()
    cmap.set_bad("#dddddd")
    for ax, column in zip(axes.flat, page.columns):
        grid = np.full((len(specialties), len(levels)), np.nan)
        for i, s in enumerate(specialties):
            for j, lv in enumerate(levels):
                outcomes = [
                    p.correct
                    for q, p in column.predictions.items()
                    if p.parse_status != "error"
                    and page.questions[q].specialty == s
                    and (page.questions[q].level or "(none)") == lv
                ]
                if outcomes:
                    grid[i, j] = sum(outcomes) / len(outcomes)
                    ax.text(j, i, f"{sum(outcomes)}/{len(outcomes)}", ha="center", va="center", fontsize=8)
        ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(levels)), levels, fontsize=8)
        ax.set_yticks(range(len(specialties)), [s.replace("_", " ") for s in specialties], fontsize=8)
        ax.set_title(column.title, fontsize=9)
    fig.tight_layout()
    return _png(fig)


def cost_scatter(page: Page) -> str:
    """Accuracy (Wilson 95% interval) against tokens per question and seconds per question."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    from matplotlib.ticker import FuncFormatter

    # Colour by model in an ablation over several, else by graph; the marker always says which graph.
    by_model = len({c.group for c in page.columns}) > 1
    colour_of = (lambda c: c.group) if by_model else (lambda c: _base(c.graph))
    groups = sorted({colour_of(c) for c in page.columns})
    colours = plt.get_cmap("tab10")
    markers = {"single": "o", "reflect": "s", "cot": "^", "sc": "D"}
    for ax, (xlabel, cost) in zip(
        axes,
        [
            (
                "tokens per question (prompt evaluated + generated)",
                lambda s: s.prompt_tokens_evaluated_per_q + s.completion_tokens_per_q,
            ),
            ("seconds per question", lambda s: s.seconds_per_q),
        ],
    ):
        drawn = sorted(
            (c for c in page.columns if c.summary.overall.total),
            key=lambda c: (cost(c.summary), c.summary.overall.accuracy),
        )
        xs = [cost(c.summary) for c in drawn]
        for rank, column in enumerate(drawn):
            s = column.summary
            x, y = cost(s), s.overall.accuracy
            err = [[y - s.overall.ci_low], [s.overall.ci_high - y]]
            colour = colours(groups.index(colour_of(column)) % 10)
            marker = markers.get(_base(column.graph), "o")
            ax.errorbar(
                [x], [y], yerr=err, fmt=marker, color=colour, ecolor=colour, alpha=0.85, capsize=3, markersize=7
            )
            # Neighbours along x get staggered labels so that close points stay readable.
            ax.annotate(
                column.key.split(" · ")[-1],
                (x, y),
                textcoords="offset points",
                xytext=(5, 4 + 11 * (rank % 4)),
                fontsize=8,
            )
        ax.set_xlabel(xlabel)
        if xs and min(xs) > 0 and max(xs) / min(xs) > 8:
            ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}"[0] in "25" else ""))
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("accuracy (95% CI)")
    axes[0].set_ylim(-0.02, 1.02)
    if by_model:
        for i, g in enumerate(groups):
            axes[1].plot([], [], "o", color=colours(i % 10), label=g)
        axes[1].legend(fontsize=8, loc="best")
    fig.tight_layout()
    return _png(fig)


def flip_bars(page: Page) -> str | None:
    """Right->wrong (left, red) and wrong->right (right, green): against the baseline, and first proposal -> final."""
    plt = _pyplot()
    bars = [(f"{c['column']} vs {c['baseline']}", c["right_to_wrong"], c["wrong_to_right"]) for c in page.comparisons]
    for column in page.columns:
        if f := draft_flips(column.predictions.values()):
            bars.append((f"{column.title}: {f.first} → final", f.right_to_wrong, f.wrong_to_right))
    if not bars:
        return None
    fig, ax = plt.subplots(figsize=(9, 0.9 + 0.38 * len(bars)))
    labels = [b[0] for b in bars]
    y = range(len(bars))
    ax.barh(y, [-b[1] for b in bars], color="#d9534f", label="right → wrong")
    ax.barh(y, [b[2] for b in bars], color="#5cb85c", label="wrong → right")
    for i, (_, r2w, w2r) in enumerate(bars):
        ax.text(-r2w, i, f"{r2w} ", ha="right", va="center", fontsize=8)
        ax.text(w2r, i, f" {w2r}", ha="left", va="center", fontsize=8)
    ax.set_yticks(list(y), labels, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0, color="black", linewidth=0.8)
    limit = max(1, *(max(b[1], b[2]) for b in bars))
    ax.set_xlim(-limit * 1.3, limit * 1.3)
    ax.set_xlabel("questions")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return _png(fig)


def letter_bars(page: Page) -> str:
    """Share of each letter among a column's answers (unparsed in grey), under the answer key's own shares."""
    plt = _pyplot()
    letters = [k for k in LETTERS if any(k in q.options for q in page.questions.values())]
    rows = [("answer key", [q.answer for q in page.questions.values()])]
    rows += [(c.title, [p.answer for p in c.predictions.values() if p.parse_status != "error"]) for c in page.columns]
    colours = plt.get_cmap("Set2")
    fig, ax = plt.subplots(figsize=(9, 0.8 + 0.36 * len(rows)))
    for i, (label, answers) in enumerate(rows):
        total, left = len(answers) or 1, 0.0
        for j, key in enumerate([*letters, None]):
            share = sum(a == key for a in answers) / total
            if share:
                ax.barh(i, share, left=left, color=colours(j) if key else "#bbbbbb", edgecolor="white")
                ax.text(left + share / 2, i, key or "?", ha="center", va="center", fontsize=8)
                left += share
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of answers (?: unparsed)")
    fig.tight_layout()
    return _png(fig)


# -- per-question details ---------------------------------------------------------------------


def flips_table(page: Page) -> str:
    """First proposal -> final per chain, unparsed first proposals in their own row."""
    chains = [(c, f) for c in page.columns if (f := draft_flips(c.predictions.values()))]
    if not chains:
        return ""
    rows = [flip_rows(f, "first proposal") for _, f in chains]
    body = [[_e(label)] + [str(r[i][1]) for r in rows] for i, (label, _) in enumerate(rows[0])]
    return _table(["first proposal → final"] + [f"{_e(c.title)} ({_e(f.first)})" for c, f in chains], body)


def anchors(questions: Sequence[str]) -> dict[str, str]:
    """A unique, URL-safe anchor per question id: q-ID with anything but letters, digits, - and _ replaced."""
    found: dict[str, str] = {}
    used: set[str] = set()
    for qid in questions:
        anchor = "q-" + re.sub(r"[^A-Za-z0-9_-]", "_", qid)
        base, i = anchor, 2
        while anchor in used:
            anchor, i = f"{base}-{i}", i + 1
        used.add(anchor)
        found[qid] = anchor
    return found


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _outcome(p: Prediction | None) -> str:
    if p is None:
        return '<span class="badge none">–</span>'
    if p.parse_status == "error":
        return f'<span class="badge err" title="{_e(p.error or "")}">error</span>'
    if p.answer is None:
        return '<span class="badge bad">unparsed</span>'
    return f'<span class="badge {"ok" if p.correct else "bad"}">{_e(p.answer)} {"✓" if p.correct else "✗"}</span>'


def _content_html(content: str, question_text: str) -> str:
    """A message's text, escaped, with the question itself (already shown above it) folded to a marker."""
    if question_text and question_text in content:
        marker = "<span class='qref'>[the question and its options, as shown above]</span>"
        return marker.join(_e(part) for part in content.split(question_text))
    return _e(content)


def _messages_html(messages: Sequence[Message], previous: TraceStep | None, question_text: str = "") -> str:
    """The step's prompt: what it adds to the previous step's conversation (all of it for the first step)."""
    shared = 0
    if previous:
        for a, b in zip(previous.messages, messages):
            if a != b:
                break
            shared += 1
    new = messages[shared:]
    parts = []
    if previous and shared:
        parts.append(f'<p class="muted">continues the conversation above ({shared} earlier messages)</p>' if new else
                     '<p class="muted">the same prompt as the step above</p>')  # fmt: skip
    for m in new:
        if previous and m.role == "assistant" and m.content == previous.output:
            parts.append(
                '<div class="msg assistant"><span class="role">assistant</span><span class="muted">the reply above</span></div>'
            )
        else:
            parts.append(
                f'<div class="msg {m.role}"><span class="role">{m.role}</span><pre>{_content_html(m.content, question_text)}</pre></div>'
            )
    return "".join(parts)


def _step_html(step: TraceStep, previous: TraceStep | None, question: Question, index: int) -> str:
    from agents.answer import parse_letter
    from agents.prompts import render_question

    facts = [
        f"{step.prompt_tokens} prompt tokens ({step.prompt_tokens_evaluated} evaluated)",
        f"{step.completion_tokens} generated",
        f"{step.seconds:.2f} s",
    ]
    body = [_messages_html(step.messages, previous, render_question(question)) if step.node != "retrieve" else ""]
    if step.passages is not None:
        query = step.messages[0].content if step.messages else ""
        items = "".join(
            f"<li><b>{_e(p.title)}</b> <span class='muted'>{_e(p.source)} · score {p.score:.3f}</span><pre>{_e(p.text)}</pre></li>"
            for p in step.passages
        )
        body.append(f"<p class='muted'>query: {_e(query[:200])}</p><ol class='passages'>{items}</ol>")
    body.append(f'<div class="msg output"><span class="role">output</span><pre>{_e(step.output)}</pre></div>')
    if step.scores:
        total = sum(math.exp(v) for v in step.scores.values())
        best = max(step.scores, key=step.scores.__getitem__)
        cells = "".join(
            f"<td class='{'best' if k == best else ''}'>{_e(k)}: {math.exp(v) / total:.0%}</td>"
            for k, v in step.scores.items()
        )
        body.append(
            f"<table class='scores'><tr><th>next-token probability (renormalised over the options)</th>{cells}</tr></table>"
        )
    elif step.node != "retrieve":
        named = parse_letter(step.output, question.letters)
        facts.append(f"names {named}" if named else "names no option")
    title = f"{index}. {step.node}"
    return f'<div class="step"><div class="stephead"><b>{_e(title)}</b> <span class="muted">{_e(" · ".join(facts))}</span></div>{"".join(body)}</div>'


def _prediction_html(column: Column, p: Prediction | None, question: Question) -> str:
    from agents.answer import parse_letter
    from agents.vote import tally

    if p is None:
        return f"<details class='pred'><summary>{_e(column.title)}: {_outcome(None)} not run</summary></details>"
    head = [f"<b>{_e(column.title)}</b>", _outcome(p)]
    info = [
        f"answer by {p.answer_method}" if p.answer else "",
        f"{len(p.trace)} step{'s' if len(p.trace) != 1 else ''}",
        f"{p.seconds:.1f} s",
    ]
    if p.draft_answer is not None or any(s.node in ("draft", "sample") for s in p.trace):
        first = "first sample" if any(s.node == "sample" for s in p.trace) else "draft"
        changed = p.draft_answer != p.answer
        head.append(
            f"<span class='{'changed' if changed else 'muted'}'>{first} {_e(p.draft_answer or 'unparsed')} → {_e(p.answer or 'unparsed')}</span>"
        )
    samples = [s for s in p.trace if s.node == "sample"]
    if samples:
        votes = tally([parse_letter(s.output, question.letters) for s in samples])
        info.append("votes " + ", ".join(f"{k} {v}" for k, v in votes.items()))
    if p.error:
        info.append(f"error: {p.error}")
    steps, previous = [], None
    for i, step in enumerate(p.trace, start=1):
        steps.append(_step_html(step, previous, question, i))
        if step.node != "retrieve":
            previous = step
    return (
        f"<details class='pred'><summary>{' '.join(head)} <span class='muted'>{_e(' · '.join(i for i in info if i))}</span></summary>"
        f"{''.join(steps) or '<p class=muted>no trace</p>'}</details>"
    )


def questions_section(page: Page) -> str:
    ids = list(page.questions)
    anchor = anchors(ids)
    differ = [
        q
        for q in ids
        if len({(c.predictions.get(q).correct if c.predictions.get(q) else None) for c in page.columns}) > 1
    ]
    header = "".join(f"<th>{_e(c.title)}</th>" for c in page.columns)
    rows = []
    for qid in ids:
        q = page.questions[qid]
        marks = "".join(f"<td>{_outcome(c.predictions.get(qid))}</td>" for c in page.columns)
        rows.append(
            f"<tr class='{'differ' if qid in differ else ''}'><td><a href='#{anchor[qid]}'>{_e(qid)}</a></td>"
            f"<td>{_e(q.specialty)}</td><td>{_e(q.level or '')}</td><td>{_e(q.answer)}</td>{marks}</tr>"
        )
    index = (
        f"<p>{len(differ)} of {len(ids)} questions are answered correctly by some columns and not others (highlighted). "
        "Click a question for every node's messages and output.</p>"
        f"<table class='index'><tr><th>question</th><th>specialty</th><th>level</th><th>key</th>{header}</tr>{''.join(rows)}</table>"
    )
    sections = []
    for qid in ids:
        q = page.questions[qid]
        options = "".join(
            f"<li class='{'key' if k == q.answer else ''}'><b>{_e(k)}.</b> {_e(v)}</li>" for k, v in q.options.items()
        )
        outcomes = " ".join(
            f"<span class='muted'>{_e(c.title)}</span> {_outcome(c.predictions.get(qid))}" for c in page.columns
        )
        rationale = f"<p class='rationale'><b>Rationale:</b> {_e(q.rationale)}</p>" if q.rationale else ""
        preds = "".join(_prediction_html(c, c.predictions.get(qid), q) for c in page.columns)
        sections.append(
            f"<section class='question' id='{anchor[qid]}'><details><summary><a class='anchor' href='#{anchor[qid]}'>#</a> "
            f"<b>{_e(qid)}</b> <span class='muted'>{_e(q.specialty)} · {_e(q.level or '–')} · key {_e(q.answer)}</span> {outcomes}</summary>"
            f"<div class='qbody'><p class='stem'>{_e(q.stem)}</p><ol class='options'>{options}</ol>{rationale}{preds}</div></details></section>"
        )
    return index + "".join(sections)


# -- tables -----------------------------------------------------------------------------------


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _pts(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:+.1f}"


def _p(x: float | None) -> str:
    return "–" if x is None else f"{x:.3g}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table class='{cls}'><tr>{head}</tr>{body}</table>"


def _bar(acc: float, low: float, high: float) -> str:
    """A small inline interval bar: the Wilson interval shaded, the estimate as a tick."""
    return (
        f"<span class='ci'><span class='ci-range' style='left:{100 * low:.1f}%;width:{100 * (high - low):.1f}%'></span>"
        f"<span class='ci-point' style='left:{100 * acc:.1f}%'></span></span>"
    )


def _letter_p(column: Column, questions: dict[str, Question]) -> str:
    """The letter test over the questions whose options are known (a stand-in's are guessed)."""
    bias = answered_letters(column.predictions.values(), {qid: q for qid, q in questions.items() if q.stem != STAND_IN})
    return _e(letter_p_text(bias.p, bias.why))


def _run_headline(page: Page) -> str:
    rows = []
    for c in page.columns:
        s = c.summary
        o = s.overall
        rows.append([
            f"<b>{_e(c.title)}</b>", f"{_pct(o.accuracy)} [{_pct(o.ci_low)}–{_pct(o.ci_high)}] ({o.correct}/{o.total}) {_bar(o.accuracy, o.ci_low, o.ci_high)}",
            str(s.unparsed), str(s.errors), f"{s.calls_per_q:.1f}",
            f"{s.prompt_tokens_evaluated_per_q + s.completion_tokens_per_q:.0f}", f"{s.seconds_per_q:.2f}",
            _letter_p(c, page.questions),
        ])  # fmt: skip
    header = [
        "graph",
        "accuracy [Wilson 95% CI] (correct/n)",
        "unparsed",
        "errors",
        "steps/q",
        "tokens/q",
        "s/q",
        "letters vs uniform, χ² p",
    ]
    table = _table(header, rows, "headline")
    if page.comparisons:
        comp_rows = [
            [
                f"{_e(c['column'])} vs {_e(c['baseline'])}", str(c["n"]),
                f"<b>{_pts(c['diff'])}</b> [{_pts(c['diff_ci_low'])}, {_pts(c['diff_ci_high'])}]",
                _p(c["mcnemar_p"]), _p(c.get("holm_p")), str(c["right_to_wrong"]), str(c["wrong_to_right"]),
            ]
            for c in page.comparisons
        ]  # fmt: skip
        table += "<h3>Paired against the baseline</h3>" + _table(
            [
                "comparison",
                "n",
                "Δ accuracy, points [95% paired bootstrap CI]",
                "McNemar exact p",
                "Holm p",
                "right → wrong",
                "wrong → right",
            ],
            comp_rows,
        )
    return table


def _ablation_headline(rows: list[dict], baseline: str, several: bool, grid) -> str:
    body = []
    for r in rows:
        name = f"{_e(r['model'])} · " if several else ""
        if r.get("n") is None:
            body.append([f"{name}{_e(r['cell'])}", _e(r["status"])] + ["–"] * 10)
            continue
        is_base = r.get("diff") is None and r["cell"] == baseline
        matched = "–"
        if r.get("matched_found"):
            matched = f"{_e(r['matched_cell'])}: {_pct(r['matched_accuracy'])}; Δ {_pts(r['matched_diff'])} [{_pts(r['matched_diff_ci_low'])}, {_pts(r['matched_diff_ci_high'])}], Holm p {_p(r.get('matched_holm_p'))}"
        elif r.get("matched_cell"):
            matched = f"<span class='muted'>add {_e(r['matched_cell'])}</span>"
        body.append([
            f"{name}<b>{_e(r['cell'])}</b>" + (" <span class='badge none'>baseline</span>" if is_base else ""),
            f"{_pct(r['accuracy'])} [{_pct(r['ci_low'])}–{_pct(r['ci_high'])}] ({r['correct']}/{r['n']}) {_bar(r['accuracy'], r['ci_low'], r['ci_high'])}",
            "–" if r.get("diff") is None else f"<b>{_pts(r['diff'])}</b> [{_pts(r['diff_ci_low'])}, {_pts(r['diff_ci_high'])}]",
            _p(r.get("mcnemar_p")), _p(r.get("holm_p")),
            "–" if r.get("diff") is None else f"{r['right_to_wrong']} / {r['wrong_to_right']}",
            matched, str(r["unparsed"]), _e(letter_p_text(r["letter_p"], r["letter_note"])),
            f"{r['calls_per_q']:.1f}", f"{r['tokens_per_q']:.0f}", f"{r['seconds_per_q']:.2f}",
        ])  # fmt: skip
    header = [
        "cell", "accuracy [Wilson 95% CI] (correct/n)", f"Δ vs {_e(baseline)}, points [95% paired bootstrap CI]", "McNemar p", "Holm p",
        "flips r→w / w→r", "compute-matched sc (k = calls/q)", "unparsed", "letters vs uniform, χ² p",
        "calls/q", "tokens/q", "s/q",
    ]  # fmt: skip
    return _table(header, body, "headline")


# -- the page ---------------------------------------------------------------------------------

CSS = """
body{font-family:-apple-system,"Segoe UI","PingFang SC","Noto Sans CJK SC","Microsoft YaHei",sans-serif;margin:0 auto;max-width:1280px;padding:1.5em 2em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.8em;border-bottom:2px solid #eee;padding-bottom:.2em}
.meta{color:#555;margin:.2em 0}.note{background:#fff8e1;border-left:4px solid #f0ad4e;padding:.4em .8em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}th,td{border:1px solid #ddd;padding:.3em .55em;text-align:left;vertical-align:top}
th{background:#f4f6f8}table.headline td:first-child{white-space:nowrap}tr.differ{background:#fffbe6}
img{max-width:100%;border:1px solid #eee;margin:.4em 0}
.badge{display:inline-block;border-radius:3px;padding:0 .35em;font-size:.85em;font-weight:600;white-space:nowrap}
.badge.ok{background:#dff0d8;color:#2b662b}.badge.bad{background:#f8d7da;color:#8a1f2b}.badge.err{background:#e2e3e5;color:#383d41}.badge.none{background:#eef;color:#446}
.muted{color:#777;font-size:.9em}.changed{color:#b35c00;font-weight:600}
.ci{display:inline-block;position:relative;width:90px;height:10px;background:#f1f1f1;vertical-align:middle;margin-left:.4em}
.ci-range{position:absolute;top:0;height:10px;background:#9ec5e8}.ci-point{position:absolute;top:-2px;width:2px;height:14px;background:#1f4e79}
section.question{border-top:1px solid #eee;padding:.3em 0}section.question>details>summary{cursor:pointer;padding:.2em 0}
section.question:target{background:#f5fbff}.anchor{color:#aaa;text-decoration:none}
.qbody{padding:.3em 0 .6em 1.2em}.stem{font-size:1.05em}.options li.key{font-weight:600;color:#2b662b}.rationale{color:#444}
details.pred{margin:.4em 0;border:1px solid #e3e3e3;border-radius:4px;padding:.3em .6em}details.pred>summary{cursor:pointer}
.step{border-left:3px solid #cfd8e3;margin:.6em 0 .6em .3em;padding-left:.7em}.stephead{margin-bottom:.2em}
.msg{margin:.25em 0}.msg .role{display:inline-block;min-width:5.5em;font-size:.8em;color:#fff;background:#7a8794;border-radius:3px;padding:0 .4em;margin-right:.4em}
.msg.system .role{background:#6c5a99}.msg.user .role{background:#2d6a9f}.msg.assistant .role{background:#3c8d5a}.msg.output .role{background:#b35c00}
pre{white-space:pre-wrap;word-break:break-word;background:#fafafa;border:1px solid #eee;padding:.4em .6em;margin:.2em 0;font-family:inherit;font-size:.92em}
table.scores td.best{background:#dff0d8;font-weight:600}ol.passages pre{max-height:12em;overflow:auto}
nav a{margin-right:1em}.qref{color:#2d6a9f;font-style:italic}
"""

# Following a link to #q-ID opens that question's section.
SCRIPT = """
function openTarget(){var id=decodeURIComponent(location.hash.slice(1));var el=id&&document.getElementById(id);
if(el){var d=el.querySelector('details');if(d){d.open=true;}}}
window.addEventListener('hashchange',openTarget);window.addEventListener('DOMContentLoaded',openTarget);
"""


def render(page: Page) -> str:
    sections = [("results", "Results", page.headline)]
    sections.append((
        "heatmap", "Accuracy by specialty × level",
        f"<img alt='accuracy heatmap by specialty and level' src='{heatmap(page)}'>"
        "<p class='muted'>Each cell: correct/answered; grey: no questions there. Errors are left out.</p>",
    ))  # fmt: skip
    sections.append((
        "cost", "Accuracy against cost",
        f"<img alt='accuracy against tokens and seconds per question' src='{cost_scatter(page)}'>"
        "<p class='muted'>Bars: Wilson 95% intervals. Tokens: prompt tokens actually evaluated (the rest came from the KV cache) plus generated tokens.</p>",
    ))  # fmt: skip
    if flips := flip_bars(page):
        sections.append(("flips", "Flips", f"<img alt='flips' src='{flips}'><p class='muted'>Paired on the same questions. "
                         "“first → final”: how later steps (critique and extraction, or voting) changed the chain's "
                         "first proposal; one that named no option is neither a change nor a flip (its own row below).</p>"
                         + flips_table(page)))  # fmt: skip
    sections.append((
        "letters", "Answered letters",
        f"<img alt='answered letters against the answer key' src='{letter_bars(page)}'>"
        "<p class='muted'>The χ² p in the table tests the answered letters against a uniform guess over the options "
        "shown: a small p means some positions are favoured, or the key is unbalanced and the graph is accurate. "
        "Options are not permuted, so this cannot tell position bias from content preference; where a letter's "
        "expected count is below 5 there is no p. The option shuffle of <code>python -m eval.position_bias</code> "
        "measures position bias at any size.</p>",
    ))  # fmt: skip
    sections.append(("questions", "Questions", questions_section(page)))
    nav = "".join(f"<a href='#{key}'>{_e(title)}</a>" for key, title, _ in sections)
    notes = "".join(f"<p class='note'>{_e(n)}</p>" for n in page.notes)
    meta = "".join(f"<p class='meta'>{line}</p>" for line in page.meta)
    body = "".join(f"<h2 id='{key}'>{_e(title)}</h2>{content}" for key, title, content in sections)
    return (
        "<!DOCTYPE html><html lang='zh-CN'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_e(page.title)}</title><style>{CSS}</style><script>{SCRIPT}</script></head>"
        f"<body><h1>{_e(page.title)}</h1>{meta}{notes}<nav>{nav}</nav>{body}</body></html>\n"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m eval.html_report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "dir",
        type=Path,
        help="a run directory (python -m eval.agentic --out) or an ablation directory (python -m eval.ablate --out)",
    )
    p.add_argument("--out", type=Path, help="where to write the page (default DIR/report.html)")
    p.add_argument(
        "--data", type=Path, help="run directory only: read the questions from here instead of the path in its manifest"
    )
    p.add_argument("--format", default="auto", help="dataset format for --data (see python -m eval.data)")
    args = p.parse_args(argv)
    from eval.data import DataError

    try:
        _pyplot()
        if (args.dir / "ablation.json").exists():
            page = load_ablation_page(args.dir)
        else:
            page = load_run_page(args.dir, args.data, args.format)
        if not page.columns:
            raise ReportError(f"{args.dir}: nothing has finished yet")
        document = render(page)
    except (ReportError, DataError, OSError, json.JSONDecodeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = args.out or args.dir / "report.html"
    out.write_text(document, encoding="utf-8")
    print(f"report: {out} ({len(document) / 1e6:.1f} MB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
