"""The leaderboard: models x strategies on the same questions, and the statistics that decide claims about them.

A leaderboard (TOML, `Board`: eval.plans.board) lists models (GGUF paths, packaged names, or OpenAI-compatible
endpoints) and strategies; each (model, strategy) is one ordinary evaluator run in OUT/MODEL/STRATEGY
(eval.plans.campaign runs them). `analyse` reads those run directories and computes, on the questions every finished
run answered:

- accuracy per model overall and per specialty x level (Wilson intervals), and each model's facts (architecture,
  total and active parameters, experts, quantization, file size) from its GGUF or as the leaderboard declares them;
- per run, what it cost: unparsed and truncated answers, each node's outputs at their token budget, tokens per
  question (thinking among them) and, at the prices its facts declare, dollars per question and per correct answer;
- ranks with a 95% bootstrap interval, per strategy;
- every pair of models under the same strategy: paired difference with a bootstrap interval, exact McNemar p, Holm
  over every pair; "A beats B" only where the adjusted p is below 0.05, otherwise the smallest difference the pair
  could have detected at 80% power;
- size against accuracy: Spearman's rho by total and by active parameters; MoE against dense models;
- each strategy against the baseline strategy per model, and whether its gain trends with the model's strength;
- calibration of the option probabilities of scoring strategies: ECE, Brier score, accuracy at coverage.

Sections: reading the runs, the typed analysis (`analyse` -> Leaderboard); the spec (Board, its entries and their
facts) is eval.plans.board. eval.render.board_table writes it as Markdown, JSON and CSV; eval.render.board_page draws
it as HTML.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

from pydantic import BaseModel, Field, computed_field

from eval.core.schema import (
    Accuracy,
    AnswerKey,
    BudgetHits,
    Comparison,
    Prediction,
    Question,
    RunConfig,
)
from eval.core.stats import calibration, rank_intervals, spearman
from eval.core.store import finished, graph_predictions
from eval.plans.board import Board, BoardError, Entry, Facts
from eval.plans.plan import read_run, saved_plan
from eval.results.analysis import Pairing, accuracy, answer_key, budget_hits, compare_family
from eval.results.graded import grade

LEADERBOARD = "leaderboard"


# -- reading the runs -------------------------------------------------------------------------


@dataclass
class EntryRun:
    entry: Entry
    strategy: str
    out: Path
    status: str = "missing"  # done, failed, missing
    error: str = ""
    config: RunConfig | None = None
    predictions: dict[str, Prediction] = field(default_factory=dict)

    @property
    def model(self) -> str:
        return self.entry.label

    @property
    def manifest(self) -> RunConfig:
        """The manifest of a run that started (done or partial): those have one."""
        assert self.config is not None, f"{self.out}: a run with status {self.status} has no manifest"
        return self.config


def load_run(entry: Entry, strategy: str, out: Path) -> EntryRun:
    """done: every question has a result; partial: unfinished (or with errors) and left out of the statistics;
    failed: the last attempt stopped with an error (its marker says which); missing: never started."""
    run = EntryRun(entry, strategy, out)
    run.config, run.error = read_run(out, entry.mismatch, BoardError)
    if run.config:
        run.predictions = graph_predictions(out, run.config.graphs[0])
        run.status = "done" if finished(run.config, run.predictions) else "partial"
    elif run.error:
        run.status = "failed"
    return run


def facts_of(entry: Entry, config: RunConfig | None) -> Facts | None:
    """The GGUF header as the run's manifest recorded it (or as the file says), with any declared facts replacing
    what it says; for an endpoint, the declared facts alone."""
    declared = entry.facts.model_dump(exclude_unset=True) if entry.facts else {}
    if entry.endpoint()[0] and not entry.model:
        return entry.facts
    info = config.model_info if config and config.model_info else None
    if info is None and entry.model:
        from eval.models import ModelError, resolve_model
        from eval.models.gguf import inspect_gguf

        try:
            info = inspect_gguf(resolve_model(entry.model), sha256=False).model_dump()
        except ModelError:
            return entry.facts
    if not info:
        return entry.facts
    read = {
        "architecture": info.get("architecture", ""),
        "total_params": info.get("total_params") or None,
        "active_params": info.get("active_params") or None,
        "n_experts": info.get("n_experts", 0),
        "n_experts_used": info.get("n_experts_used", 0),
        "quantization": info.get("quantization", ""),
        "file_size": info.get("file_size"),
    }
    return Facts(**(read | declared), source="gguf + declared" if declared else "gguf")


# -- what the leaderboard shows ---------------------------------------------------------------


class Row(BaseModel):
    model: str
    strategy: str
    status: str
    error: str = ""
    run_dir: str
    facts: Facts | None = None
    overall: Accuracy | None = None
    rank: int | None = None
    rank_low: int | None = None
    rank_high: int | None = None
    cells: dict[str, Accuracy] = Field(default_factory=dict)  # "specialty · level" -> accuracy
    unparsed: int = 0
    truncated: int = 0  # named no option because its output was cut (budget, unfinished thinking): counted wrong
    errors: int = 0
    budget: dict[str, BudgetHits] = Field(default_factory=dict)  # node -> its outputs at the token budget
    calls_per_q: float = 0.0
    tokens_per_q: float = 0.0  # prompt tokens evaluated plus generated
    reasoning_tokens_per_q: float = 0.0  # of the generated ones, a reasoning model's thinking
    cost_per_q: float | None = None  # US dollars, at the prices its facts declare (None without them)
    cost_per_correct: float | None = None  # the questions' cost over their correct answers (None: none correct)
    seconds_per_q: float = 0.0
    # Model time over every prediction of the run: model loading and the pool's preprocessing (medprompt's example
    # reasoning, logged apart) not included.
    wall_seconds: float = 0.0


class Pair(BaseModel):
    """Two models under the same strategy on the same questions: the better-ranked (comparison.graph) against the
    other (comparison.baseline); Holm over every pair of every strategy."""

    strategy: str
    comparison: Comparison

    @property
    def verdict(self) -> str:
        c = self.comparison
        if c.significant:
            return f"{c.graph} beats {c.baseline}" if c.difference > 0 else f"{c.baseline} beats {c.graph}"
        if c.min_detectable is None:  # too few questions (or discordant ones) for any difference to show reliably
            return f"no significant difference (none detectable on {c.n} questions)"
        return f"no significant difference (detectable: ±{100 * c.min_detectable:.1f} points)"


class SizeTrend(BaseModel):
    strategy: str
    by: str  # "total" or "active" parameters
    models: list[str]
    rho: float | None
    p: float | None
    ci_low: float | None
    ci_high: float | None


class Groups(BaseModel):
    """MoE against dense models under one strategy; the units are models, so few models test little."""

    strategy: str
    moe: list[str]
    dense: list[str]
    moe_mean: float | None
    dense_mean: float | None
    p: float | None  # two-sided exact Mann-Whitney U over the models' accuracies


class Gain(BaseModel):
    """A strategy (comparison.graph) against the baseline strategy for one model, paired on the same questions; Holm
    over every model and strategy."""

    model: str
    comparison: Comparison

    @computed_field  # type: ignore[prop-decorator]  # mypy cannot type a decorator over @property (pydantic's docs)
    @property
    def strength(self) -> float:
        """The mean of the two accuracies: what the trend is read against."""
        c = self.comparison
        return (2 * c.both_right + c.right_to_wrong + c.wrong_to_right) / (2 * (c.n or 1))


class Trend(BaseModel):
    """Does a strategy's gain fall (or rise) with the model's strength? Kendall's tau over the models: descriptive
    with few models (min_p: the smallest p any ordering of this many models could give)."""

    strategy: str
    n: int
    tau: float | None
    p: float | None
    min_p: float | None = None


class CalibrationRow(BaseModel):
    model: str
    strategy: str
    n: int
    of: int  # the questions compared; n of them had option probabilities
    ece: float
    brier: float
    bins: list[dict]  # low, high, n, confidence, accuracy
    coverage: list[dict]  # threshold, answered, correct


class Leaderboard(BaseModel):
    board: Board
    question_ids: list[str]  # the questions every statistic is computed on
    key: AnswerKey
    rows: list[Row]
    pairs: list[Pair]
    sizes: list[SizeTrend]
    groups: list[Groups]
    gains: list[Gain]
    trends: list[Trend]
    calibration: list[CalibrationRow]
    notes: list[str]


def analyse(board: Board, out: Path) -> Leaderboard:
    """Everything the leaderboard shows, from the run directories under `out`."""
    runs = [load_run(e, s, board.run_dir(out, e, s)) for s in board.strategies for e in board.models]
    done = [r for r in runs if r.status == "done"]
    notes = [f"{r.model} · {r.strategy} did not run: {r.error}" for r in runs if r.status == "failed"]
    notes += [f"{r.model} · {r.strategy} has not run yet" for r in runs if r.status == "missing"]
    notes += [
        f"{r.model} · {r.strategy} is unfinished ({sum(p.parse_status != 'error' for p in r.predictions.values())} of "
        f"{len(r.manifest.question_ids)} questions have a result) and left out of the statistics; run the leaderboard "
        "again to resume it"
        for r in runs
        if r.status == "partial"
    ]
    seen: dict[str, dict[str, Question]] = {}
    for run in done:  # each run graded against the key as it read the questions; a corrected key re-grades it
        mine = _questions(run.manifest, seen)
        # Under --circular, one prediction per question: right when right under every rotation.
        graded = grade(
            run.predictions.values(),
            {q: mine[q] for q in run.manifest.original_ids},
            run.manifest.graphs,
            circular=run.manifest.circular,
        )
        run.predictions = graded.counted(run.manifest.graphs[0])
    order = done[0].manifest.original_ids if done else []
    if board.circular:
        notes.append(
            "every run asked each question under every rotation of its options: every statistic below is circular "
            "accuracy (right under all of them), and costs sum the rotations"
        )
    ids = [q for q in order if all(q in r.predictions and q in _questions(r.manifest, seen) for r in done)]
    if done and len(ids) < len(order):
        notes.append(
            f"{len(order) - len(ids)} of {len(order)} questions are not in every finished run (the runs were made on "
            f"other questions); every statistic uses the {len(ids)} they share"
        )
    # A finished run's errors are permanent (a prompt that can never fit): the question leaves every run's statistics.
    answered = [q for q in ids if all(r.predictions[q].parse_status != "error" for r in done)]
    if len(answered) < len(ids):
        notes.append(
            f"{len(ids) - len(answered)} questions are left out of every statistic: some run can never answer them "
            "(a permanent error: a prompt that cannot fit its context window)"
        )
        ids = answered
    questions = {q: _questions(done[0].manifest, seen)[q] for q in ids}
    if multi := [q for q in ids if questions[q].multi]:  # as in every run's headline: single-answer accuracy
        ids = [q for q in ids if not questions[q].multi]
        questions = {q: questions[q] for q in ids}
        notes.append(
            f"{len(multi)} multi-answer questions are left out of the leaderboard's statistics, as out of every run's "
            "headline; each run's report scores them apart (exact match, partial credit)"
        )
    rs, seed = board.bootstrap_resamples, board.bootstrap_seed
    rows = [_row(r, ids, questions) for r in runs]
    by_strategy = {s: [r for r in done if r.strategy == s] for s in board.strategies}
    for strategy, group in by_strategy.items():
        ranks = rank_intervals([[r.predictions[q].correct for q in ids] for r in group], resamples=rs, seed=seed)
        for run, rank in zip(group, ranks, strict=True):
            row = next(x for x in rows if x.model == run.model and x.strategy == strategy)
            row.rank, row.rank_low, row.rank_high = rank
    rank_of = {(r.model, r.strategy): r.rank or 0 for r in rows}

    ordered = {s: sorted(group, key=lambda r: rank_of[(r.model, s)]) for s, group in by_strategy.items()}
    matched = [(s, a, b) for s, group in ordered.items() for a, b in combinations(group, 2)]
    found = compare_family(
        (Pairing(a.model, b.model, a.predictions, b.predictions, ids) for _, a, b in matched), resamples=rs, seed=seed
    )
    pairs = [Pair(strategy=s, comparison=c) for (s, _, _), c in zip(matched, found, strict=True)]

    facts = {r.model: r.facts for r in rows if r.facts}
    accuracy_of = {(r.model, r.strategy): r.overall.accuracy for r in rows if r.overall}
    sizes, groups = [], []
    for strategy, group in by_strategy.items():
        models = [r.model for r in group if r.model in facts]
        for by in ("total", "active"):
            have = [m for m in models if getattr(facts[m], f"{by}_params")]
            c = spearman(
                [getattr(facts[m], f"{by}_params") for m in have],
                [accuracy_of[(m, strategy)] for m in have],
                resamples=rs,
                seed=seed,
            )
            sizes.append(
                SizeTrend(strategy=strategy, by=by, models=have, rho=c.rho, p=c.p, ci_low=c.ci_low, ci_high=c.ci_high)
            )
        groups.append(_groups(strategy, models, facts, accuracy_of))
    if missing := sorted({r.model for r in done} - set(facts)):
        notes.append(f"no parameter counts for {', '.join(missing)}: declare `facts` for an endpoint's model")

    gains, trends = _gains(board, by_strategy, ids, rs, seed)
    calib = [cal for r in done if (cal := _calibration(r, ids, _questions(r.manifest, seen)))]
    return Leaderboard(
        board=board,
        question_ids=ids,
        key=answer_key(list(questions.values())),
        rows=rows,
        pairs=pairs,
        sizes=sizes,
        groups=groups,
        gains=gains,
        trends=trends,
        calibration=calib,
        notes=notes,
    )


def _questions(config: RunConfig, seen: dict[str, dict[str, Question]]) -> dict[str, Question]:
    """The questions as the run read them (its format, key, encoding, option order), read once per dataset."""
    from eval.data import DataError, load_for_config

    source = json.dumps(
        [config.data, config.format, config.answers, config.fields, config.mapping, config.encoding, config.skip_bad,
         config.shuffle_seed, config.circular, config.multi]
    )  # fmt: skip
    if source not in seen:
        try:
            seen[source] = {q.id: q for q in load_for_config(config).questions}
        except (DataError, OSError) as e:
            raise BoardError(f"cannot read the questions the runs were made on: {e}") from None
    return seen[source]


def _row(run: EntryRun, ids: list[str], questions: dict[str, Question]) -> Row:
    row = Row(
        model=run.model,
        strategy=run.strategy,
        status=run.status,
        error=run.error,
        run_dir=str(run.out),
        facts=facts_of(run.entry, run.config),
    )
    if run.status != "done":
        return row
    scored = [run.predictions[q] for q in ids]
    every = list(run.predictions.values())
    row.overall = accuracy(scored)
    cells: dict[str, list[Prediction]] = {}
    for p in scored:
        q = questions[p.question_id]
        cells.setdefault(f"{q.specialty} · {q.level or '–'}", []).append(p)
    row.cells = {k: accuracy(v) for k, v in sorted(cells.items())}
    row.unparsed = sum(p.parse_status == "unparsed" for p in scored)
    row.truncated = sum(p.parse_status == "truncated" for p in scored)
    row.errors = sum(p.parse_status == "error" for p in every)
    row.budget = budget_hits(scored)
    if scored:
        row.calls_per_q = sum(p.model_calls for p in scored) / len(scored)
        row.tokens_per_q = sum(p.prompt_tokens_evaluated + p.completion_tokens for p in scored) / len(scored)
        row.reasoning_tokens_per_q = sum(p.reasoning_tokens for p in scored) / len(scored)
        row.seconds_per_q = sum(p.seconds for p in scored) / len(scored)
        if row.facts and row.facts.priced:
            total = sum(row.facts.cost(p) for p in scored)
            row.cost_per_q = total / len(scored)
            row.cost_per_correct = total / row.overall.correct if row.overall.correct else None
    row.wall_seconds = sum(p.seconds for p in every)
    return row


def _groups(strategy: str, models: list[str], facts: dict[str, Facts], accuracy_of: dict) -> Groups:
    moe = [m for m in models if facts[m].is_moe]
    dense = [m for m in models if not facts[m].is_moe]

    def mean(ms: list[str]) -> float | None:
        return sum(accuracy_of[(m, strategy)] for m in ms) / len(ms) if ms else None

    p = None
    if moe and dense:
        from scipy.stats import mannwhitneyu

        p = float(
            mannwhitneyu(
                [accuracy_of[(m, strategy)] for m in moe], [accuracy_of[(m, strategy)] for m in dense], method="auto"
            ).pvalue
        )
    return Groups(strategy=strategy, moe=moe, dense=dense, moe_mean=mean(moe), dense_mean=mean(dense), p=p)


def _gains(board: Board, by_strategy: dict, ids: list[str], rs: int, seed: int) -> tuple[list[Gain], list[Trend]]:
    from scipy.stats import kendalltau

    base = {r.model: r for r in by_strategy.get(board.baseline, [])}
    chains = [r for s, group in by_strategy.items() if s != board.baseline for r in group if r.model in base]
    found = compare_family(
        (Pairing(r.strategy, board.baseline, r.predictions, base[r.model].predictions, ids) for r in chains),
        resamples=rs,
        seed=seed,
    )
    gains = [Gain(model=r.model, comparison=c) for r, c in zip(chains, found, strict=True)]
    trends = []
    for strategy in {g.comparison.graph: None for g in gains}:
        mine = [g for g in gains if g.comparison.graph == strategy]
        tau = p = None
        if len(mine) >= 3:
            result = kendalltau([g.strength for g in mine], [g.comparison.difference for g in mine])
            if math.isfinite(result.statistic):
                tau, p = float(result.statistic), float(result.pvalue)
        floor = float(kendalltau(range(len(mine)), range(len(mine))).pvalue) if len(mine) >= 3 else None
        trends.append(Trend(strategy=strategy, n=len(mine), tau=tau, p=p, min_p=floor))
    return gains, trends


def option_probabilities(prediction: Prediction, question: Question) -> list[float] | None:
    """The softmax of the scoring step's option log-probabilities, in option order; None for a generated answer."""
    if prediction.answer_method != "next_token":
        return None
    scores = next((s.scores for s in reversed(prediction.trace) if s.scores), None)
    if not scores or any(letter not in scores for letter in question.letters):
        return None
    from scipy.special import softmax

    return [float(x) for x in softmax([scores[letter] for letter in question.letters])]


