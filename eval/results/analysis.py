"""Facts about a set of predictions that the Markdown report, the ablation table and the HTML report all show.

Each is computed here once, so the three cannot disagree.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from eval.core.schema import (
    ALPHA,
    BUDGET_WARNING,
    POWER,
    Accuracy,
    AnswerKey,
    BudgetHits,
    Circular,
    Comparison,
    Flips,
    Prediction,
    Question,
    rotation_of,
    summed_costs,
)
from eval.core.shuffle import unrotated_letter
from eval.core.stats import (
    LetterBias,
    holm,
    letter_bias,
    mcnemar_exact,
    min_detectable_difference,
    paired_bootstrap_diff,
    paired_counts,
    wilson_interval,
)


def accuracy(predictions: Iterable[Prediction]) -> Accuracy:
    outcomes = [p.correct for p in predictions]
    return share(sum(outcomes), len(outcomes))


def share(k: int, n: int) -> Accuracy:
    """k of n, with its Wilson 95% interval."""
    low, high = wilson_interval(k, n)
    return Accuracy(correct=k, total=n, accuracy=k / n if n else 0.0, ci_low=low, ci_high=high)


# Options' log-probabilities this close are an answer another engine, build or batch may flip: llama.cpp builds and
# batch shapes moved SmolLM2's and the 0.5B's letter scores by several hundredths of a nat.
NEAR_TIE_NATS = 0.01


def near_ties(predictions: Iterable[Prediction], within: float = NEAR_TIE_NATS) -> int:
    """Answers chosen by next-token scores whose two best options were at most `within` nats apart, read from the
    answer's scoring step (the trace's last with scores; pride's before its prior is removed)."""
    count = 0
    for p in predictions:
        scored = [step.scores for step in p.trace if step.scores]
        if p.answer_method != "next_token" or not scored:
            continue
        best = sorted((v for v in scored[-1].values() if math.isfinite(v)), reverse=True)
        count += len(best) > 1 and best[0] - best[1] <= within
    return count


def regrade(prediction: Prediction, question: Question) -> Prediction:
    """The prediction graded against the current key: a corrected answer file changes the numbers, not the run."""
    if prediction.gold == question.answer:
        return prediction
    return prediction.model_copy(update={"gold": question.answer, "correct": prediction.answer == question.answer})


def paired(
    graph: str,
    baseline: str,
    chain: Mapping[str, Prediction],
    base: Mapping[str, Prediction],
    ids: Sequence[str] | None = None,
    *,
    resamples: int = 2000,
    seed: int = 0,
) -> Comparison:
    """`chain` against `base` (predictions by question id) on the same questions: `ids`, or by default every
    question both answered without an error, in id order. The one paired comparison every report shows."""
    if ids is None:
        ids = sorted(
            q for q in chain.keys() & base.keys() if "error" not in (chain[q].parse_status, base[q].parse_status)
        )
    before, after = [base[q].correct for q in ids], [chain[q].correct for q in ids]
    counts = paired_counts(before, after)
    diff, low, high = paired_bootstrap_diff(before, after, resamples=resamples, seed=seed)
    return Comparison(
        graph=graph,
        baseline=baseline,
        n=counts.n,
        both_right=counts.both_right,
        both_wrong=counts.both_wrong,
        right_to_wrong=counts.right_to_wrong,
        wrong_to_right=counts.wrong_to_right,
        difference=diff,
        diff_ci_low=low,
        diff_ci_high=high,
        mcnemar_p=mcnemar_exact(counts.right_to_wrong, counts.wrong_to_right),
        unparsed=sum(chain[q].parse_status == "unparsed" for q in ids),
        baseline_unparsed=sum(base[q].parse_status == "unparsed" for q in ids),
        truncated=sum(chain[q].parse_status == "truncated" for q in ids),
        baseline_truncated=sum(base[q].parse_status == "truncated" for q in ids),
    )


@dataclass(frozen=True)
class Pairing:
    """One comparison of a family: `chain` against `base` (predictions by question id), on `ids` (default: every
    question both answered without an error)."""

    graph: str
    baseline: str
    chain: Mapping[str, Prediction]
    base: Mapping[str, Prediction]
    ids: Sequence[str] | None = None


def compare_family(pairings: Iterable[Pairing], *, resamples: int = 2000, seed: int = 0) -> list[Comparison]:
    """Every pairing compared (`paired`: difference, paired bootstrap interval, exact McNemar), the McNemar p-values
    Holm-adjusted over the family, and the smallest difference each could have detected at the level Holm's first
    step holds the family to: what report.md, the ablation table, the leaderboard, the HTML pages and position_bias
    all show."""
    found = [paired(p.graph, p.baseline, p.chain, p.base, p.ids, resamples=resamples, seed=seed) for p in pairings]
    for c, adjusted in zip(found, holm([c.mcnemar_p for c in found]), strict=True):
        c.holm_p = adjusted
        c.min_detectable = min_detectable_difference(c.n, c.discordance, ALPHA / len(found), POWER)
    return found


