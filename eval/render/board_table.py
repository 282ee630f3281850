"""The leaderboard as Markdown, JSON and CSV (DIR/leaderboard.md, .json, .csv), from eval.results.board's typed
analysis; eval.render.board_page draws the same numbers as HTML."""

from __future__ import annotations

import csv
from pathlib import Path

from eval.core.schema import BUDGET_WARNING
from eval.render.fmt import accuracy_text, diff_text, p_value, params_text, pct, table, usd_text
from eval.results.analysis import budget_text, key_text
from eval.results.board import LEADERBOARD, Leaderboard, Row, SizeTrend, ranked


def rank_text(row: Row) -> str:
    if row.rank is None:
        return "–"
    return f"{row.rank} [{row.rank_low}–{row.rank_high}]" if row.rank_low != row.rank_high else f"{row.rank} [fixed]"


COSTS = ["unparsed", "truncated", "errors", "at the token budget", "tok/q", "thinking tok/q", "$/q", "$/correct", "s/q",
         "wall"]  # fmt: skip


def _costs(r: Row) -> tuple:
    """A row's COSTS, as the markdown shows them."""
    return (
        r.unparsed, r.truncated, r.errors, budget_text(r.budget), f"{r.tokens_per_q:.0f}",
        f"{r.reasoning_tokens_per_q:.0f}", usd_text(r.cost_per_q), usd_text(r.cost_per_correct),
        f"{r.seconds_per_q:.2f}", f"{r.wall_seconds:.0f} s",
    )  # fmt: skip


def render_markdown(lb: Leaderboard) -> str:
    b, n = lb.board, len(lb.question_ids)
    parts = [
        f"# Leaderboard: {len(b.models)} model(s) × {', '.join(b.strategies)}",
        f"{n} questions ({b.data or 'the bundled questions'}), the same for every run; seed {b.seed}.",
        key_text(lb.key) if n else "",
    ]
    parts.append(
        table(
            [
                "rank [95% CI]",
                "model",
                "strategy",
                "accuracy [95% CI] (correct/n)",
                "architecture",
                "parameters",
                "active / token",
                "experts",
                "quantization",
                "file",
                *COSTS,
            ],
            [
                [
                    rank_text(r),
                    r.model,
                    r.strategy,
                    accuracy_text(r.overall) if r.overall else r.status,
                    f.architecture if (f := r.facts) else "–",
                    params_text(f.total_params) if f else "–",
                    params_text(f.active_params) if f else "–",
                    f.experts if f else "–",
                    (f.quantization or "–") if f else "–",
                    f"{f.file_size / 1e9:.2f} GB" if f and f.file_size else "–",
                    *(_costs(r) if r.overall else ("–",) * len(COSTS)),
                ]
                for r in ranked(lb)
            ],
        )
    )
    cells = sorted({k for r in lb.rows for k in r.cells})
    if len(cells) > 1:
        parts.append(
            "## By specialty × level\n\n"
            + table(
                ["model", "strategy", *cells],
                [
                    [r.model, r.strategy, *(accuracy_text(r.cells.get(k)) for k in cells)]
                    for r in ranked(lb)
                    if r.overall
                ],
            )
        )
    if lb.pairs:
        parts.append(
            "## Every pair of models (paired, same questions)\n\n"
            + table(
                [
                    "strategy",
                    "pair",
                    "Δ points [95% CI]",
                    "only first / only second right",
                    "McNemar p",
                    "Holm p",
                    "verdict",
                ],
                [
                    [
                        p.strategy,
                        f"{p.comparison.graph} vs {p.comparison.baseline}",
                        diff_text(p.comparison),
                        f"{p.comparison.wrong_to_right} / {p.comparison.right_to_wrong}",
                        p_value(p.comparison.mcnemar_p),
                        p_value(p.comparison.holm_p),
                        p.verdict,
                    ]
                    for p in lb.pairs
                ],
            )
        )
    if lb.sizes:
        parts.append(
            "## Size against accuracy\n\n"
            + table(
                ["strategy", "parameters", "models", "Spearman ρ [95% CI]", "permutation p"],
                [
                    [
                        s.strategy,
                        s.by,
                        len(s.models),
                        _rho_text(s),
                        p_value(s.p),
                    ]
                    for s in lb.sizes
                ],
            )
            + "\n\n"
            + table(
                ["strategy", "MoE models", "mean accuracy", "dense models", "mean accuracy", "Mann–Whitney p"],
                [
                    [
                        g.strategy,
                        ", ".join(g.moe) or "–",
                        pct(g.moe_mean),
                        ", ".join(g.dense) or "–",
                        pct(g.dense_mean),
                        p_value(g.p),
                    ]
                    for g in lb.groups
                ],
            )
        )
    if lb.gains:
        trend = {t.strategy: t for t in lb.trends}
        parts.append(
            f"## Strategies against {b.baseline}, per model\n\n"
            + table(
                ["model", "strategy", "strength", "Δ points [95% CI]", "McNemar p", "Holm p", "detectable"],
                [
                    [
                        g.model,
                        g.comparison.graph,
                        pct(g.strength),
                        diff_text(g.comparison),
                        p_value(g.comparison.mcnemar_p),
                        p_value(g.comparison.holm_p),
                        "–" if (d := g.comparison.min_detectable) is None else f"±{100 * d:.1f}",
                    ]
                    for g in lb.gains
                ],
            )
            + "\n\n"
            + "\n".join(
                f"Trend of {s}'s gain with model strength: "
                + (
                    "fewer than 3 models, not tested"
                    if t.tau is None
                    else f"Kendall τ = {t.tau:+.2f}, p = {p_value(t.p)}"
                )
                + f" ({t.n} models"
                + (f"; no ordering of {t.n} models gives p below {p_value(t.min_p)}: descriptive" if t.min_p else "")
                + ")."
                for s, t in trend.items()
            )
        )
    if lb.calibration:
        thresholds = [c["threshold"] for c in lb.calibration[0].coverage]
        parts.append(
            "## Calibration of the option probabilities\n\n"
            + table(
                ["model", "strategy", "scored (of n)", "ECE", "Brier"]
                + [f"p ≥ {t:g}: answered, accuracy" for t in thresholds],
                [
                    [
                        c.model,
                        c.strategy,
                        f"{c.n} ({c.of})",
                        f"{c.ece:.3f}",
                        f"{c.brier:.3f}",
                        *(
                            f"{v['answered']} ({100 * v['answered'] / c.n:.0f}%), "
                            f"{pct(v['correct'] / v['answered']) if v['answered'] else '–'}"
                            for v in c.coverage
                        ),
                    ]
                    for c in lb.calibration
                ],
            )
        )
    parts.append(
        "Accuracy with Wilson 95% intervals; unparsed and truncated answers (no option named: the output was cut at "
        "its token budget, or its thinking never ended) count as wrong. At the token budget: per node, its outputs "
        f"that stopped at their budget (⚠: more than {100 * BUDGET_WARNING:.0f}%, raise that node's --*-tokens). "
        "Thinking: of the generated "
        "tokens, a reasoning model's. $: at the prices a model's facts declare, every prompt token sent at the input "
        "price (no discount for prompt tokens a provider had cached) and every generated token, thinking included, at "
        "the output price; $/correct: the questions' cost over the correct answers. "
        f"Rank: 1 = most accurate under its "
        f"strategy, ties share the better rank; its interval is the 2.5th–97.5th percentile of the rank over "
        f"{b.bootstrap_resamples} bootstrap resamples of the questions (seed {b.bootstrap_seed}). Pairs: paired "
        "difference (first minus second) with a paired bootstrap 95% interval, exact McNemar p, Holm-adjusted over "
        "every pair of every strategy; a verdict names a winner only where the adjusted p < 0.05, and otherwise "
        "gives the smallest difference McNemar's test on these questions, at the pair's observed discordance, would "
        "detect with 80% power at level 0.05 / (number of pairs), the level Holm's first step holds it to "
        "(python -m eval.power). Size: Spearman's ρ of parameters against accuracy over the "
        "models, "
        "a permutation p (with 3 models none is below 0.33), and a bootstrap interval over the models from 5 models "
        "on. Strategies: paired "
        "difference against the baseline per model, Holm over those, detectable differences as for pairs; the "
        "trend is Kendall's τ between a model's "
        "strength (the mean of its two accuracies, which unlike the baseline's accuracy alone does not make a "
        "negative trend out of noise) and its gain. Calibration: the option probabilities of scoring strategies "
        "(softmax of the options' log-probabilities); ECE over 10 equal-width bins of the top probability; Brier "
        "summed over the options; answered: questions whose top probability reaches the threshold."
    )
    parts += [f"Note: {note}" for note in lb.notes]
    return "\n\n".join(p for p in parts if p) + "\n"