def _calibration(run: EntryRun, ids: list[str], questions: dict[str, Question]) -> CalibrationRow | None:
    probs, gold = [], []
    for q in ids:  # a generated answer has no option probabilities (cot; a server's text fallback): not counted
        if (p := option_probabilities(run.predictions[q], questions[q])) is not None:
            probs.append(p)
            gold.append(questions[q].letters.index(questions[q].answer))
    if not probs:
        return None
    c = calibration(probs, gold)
    return CalibrationRow(
        model=run.model,
        strategy=run.strategy,
        n=c.n,
        of=len(ids),
        ece=c.ece,
        brier=c.brier,
        bins=[b._asdict() for b in c.bins],
        coverage=[v._asdict() for v in c.coverage],
    )


def ranked(lb: Leaderboard) -> list[Row]:
    """The rows by strategy (in the leaderboard's order), then rank; runs without results last."""
    order = {s: i for i, s in enumerate(lb.board.strategies)}
    return sorted(lb.rows, key=lambda r: (order[r.strategy], r.rank is None, r.rank or 0, r.model))


def load_leaderboard(out: Path) -> Leaderboard:
    """A leaderboard directory analysed again (for the HTML page): its spec from the leaderboard.json that
    eval.leaderboard wrote, its numbers from the runs, so a page always shows what the runs hold."""
    return analyse(saved_plan(out / f"{LEADERBOARD}.json", "board", Board, BoardError, "a leaderboard"), out)