def partial_credit(answer: str | None, key: str) -> float:
    """A multi-answer question's credit: the share of the key's letters chosen when no chosen letter is wrong, else
    0 (a wrong letter costs the whole question, as on the exams; missing ones cost their share)."""
    if not answer or not set(answer) <= set(key):
        return 0.0
    return len(set(answer)) / len(set(key))


def draft_flips(predictions: Iterable[Prediction]) -> Flips | None:
    """What a chain's later steps (critique and extraction, or voting) did to its first proposal.

    None for graphs that record no first proposal. Errors are left out. A first proposal that named no letter
    is counted apart as unparsed: it has no answer to keep or change, so it is neither a change nor a flip.
    """
    chained = [p for p in predictions if p.parse_status != "error" and p.first_proposal]
    if not chained:
        return None
    first = chained[0].first_proposal
    parsed = [p for p in chained if p.draft_answer]
    return Flips(
        first=first,
        n=len(chained),
        unparsed=len(chained) - len(parsed),
        cut=sum(p.draft_cut for p in chained if not p.draft_answer),
        changed=sum(p.draft_answer != p.answer for p in parsed),
        right_to_wrong=sum(p.draft_answer == p.gold and not p.correct for p in parsed),
        wrong_to_right=sum(p.draft_answer != p.gold and p.correct for p in parsed),
    )


def flip_rows(flips: Flips, first: str = "") -> list[tuple[str, int]]:
    """The first proposal -> final breakdown as (row, questions), the first proposal called `first` (default: what
    it is, e.g. draft); the rows but the last add up to flips.n."""
    return [
        ("unchanged", flips.n - flips.unparsed - flips.changed),
        ("changed: right → wrong", flips.right_to_wrong),
        ("changed: wrong → right", flips.wrong_to_right),
        ("changed: wrong → another wrong", flips.changed - flips.right_to_wrong - flips.wrong_to_right),
        (f"{first or flips.first} cut at its token budget", flips.cut),
        (f"{first or flips.first} named no option", flips.unparsed - flips.cut),
        ("total", flips.n),
    ]


def budget_hits(predictions: Iterable[Prediction]) -> dict[str, BudgetHits]:
    """Per node, its generated outputs and how many stopped at their token budget (errors have no outputs)."""
    outputs: Counter[str] = Counter()
    hit: Counter[str] = Counter()
    for p in predictions:
        for step in p.trace:
            if step.finish_reason is not None:
                outputs[step.node] += 1
                hit[step.node] += step.finish_reason == "length"
    return {node: BudgetHits(outputs=n, hit=hit[node]) for node, n in outputs.items()}


def over_budget(budget: Mapping[str, BudgetHits]) -> dict[str, BudgetHits]:
    """The nodes whose outputs hit their budget more often than BUDGET_WARNING: raise its --*-tokens."""
    return {node: b for node, b in budget.items() if b.share > BUDGET_WARNING}


def budget_text(budget: Mapping[str, BudgetHits]) -> str:
    """A graph's outputs at their token budget in one table cell, "draft 3/20 ⚠, critique 0/20" (⚠: over
    BUDGET_WARNING); "–" when it generated nothing (scoring only)."""
    flagged = over_budget(budget)
    return ", ".join(f"{n} {b.hit}/{b.outputs}" + (" ⚠" if n in flagged else "") for n, b in budget.items()) or "–"


def answered_letters(predictions: Iterable[Prediction], questions: Mapping[str, Question]) -> LetterBias:
    """The answered letters (not errors, not unparsed answers) against a uniform guess over each question's options."""
    answered = [
        (p.answer, questions[p.question_id])
        for p in predictions
        if p.parse_status != "error" and p.answer and p.question_id in questions and not questions[p.question_id].multi
    ]
    if any(answer not in question.options for answer, question in answered):
        return LetterBias(None, None, "answers outside the options shown: the questions changed since the run")
    return letter_bias([answer for answer, _ in answered], [question.letters for _, question in answered])


def letter_p_text(p: float | None, why: str) -> str:
    """The letter test's p for a table cell; where the χ² approximation does not hold, where to look instead."""
    if p is not None:
        return f"{p:.3g}"
    return "–, too few answers; see python -m eval.position_bias" if why.startswith("expected count") else "–"


