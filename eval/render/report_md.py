"""report.md: a run's summary (eval.results.report) as Markdown."""

from __future__ import annotations

from collections.abc import Sequence

from eval.core.schema import BUDGET_WARNING, SPECIALTIES, Comparison, Engine, GraphSummary, RunSummary
from eval.render.fmt import accuracy_text, diff_text, finding, model_text, p_value, pct, table
from eval.results.analysis import NEAR_TIE_NATS, flip_rows, key_text, over_budget
from eval.results.report import LEVELS, batching_note
from graphs import GraphSpec, UnknownGraph


def _breakdown(title: str, keys: Sequence[str], summary: RunSummary, attr: str) -> str:
    present = [k for k in keys if any(k in getattr(g, attr) for g in summary.graphs)]
    what = title.split()[-1]
    if not present:  # data without the column: say so rather than draw an empty table
        return f"## {title}\n\nNo question of this run has a {what}."
    rows = [[k, *(accuracy_text(getattr(g, attr).get(k)) for g in summary.graphs)] for k in present]
    text = f"## {title}\n\n" + table([what, *(g.graph for g in summary.graphs)], rows)
    if "other" in present:
        text += (
            "\n\nother: questions whose department is none of the seven specialties, or not given; "
            "`python -m eval.data inspect DATA` lists their department names, and a --mapping file maps more."
        )
    return text


def _coverage(summary: RunSummary) -> str:
    """Which questions the headline counts, and what the answer key alone would score on them."""
    lines = [f"Scored: {summary.scored} of {summary.questions} questions, the same for every graph."]
    if summary.multi:
        lines[0] += (
            f" {summary.multi[0].exact.total} multi-answer questions are scored apart (below), not in the headline."
        )
    if summary.dropped:
        lines[0] += " Left out: " + "; ".join(f"{n} ({why})" for why, n in summary.dropped.items()) + "."
    if summary.bad_records:
        lines.append(f"{summary.bad_records} malformed records were skipped when loading (--skip-bad).")
    if permanent := sum(g.permanent_errors for g in summary.graphs):
        lines.append(
            f"{permanent} predictions ended in a permanent error (a prompt that can never fit the context window): "
            "retrying cannot help, so a resume does not; shorten those questions or raise --n-ctx."
        )
    if key := summary.key:
        lines.append(key_text(key))
    return "\n\n".join(lines)


def render_markdown(summary: RunSummary) -> str:
    model = f"Model `{summary.model}`" + (f" ({model_text(summary.model_info)})" if summary.model_info else "")
    model += "".join(f" · {role} `{m}`" for role, m in summary.roles.items())
    parts = [
        f"# {' vs '.join(g.graph for g in summary.graphs)}",
        f"{model} · data `{summary.data}` · {summary.questions} questions. "
        "Accuracy with Wilson 95% intervals; unparsed and truncated answers count as wrong; "
        "errors are excluded; a resume retries them, except permanent ones. Near-ties: answers whose two best "
        f"options' log-probabilities were at most {NEAR_TIE_NATS:g} nats apart, which another engine, build or "
        "batch may flip.",
        _coverage(summary),
        "## Overall\n\n"
        + table(
            [
                "graph",
                "accuracy [95% CI] (correct/n)",
                f"near-ties ≤{NEAR_TIE_NATS:g} nats",
                "unparsed",
                "truncated",
                "errors",
                "calls/q",
                "prompt tok/q",
                "evaluated tok/q",
                "completion tok/q",
                "s/q",
            ],
            [
                [
                    g.graph,
                    accuracy_text(g.overall),
                    g.near_ties,
                    g.unparsed,
                    g.truncated,
                    g.errors,
                    f"{g.calls_per_q:.1f}",
                    f"{g.prompt_tokens_per_q:.0f}",
                    f"{g.prompt_tokens_evaluated_per_q:.0f}",
                    _completion(g),
                    f"{g.seconds_per_q:.2f}",
                ]
                for g in summary.graphs
            ],
        ),
        *_budget_markdown(summary),
        _breakdown("By specialty", SPECIALTIES, summary, "by_specialty"),
        _breakdown("By level", LEVELS, summary, "by_level"),
    ]
    for c in summary.comparisons:
        parts.append(
            f"## {c.graph} vs {c.baseline} (paired, n={c.n})\n\n"
            + table(
                ["", f"{c.baseline} right", f"{c.baseline} wrong"],
                [
                    [f"{c.graph} right", c.both_right, c.wrong_to_right],
                    [f"{c.graph} wrong", c.right_to_wrong, c.both_wrong],
                ],
            )
            + f"\n\n{finding(c)}\n\nThe interval is a paired bootstrap 95% interval, the p exact McNemar's on the "
            f"flips: {c.right_to_wrong} right→wrong, {c.wrong_to_right} wrong→right. "
            f"Unparsed (counted wrong): {c.graph} {c.unparsed}, {c.baseline} {c.baseline_unparsed}; "
            f"truncated (counted wrong): {c.graph} {c.truncated}, {c.baseline} {c.baseline_truncated}."
        )
    if summary.circular:
        parts.append(_circular_markdown(summary))
    if summary.multi:
        parts.append(_multi_markdown(summary))
    for g in summary.graphs:
        if f := g.draft_to_final:
            parts.append(
                f"## {g.graph}: {f.first} → final answer\n\n" + table([f"{f.first} → final", "questions"], flip_rows(f))
            )
    if summary.engine:
        parts.append(_serving(summary, summary.engine))
    return "\n\n".join(parts) + "\n"


