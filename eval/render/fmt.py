"""Numbers and tables as every report writes them (report.md, the ablation table, the leaderboard, the HTML pages,
position_bias): one place, so the same number reads the same everywhere. None is "–" throughout."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from eval.core.schema import Accuracy, Comparison


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


def params_text(n: float | None) -> str:
    """A parameter count as people say it: 135M, 1.5B, 671B."""
    if n is None:
        return "–"
    return f"{n / 1e9:.3g}B" if n >= 1e9 else f"{n / 1e6:.3g}M"


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