def answer_key(questions: Sequence[Question]) -> AnswerKey:
    """What the key alone would score: its letters, the best constant letter, and a uniform guess."""
    letters = Counter(q.answer for q in questions)
    best = max(sorted(letters), key=letters.__getitem__, default=None)  # ties: the earliest letter
    return AnswerKey(
        letters=dict(sorted(letters.items())),
        best_constant_letter=best,
        best_constant_accuracy=letters[best] / len(questions) if best else 0.0,
        chance=sum(1 / len(q.options) for q in questions) / len(questions) if questions else 0.0,
    )


def key_text(key: AnswerKey) -> str:
    """The key's line in every report: a model must beat both baselines to have learned anything."""
    letters = " · ".join(f"{letter} {n}" for letter, n in key.letters.items())
    return (
        f"Answer key: {letters}. Always answering {key.best_constant_letter} would score "
        f"{100 * key.best_constant_accuracy:.1f}%; a uniform guess scores {100 * key.chance:.1f}%."
    )


def collapse_rotations(
    predictions: Mapping[str, Prediction], questions: Mapping[str, Question]
) -> dict[str, Prediction]:
    """A --circular run's predictions (by rotated question id) as one per original question (by its id): correct
    when every rotation is right; the answer, as an original letter, when every rotation chose the same option
    (else None); costs summed over the rotations; extras["rotations"] the original letter each rotation chose.

    A question is left out until every rotation has a prediction without an error (as summarize leaves it out).
    """
    groups: dict[str, dict[int, Prediction]] = {}
    for qid, p in predictions.items():
        base, r = rotation_of(qid)
        groups.setdefault(base, {})[r] = p
    collapsed = {}
    for base, by_rotation in groups.items():
        question = questions.get(base)
        if question is None or len(by_rotation) < len(question.options):
            continue
        preds = [by_rotation[r] for r in range(len(question.options))]
        if any(p.parse_status == "error" for p in preds):
            continue
        chosen = [unrotated_letter(p.answer, len(question.options), r) for r, p in enumerate(preds)]
        consistent = len(set(chosen)) == 1 and chosen[0] is not None
        collapsed[base] = preds[0].model_copy(
            update={
                "answer": chosen[0] if consistent else None,
                "gold": question.answer,
                "correct": all(p.correct for p in preds),
                "parse_status": next(
                    (status for status in ("unparsed", "truncated") if any(p.parse_status == status for p in preds)),
                    "ok",
                ),
                "draft_answer": None,
                "first_proposal": "",
                "extras": {"rotations": chosen},
                "trace": [],
                **summed_costs(preds),
            }
        )
    return collapsed


def charge_rotations(predictions: Mapping[str, Prediction]) -> dict[str, Prediction]:
    """A --circular run's original-order predictions (by rotated question id in, by original id out), each with
    the costs of every rotation of its question made so far: the headline's answer is the original order's, its
    calls, tokens and seconds all the question caused."""
    groups: dict[str, list[Prediction]] = {}
    for qid, p in predictions.items():
        groups.setdefault(rotation_of(qid)[0], []).append(p)
    return {
        qid: p.model_copy(update=summed_costs(groups[qid]))
        for qid, p in predictions.items()
        if rotation_of(qid)[1] == 0
    }


def circular_summary(
    graph: str,
    predictions: Mapping[str, Prediction],
    questions: Mapping[str, Question],
    ids: Sequence[str],
    collapsed: Mapping[str, Prediction] | None = None,
) -> Circular:
    """CircularEval's numbers for one graph over the original questions `ids` (every rotation answered), from its
    predictions by rotated id; `questions` holds the originals by id."""
    collapsed = collapse_rotations(predictions, questions) if collapsed is None else collapsed  # the caller's
    originals = {q: predictions[q] for q in ids}
    circled = [collapsed[q] for q in ids]
    # Per question, how often its most chosen option was chosen; a rotation that named none agrees with nothing.
    agreeing = [max(Counter(x for x in p.extras["rotations"] if x).values(), default=0) for p in circled]
    wanted = set(ids)
    every = [p.correct for qid, p in predictions.items() if rotation_of(qid)[0] in wanted]
    return Circular(
        graph=graph,
        n=len(ids),
        original=accuracy(originals.values()),
        every_rotation=sum(every) / len(every) if every else 0.0,
        circular=accuracy(circled),
        consistent=share(sum(p.answer is not None for p in circled), len(circled)),
        agreement=sum(k / len(p.extras["rotations"]) for k, p in zip(agreeing, circled, strict=True)) / len(circled)
        if circled
        else 0.0,
        versus_original=paired(graph, graph, collapsed, originals, ids),
    )