def _completion(g: GraphSummary) -> str:
    """Generated tokens per question, with the thinking among them where a reasoning model thought."""
    text = f"{g.completion_tokens_per_q:.0f}"
    return text + f" ({g.reasoning_tokens_per_q:.0f} thinking)" if g.reasoning_tokens_per_q else text


def _budget_markdown(summary: RunSummary) -> list[str]:
    """Per graph and node, the generated outputs that stopped at their token budget: cut, so whatever they would
    have said next (an answer, the rest of a critique) is missing."""
    rows = [
        [g.graph, node, b.outputs, f"{b.hit} ({100 * b.share:.0f}%)" + (" ⚠" if b.share > BUDGET_WARNING else "")]
        for g in summary.graphs
        for node, b in g.budget.items()
    ]
    if not rows:
        return []
    text = (
        "## Token budgets\n\nGenerated outputs that stopped at their token budget (cut before they ended).\n\n"
        + table(["graph", "node", "outputs", "at the budget"], rows)
    )
    if flagged := [(g.graph, node) for g in summary.graphs for node in over_budget(g.budget)]:
        names = ", ".join(f"{graph} {node}" for graph, node in flagged)
        flags = ", ".join(
            f"{flag} for {graph} {node}" if (flag := budget_flag(graph, node)) else f"{graph} {node}'s budget"
            for graph, node in flagged
        )
        text += (
            f"\n\n⚠ More than {100 * BUDGET_WARNING:.0f}% of outputs hit the budget ({names}): the budget is too small "
            f"for this model; raise {flags} (a reasoning model's thinking has its own, --thinking-tokens)."
        )
    return [text]


def budget_flag(graph: str, node: str) -> str:
    """The flag that sets the token budget of `graph`'s `node` ("" for a graph this version does not know)."""
    try:
        return GraphSpec.parse(graph).strategy.budget_flag(node)
    except UnknownGraph:
        return ""


def _circular_markdown(summary: RunSummary) -> str:
    rows = [
        [
            c.graph,
            c.n,
            accuracy_text(c.original),
            pct(c.every_rotation),
            accuracy_text(c.circular),
            accuracy_text(c.consistent),
            pct(c.agreement),
            diff_text(c.versus_original),
        ]
        for c in summary.circular
    ]
    header = [
        "graph", "questions", "original order [95% CI]", "all rotations' answers", "circular: right under every "
        "rotation [95% CI]", "same option under every rotation [95% CI]", "agreement", "circular − original, points",
    ]  # fmt: skip
    text = (
        "## Circular evaluation\n\nEach question asked under every rotation of its options (OpenCompass's "
        "CircularEval), on the questions every graph answered under all of them. Circular: right under every "
        "rotation; same option: the same content chosen every time, right or wrong; agreement: the share of "
        "rotations that chose each question's most chosen option, averaged; circular − original: paired, with a "
        "bootstrap 95% interval.\n\n" + table(header, rows)
    )
    if summary.circular_comparisons:
        text += "\n\n" + _comparisons("circular accuracy", summary.circular_comparisons)
    return text


def _comparisons(what: str, comparisons: list[Comparison]) -> str:
    """Paired comparisons against the baseline on `what`, one row each."""
    header = [what, "n", "Δ, points [95% CI]", "McNemar p", "Holm p", "flips r→w / w→r"]
    return table(
        header,
        [
            [f"{c.graph} vs {c.baseline}", c.n, diff_text(c), p_value(c.mcnemar_p), p_value(c.holm_p),
             f"{c.right_to_wrong} / {c.wrong_to_right}"]
            for c in comparisons
        ],
    ) + "".join(f"\n\n{finding(c)}" for c in comparisons)  # fmt: skip


def _multi_markdown(summary: RunSummary) -> str:
    rows = [[m.graph, accuracy_text(m.exact), f"{100 * m.partial:.1f}%", m.unparsed] for m in summary.multi]
    text = (
        "## Multi-answer questions\n\nScored apart from the headline. Exact: the whole set of letters right (CMB's "
        "own scorer compares answers as strings). Partial credit (ours): the share of the key's letters chosen when "
        "no chosen letter is wrong, else 0.\n\n"
        + table(["graph", "exact [95% CI] (correct/n)", "partial credit", "unparsed"], rows)
    )
    if summary.multi_comparisons:
        text += "\n\n" + _comparisons("exact match", summary.multi_comparisons)
    return text


def _serving(summary: RunSummary, engine: Engine) -> str:
    scored = summary.scored * len(summary.graphs)
    lines = [f"## Engine\n\n{engine.describe()}."]
    if summary.batched:
        lines.append(batching_note(summary.batched, scored))
    elif scored:
        why = "one request at a time" if not engine.batches else "one question at a time"
        lines.append(f"No prediction shared a batch with another question ({why}): answers do not depend on timing.")
    if set(summary.methods) - {"next_token", "none"}:
        counts = ", ".join(f"{method} {n}" for method, n in sorted(summary.methods.items()))
        lines.append(
            f"Letters committed by: {counts} (next_token: the options' probabilities; grammar, json: a server's "
            "constrained answer, with no probabilities; regex: parsed from generated text)."
        )
    if d := summary.determinism:
        per_graph = ", ".join(f"{g} {len(d.changed[g])} of {n}" for g, n in d.compared.items())
        lines.append(
            f"Determinism check: {sum(d.compared.values())} answers re-made at concurrency 1 ({d.shared_batch} of "
            f"them first made sharing a batch); {d.total_changed} changed ({per_graph})."
        )
    return "\n\n".join(lines)
