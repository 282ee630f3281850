"""From predictions to a run's summary with honest statistics (eval.render.report_md writes it as report.md)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from eval.core.schema import (
    SPECIALTIES,
    Comparison,
    Engine,
    GraphSummary,
    MultiAnswers,
    Prediction,
    Question,
    RunSummary,
)
from eval.results.analysis import (
    Pairing,
    accuracy,
    answer_key,
    budget_hits,
    circular_summary,
    compare_family,
    draft_flips,
    near_ties,
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


def batching_note(batched: int, scored: int) -> str:
    return (
        f"{batched} of {scored} predictions were made while another question shared the engine's batch: batched "
        "decoding takes another floating-point path, so greedy answers can differ from a run at concurrency 1 "
        "(`--check-determinism K` measures how many)."
    )
