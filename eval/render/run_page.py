"""The HTML page of a run or an ablation (python -m eval.html_report DIR): eval.results.pages.Page drawn as one
self-contained document, figures inline as PNG data URIs, every question with every node's messages and output.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from eval.core.schema import LETTERS, Message, Prediction, Question, TraceStep
from eval.render.figures import ACCURACY_AXIS, ACCURACY_LIMITS, TEMPLATES, png, pyplot
from eval.results.analysis import draft_flips, flip_rows
from eval.results.pages import Column, Page
from eval.results.report import LEVELS
from graphs import GraphSpec


def _base(graph: str) -> str:
    return GraphSpec.parse(graph).strategy.name


# -- figures ----------------------------------------------------------------------------------


def heatmap(page: Page) -> str:
    """Accuracy per specialty x level, one panel per column, each cell annotated correct/total."""
    import numpy as np

    plt = pyplot()
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
    cmap = plt.get_cmap("RdYlGn").with_extremes(bad="#dddddd")
    for ax, column in zip(axes.flat, page.columns, strict=False):
        grid = np.full((len(specialties), len(levels)), np.nan)
        for i, s in enumerate(specialties):
            for j, lv in enumerate(levels):
                outcomes = [
                    p.correct
                    for q, p in column.headline.items()
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
    return png(fig)


def cost_scatter(page: Page) -> str:
    """Accuracy (Wilson 95% interval) against tokens per question and seconds per question."""
    plt = pyplot()
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
                "evaluated + completion tok/q (tokens per question)",
                lambda s: s.prompt_tokens_evaluated_per_q + s.completion_tokens_per_q,
            ),
            ("seconds per question", lambda s: s.seconds_per_q),
        ],
        strict=True,
    ):
        drawn = sorted(
            (c for c in page.columns if c.summary.overall.total),
            key=lambda c: (cost(c.summary), c.summary.overall.accuracy),
        )
        xs = [cost(c.summary) for c in drawn]
        for rank, column in enumerate(drawn):
            s = column.summary
            x, y = cost(s), 100 * s.overall.accuracy
            err = [[y - 100 * s.overall.ci_low], [100 * s.overall.ci_high - y]]
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
    axes[0].set(ylabel=ACCURACY_AXIS, ylim=ACCURACY_LIMITS)
    if by_model:
        for i, g in enumerate(groups):
            axes[1].plot([], [], "o", color=colours(i % 10), label=g)
        axes[1].legend(fontsize=8, loc="best")
    fig.tight_layout()
    return png(fig)


def flip_bars(page: Page) -> str | None:
    """Right->wrong (left, red) and wrong->right (right, green): against the baseline, and first proposal -> final."""
    plt = pyplot()
    bars = [(f"{column} vs {base}", c.right_to_wrong, c.wrong_to_right) for column, base, c in page.comparisons]
    for column in page.columns:
        if f := draft_flips(column.headline.values()):
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
    return png(fig)


def letter_bars(page: Page) -> str:
    """Share of each letter among a column's answers (unparsed in grey), under the answer key's own shares."""
    plt = pyplot()
    letters = [k for k in LETTERS if any(k in q.options for q in page.questions.values())]
    rows: list[tuple[str, list[str | None]]] = [
        ("answer key", [q.answer for q in page.questions.values() if not q.multi])
    ]
    rows += [(c.title, [p.answer for p in c.headline.values() if p.parse_status != "error"]) for c in page.columns]
    colours = plt.get_cmap("Set2")
    fig, ax = plt.subplots(figsize=(9, 0.8 + 0.36 * len(rows)))
    for i, (_, answers) in enumerate(rows):
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
    ax.set_xlabel("share of answers (?: no option named: unparsed or truncated)")
    fig.tight_layout()
    return png(fig)


# -- the page ---------------------------------------------------------------------------------


def render(page: Page) -> str:
    """The page as one self-contained HTML document."""
    figures = {
        "heatmap": heatmap(page),
        "cost": cost_scatter(page),
        "flips": flip_bars(page),
        "letters": letter_bars(page),
    }
    return TEMPLATES.get_template("report.html.j2").render(
        page=page, figures=figures, flips=_flips(page), questions=_question_items(page)
    )


def _flips(page: Page) -> dict | None:
    """First proposal -> final per chain: each chain's title and what its first proposal is, and one row per outcome
    (label, a count per chain), unparsed first proposals in their own row. None without chains."""
    chains = [(c, f) for c in page.columns if (f := draft_flips(c.headline.values()))]
    if not chains:
        return None
    counts = [flip_rows(f, "first proposal") for _, f in chains]
    return {
        "chains": [(c.title, f.first) for c, f in chains],
        "rows": [(label, [r[i][1] for r in counts]) for i, (label, _) in enumerate(counts[0])],
    }


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


def _question_items(page: Page) -> list[dict]:
    """Per question, in run order: its anchor, whether the columns disagree on it, and each column's prediction."""
    from agents.prompts import render_question

    anchor = anchors(list(page.questions))
    items = []
    for qid, q in page.questions.items():
        found = [c.predictions.get(qid) for c in page.columns]
        text = render_question(q)
        items.append({
            "id": qid, "question": q, "anchor": anchor[qid],
            "differ": len({p.correct if p else None for p in found}) > 1,
            "predictions": [_prediction(c, p, q, text) for c, p in zip(page.columns, found, strict=True)],
        })  # fmt: skip
    return items