def _rho_text(s: SizeTrend) -> str:
    if s.rho is None:
        return "–"
    if s.ci_low is None:
        return f"{s.rho:+.2f} (no interval with {len(s.models)} models)"
    return f"{s.rho:+.2f} [{s.ci_low:+.2f}, {s.ci_high:+.2f}]"


CSV_COLUMNS = [
    "strategy", "rank", "rank_low", "rank_high", "model", "status", "correct", "n", "accuracy", "ci_low", "ci_high",
    "architecture", "total_params", "active_params", "n_experts", "n_experts_used", "quantization", "file_size",
    "usd_per_million_input", "usd_per_million_output",
    "unparsed", "truncated", "errors", "at_budget", "calls_per_q", "tokens_per_q", "reasoning_tokens_per_q",
    "cost_per_q", "cost_per_correct", "seconds_per_q", "wall_seconds", "run_dir",
]  # fmt: skip


def write_outputs(lb: Leaderboard, out: Path) -> dict[str, Path]:
    paths = {ext: out / f"{LEADERBOARD}.{ext}" for ext in ("md", "json", "csv")}
    paths["md"].write_text(render_markdown(lb), encoding="utf-8")
    paths["json"].write_text(lb.model_dump_json(indent=1), encoding="utf-8")
    with open(paths["csv"], "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for r in ranked(lb):
            a, facts = r.overall, r.facts.model_dump() if r.facts else {}
            writer.writerow(
                {k: v for k, v in r.model_dump().items() if k in CSV_COLUMNS}
                | {k: v for k, v in facts.items() if k in CSV_COLUMNS}
                | {"at_budget": budget_text(r.budget)}
                | (
                    {
                        "correct": a.correct,
                        "n": a.total,
                        "accuracy": a.accuracy,
                        "ci_low": a.ci_low,
                        "ci_high": a.ci_high,
                    }
                    if a
                    else {}
                )
            )
    return paths
