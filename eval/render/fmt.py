"""Numbers and tables as every report writes them (report.md, the ablation table, the leaderboard, the HTML pages,
position_bias): one place, so the same number reads the same everywhere. None is "–" throughout."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from eval.core.schema import POWER, Accuracy, Comparison


def pct(x: float | None) -> str:
    """0.5 -> 50.0%."""
    return "–" if x is None else f"{100 * x:.1f}%"


def pts(x: float | None) -> str:
    """An accuracy difference in points: 0.25 -> +25.0."""
    return "–" if x is None else f"{100 * x:+.1f}"


def p_value(x: float | None) -> str:
    return "–" if x is None else f"{x:.3g}"


def accuracy_text(a: Accuracy | None) -> str:
    """50.0% [30.0%–70.0%] (10/20); "–" for no questions."""
    if a is None or a.total == 0:
        return "–"
    return f"{pct(a.accuracy)} [{pct(a.ci_low)}–{pct(a.ci_high)}] ({a.correct}/{a.total})"


def diff_text(c: Comparison | None) -> str:
    """A paired difference with its bootstrap interval, in points: +10.0 [-5.0, +25.0]."""
    if c is None:
        return "–"
    return f"{pts(c.difference)} [{pts(c.diff_ci_low)}, {pts(c.diff_ci_high)}]"


def finding(c: Comparison) -> str:
    """A comparison in one plain sentence: the difference with its interval, McNemar's p, and what that says, with
    the smallest difference the questions could have shown when it says nothing.

    reflect − single: +0.0 points [-21.4, +21.4], McNemar p = 1: no evidence of a difference; 28 questions (4
    answered right by only one of the two) detect only differences of ±30.1 points or more reliably (80% power).
    """
    p = f"McNemar p = {p_value(c.mcnemar_p)}"
    if c.holm_p is not None and not math.isclose(c.holm_p, c.mcnemar_p):
        p += f" (Holm-adjusted {p_value(c.holm_p)})"
    head = f"{c.graph} − {c.baseline}: {pts(c.difference)} points [{pts(c.diff_ci_low)}, {pts(c.diff_ci_high)}], {p}"
    if c.significant:
        better, worse = (c.graph, c.baseline) if c.difference > 0 else (c.baseline, c.graph)
        return f"{head}: {better} answers better than {worse}."
    discordant = c.right_to_wrong + c.wrong_to_right
    why = f"{c.n} questions ({discordant} answered right by only one of the two)"
    reach = (
        "no difference"
        if c.min_detectable is None
        else f"only differences of ±{100 * c.min_detectable:.1f} points or more"
    )
    return f"{head}: no evidence of a difference; {why} detect {reach} reliably ({100 * POWER:.0f}% power)."


def params_text(n: float | None) -> str:
    """A parameter count as people say it: 1.4M, 135M, 1.5B, 671B, 1T (999.6M is 1B, not 1e+03M)."""
    if n is None:
        return "–"
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if float(f"{n / scale:.3g}") >= 1:
            return f"{n / scale:.3g}{unit}"
    return f"{n:.0f}"


def model_text(info: dict) -> str:
    """'qwen2, 494M parameters, Q4_K_M' or, for a Mixture-of-Experts model, its experts and active parameters: a
    GGUF's facts (eval.models.gguf.ModelInfo as a dict) as report.md and the HTML pages head a run with."""
    if not info:
        return ""
    text = f"{info['architecture']}, {params_text(info['total_params'])} parameters"
    if info.get("is_moe"):
        text += (
            f", MoE: {info['n_experts']} experts, {info['n_experts_used']} used per token, "
            f"{params_text(info['active_params'])} active"
        )
    return f"{text}, {info['quantization']}"


def usd_text(x: float | None) -> str:
    """Dollars to three significant digits, never in exponent notation: $0.00712, $1.50."""
    if x is None:
        return "–"
    decimals = 2 - math.floor(math.log10(x)) if x > 0 else 2
    return f"${x:.{max(2, decimals)}f}"


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