def _prediction(column: Column, p: Prediction | None, question: Question, question_text: str) -> dict:
    """A column's answer to a question: its summary line and every step of its trace."""
    from agents.nodes.vote import tally

    if p is None:
        return {"title": column.title, "p": None}
    first = p.first_proposal or None
    info = [
        f"answer by {p.answer_method}" if p.answer else "",
        f"{len(p.trace)} step{'s' if len(p.trace) != 1 else ''}",
        f"{p.seconds:.1f} s",
    ]
    if (votes := p.extras.get("votes")) is not None:
        info.append("votes " + ", ".join(f"{k} {v}" for k, v in tally(votes).items()))
    if p.error:
        info.append(f"error: {p.error}")
    steps, previous = [], None
    for i, step in enumerate(p.trace, start=1):
        steps.append(_step(step, previous, question, question_text, i))
        if step.passages is None:
            previous = step
    return {"title": column.title, "p": p, "first": first, "info": " · ".join(i for i in info if i), "steps": steps}


def _step(step: TraceStep, previous: TraceStep | None, question: Question, question_text: str, index: int) -> dict:
    """One node's call: its prompt, retrieved passages, output and next-token scores, with what it cost."""
    from agents.answer import parse_letter

    facts = [
        f"{step.prompt_tokens} prompt tokens ({step.prompt_tokens_evaluated} evaluated)",
        f"{step.completion_tokens} generated"
        + (f" ({step.reasoning_tokens} thinking)" if step.reasoning_tokens else ""),
        f"{step.seconds:.2f} s",
    ]
    scores = None
    if step.scores:  # (letter, probability renormalised over the options, whether it is the best)
        from scipy.special import softmax

        best = max(step.scores, key=step.scores.__getitem__)
        shares = softmax(list(step.scores.values()))
        scores = [(k, float(share), k == best) for k, share in zip(step.scores, shares, strict=True)]
    elif step.passages is None:
        named = parse_letter(step.output, question.letters)
        facts.append(f"names {named}" if named else "names no option")
    return {
        "title": f"{index}. {step.node}",
        "facts": " · ".join(facts),
        "prompt": None if step.passages is not None else _prompt(step.messages, previous, question_text),
        "query": (step.messages[0].content if step.messages else "")[:200],
        "passages": step.passages,
        "output": step.output,
        "scores": scores,
        # A reasoning model's thinking, shown apart from the output the answer is read from (never parsed).
        "reasoning": step.reasoning,
        "reasoning_finished": step.reasoning_finished,
        "finish_reason": step.finish_reason,
    }


def _prompt(messages: Sequence[Message], previous: TraceStep | None, question_text: str) -> dict:
    """What the step's prompt adds to the previous step's conversation (all of it for the first step): how many
    messages it shares with it, and each new message's text split around the question (shown above already)."""
    shared = 0
    if previous:
        for a, b in zip(previous.messages, messages, strict=False):
            if a != b:
                break
            shared += 1
    return {
        "shared": shared,
        "messages": [
            {
                "role": m.role,
                "reply_above": previous is not None and m.role == "assistant" and m.content == previous.output,
                "parts": m.content.split(question_text)
                if question_text and question_text in m.content
                else [m.content],
            }
            for m in messages[shared:]
        ],
    }
