"""From predictions to a summary with honest statistics, rendered as Markdown."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from eval.core.schema import (
    BUDGET_WARNING,
    SPECIALTIES,
    Comparison,
    Engine,
    GraphSummary,
    MultiAnswers,
    Prediction,
    Question,
    RunSummary,
)
from eval.render.fmt import accuracy_text, diff_text, finding, model_text, p_value, pct, table
from eval.results.analysis import (
    NEAR_TIE_NATS,
    Pairing,
    accuracy,
    answer_key,
    budget_hits,
    circular_summary,
    compare_family,
    draft_flips,
    flip_rows,
    key_text,
    near_ties,
    over_budget,
    partial_credit,
)
from eval.results.graded import GradedRun, grade

LEVELS = ("attending", "senior")


def _per_question(predictions: Sequence[Prediction], key: str) -> float:
    return sum(getattr(p, key) for p in predictions) / len(predictions) if predictions else 0.0


def summarize_graph(
    graph: str, predictions: dict[str, Prediction], questions: dict[str, Question], scored_ids: Sequence[str]
) -> GraphSummary:
    """`predictions` by question id; accuracy and costs over `scored_ids`, the questions every graph answered."""
    scored = [predictions[qid] for qid in scored_ids]

    def where(attr: str, value: str) -> list[Prediction]:
        return [p for p in scored if getattr(questions[p.question_id], attr) == value]

    return GraphSummary(
        graph=graph,
        overall=accuracy(scored),
        near_ties=near_ties(scored),
        by_specialty={s: accuracy(where("specialty", s)) for s in SPECIALTIES if where("specialty", s)},
        by_level={lv: accuracy(where("level", lv)) for lv in LEVELS if where("level", lv)},
        unparsed=sum(p.parse_status == "unparsed" for p in scored),
        truncated=sum(p.parse_status == "truncated" for p in scored),
        errors=sum(p.parse_status == "error" for p in predictions.values()),
        permanent_errors=sum(p.parse_status == "error" and p.final for p in predictions.values()),
        budget=budget_hits(scored),
        reasoning_tokens_per_q=_per_question(scored, "reasoning_tokens"),
        draft_to_final=draft_flips(scored),
        prompt_tokens_per_q=_per_question(scored, "prompt_tokens"),
        prompt_tokens_evaluated_per_q=_per_question(scored, "prompt_tokens_evaluated"),
        completion_tokens_per_q=_per_question(scored, "completion_tokens"),
        seconds_per_q=_per_question(scored, "seconds"),
        calls_per_q=_per_question(scored, "model_calls"),
    )


def summarize(
    model: str,
    data: str,
    graphs: Sequence[str],
    baseline: str | None,
    questions: Sequence[Question],
    predictions: Iterable[Prediction],
    *,
    bad_records: int = 0,
    engine: Engine | None = None,
    circular: bool = False,
) -> RunSummary:
    """`predictions` of `graphs` on `questions` (the originals; under `circular`, asked under every rotation of
    their options), graded (eval.results.graded.grade) and summarized (`summarize_run`)."""
    run = grade(predictions, {q.id: q for q in questions}, graphs, circular=circular)
    return summarize_run(model, data, run, baseline, bad_records=bad_records, engine=engine)


def summarize_run(
    model: str,
    data: str,
    run: GradedRun,
    baseline: str | None,
    *,
    bad_records: int = 0,
    engine: Engine | None = None,
) -> RunSummary:
    """Every graph is scored on the same questions: those with a result from all of them.

    A question one graph could not answer (an error, retried on resume) leaves every graph's headline, so an
    error never moves one denominator and the headline and the paired comparison count the same questions.
    Under --circular the headline is the original order's, and RunSummary.circular adds CircularEval's numbers.
    """
    graphs = list(run.graphs)
    wanted = run.questions
    by_graph = {g: run.graphs[g].original for g in graphs}
    dropped: Counter[str] = Counter()
    scored_ids = []
    for qid in wanted:
        missing = [f"no result yet from {g}" for g in graphs if qid not in by_graph[g]]
        failed = [
            f"{'permanent error' if p.final else 'error'} in {g}"
            for g in graphs
            if (p := by_graph[g].get(qid)) and p.parse_status == "error"
        ]
        dropped.update(missing + failed)
        if not missing and not failed:
            scored_ids.append(qid)
    # Multi-answer questions are scored apart: the headline (and its comparisons) is single-answer accuracy.
    single = run.single
    multi_ids = [q for q in scored_ids if q not in single]
    scored_ids = [q for q in scored_ids if q in single]

    def against_baseline(found: dict[str, dict[str, Prediction]], ids: list[str]) -> list[Comparison]:
        if not baseline:
            return []
        others = [g for g in graphs if g != baseline]
        return compare_family(Pairing(g, baseline, found[g], found[baseline], ids) for g in others)

    circled = [g.circled for g in run.graphs.values()]
    circular_ids = [q for q in single if all(q in c for c in circled)]
    return RunSummary(
        model=model,
        data=data,
        questions=len(wanted),
        scored=len(scored_ids),
        dropped=dict(dropped),
        bad_records=bad_records,
        key=answer_key([wanted[qid] for qid in scored_ids]),
        graphs=[summarize_graph(g, by_graph[g], wanted, scored_ids) for g in graphs],
        comparisons=against_baseline(by_graph, scored_ids),
        engine=engine,
        batched=sum(by_graph[g][qid].shared_batch for g in graphs for qid in scored_ids),
        methods=dict(Counter(by_graph[g][qid].answer_method for g in graphs for qid in scored_ids)),
        # --circular: CircularEval's numbers on the single-answer questions every graph answered under every
        # rotation, and each graph's circular accuracy against the baseline's, paired.
        circular=[
            circular_summary(g, run.graphs[g].rotations, single, circular_ids, run.graphs[g].circled) for g in graphs
        ]
        if run.circular
        else [],
        circular_comparisons=against_baseline({g: run.graphs[g].circled for g in graphs}, circular_ids)
        if run.circular
        else [],
        multi=[_multi(g, by_graph[g], wanted, multi_ids) for g in graphs] if multi_ids else [],
        multi_comparisons=against_baseline(by_graph, multi_ids) if multi_ids else [],
    )


def _multi(graph: str, predictions: dict[str, Prediction], questions: dict[str, Question], ids: list[str]):
    chosen = [predictions[q] for q in ids]
    return MultiAnswers(
        graph=graph,
        exact=accuracy(chosen),
        partial=sum(partial_credit(p.answer, questions[p.question_id].answer) for p in chosen) / len(chosen),
        unparsed=sum(p.parse_status == "unparsed" for p in chosen),
    )


# -- Markdown -------------------------------------------------------------------------------


def _breakdown(title: str, keys: Sequence[str], summary: RunSummary, attr: str) -> str:
    present = [k for k in keys if any(k in getattr(g, attr) for g in summary.graphs)]
    rows = [[k, *(accuracy_text(getattr(g, attr).get(k)) for g in summary.graphs)] for k in present]
    return f"## {title}\n\n" + table([title.split()[-1], *(g.graph for g in summary.graphs)], rows)


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
        text += (
            f"\n\n⚠ More than {100 * BUDGET_WARNING:.0f}% of outputs hit the budget ({names}): the budget is too small "
            "for this model; raise that node's token budget (--draft-tokens, --critique-tokens; for a reasoning "
            "model's thinking, --thinking-tokens)."
        )
    return [text]


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


def batching_note(batched: int, scored: int) -> str:
    return (
        f"{batched} of {scored} predictions were made while another question shared the engine's batch: batched "
        "decoding takes another floating-point path, so greedy answers can differ from a run at concurrency 1 "
        "(`--check-determinism K` measures how many)."
    )


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
