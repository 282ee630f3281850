"""The leaderboard's HTML page (python -m eval.html_report DIR, for a directory eval.leaderboard wrote): the sortable
table with accuracy and rank intervals, the model x specialty x level heatmap, accuracy against total and active
parameters (MoE and dense marked), the pairwise matrix, strategy gains and the calibration plot.

Every number comes from eval.results.board.analyse, the same as leaderboard.md; only the drawing is here.
"""

from __future__ import annotations

from eval.core.schema import BUDGET_WARNING
from eval.render.board_table import rank_text
from eval.render.figures import ACCURACY_AXIS, ACCURACY_LIMITS, TEMPLATES, params_axis, png, pyplot
from eval.render.fmt import accuracy_text, params_text, pts, usd_text
from eval.results.analysis import budget_text
from eval.results.board import Leaderboard, Row, ranked


def _label(row: Row, several: bool) -> str:
    return f"{row.model} · {row.strategy}" if several else row.model


def heatmap(lb: Leaderboard) -> str | None:
    """Accuracy per (model, strategy) x (specialty · level), each cell annotated correct/total."""
    import numpy as np

    rows = [r for r in ranked(lb) if r.overall]
    cells = sorted({k for r in rows for k in r.cells})
    if not rows or not cells:
        return None
    plt = pyplot()
    grid = np.full((len(rows), len(cells)), np.nan)
    fig, ax = plt.subplots(figsize=(2.5 + 1.1 * len(cells), 0.9 + 0.42 * len(rows)))
    for i, r in enumerate(rows):
        for j, k in enumerate(cells):
            if a := r.cells.get(k):
                grid[i, j] = a.accuracy
                ax.text(j, i, f"{a.correct}/{a.total}", ha="center", va="center", fontsize=8)
    cmap = plt.get_cmap("RdYlGn").copy()
    cmap.set_bad("#dddddd")
    ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0, vmax=1, aspect="auto")
    several = len(lb.board.strategies) > 1
    ax.set_xticks(range(len(cells)), [k.replace("_", " ") for k in cells], fontsize=8, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), [_label(r, several) for r in rows], fontsize=8)
    fig.tight_layout()
    return png(fig)


def size_scatter(lb: Leaderboard) -> str | None:
    """Accuracy (Wilson 95% interval) against total and against active parameters, log scale; MoE and dense marked."""
    rows = [(r, a, f) for r in lb.rows if (a := r.overall) and (f := r.facts) and f.total_params]
    if not rows:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    colours = {s: f"C{i}" for i, s in enumerate(lb.board.strategies)}
    for ax, by in zip(axes, ("total", "active"), strict=True):
        xs = []
        for r, a, facts in rows:
            if not (x := getattr(facts, f"{by}_params")):  # a MoE whose active parameters nobody declared
                continue
            xs.append(x)
            ax.errorbar(
                x,
                100 * a.accuracy,
                yerr=[[100 * (a.accuracy - a.ci_low)], [100 * (a.ci_high - a.accuracy)]],
                fmt="s" if facts.is_moe else "o",
                color=colours[r.strategy],
                mfc="white" if facts.is_moe else colours[r.strategy],
                capsize=3,
            )
            ax.annotate(r.model, (x, 100 * a.accuracy), textcoords="offset points", xytext=(5, 4), fontsize=7)
        if xs:
            params_axis(ax, xs)
        ax.set_xlabel(f"{by} parameters{' per token' if by == 'active' else ''} (log scale)")
        ax.grid(alpha=0.3)
    axes[0].set(ylabel=ACCURACY_AXIS, ylim=ACCURACY_LIMITS)
    handles = [plt.Line2D([], [], color="grey", marker=m, ls="", mfc=f, label=t)
               for m, f, t in (("o", "grey", "dense"), ("s", "white", "mixture of experts"))]  # fmt: skip
    handles += [plt.Line2D([], [], color=c, ls="-", label=s) for s, c in colours.items()] if len(colours) > 1 else []
    axes[1].legend(handles=handles, fontsize=8, loc="best")
    fig.tight_layout()
    return png(fig)


def pair_matrix(lb: Leaderboard) -> str | None:
    """Per strategy: row model minus column model, in accuracy points; ★ where Holm-adjusted p < 0.05."""
    import numpy as np

    strategies = [s for s in lb.board.strategies if any(p.strategy == s for p in lb.pairs)]
    if not strategies:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, len(strategies), figsize=(1.5 + 4.5 * len(strategies), 4), squeeze=False)
    for ax, strategy in zip(axes[0], strategies, strict=True):
        models = [r.model for r in ranked(lb) if r.strategy == strategy and r.rank is not None]
        grid = np.full((len(models), len(models)), np.nan)
        for p in (p for p in lb.pairs if p.strategy == strategy):
            c = p.comparison
            assert c.holm_p is not None  # the analysis adjusts every pair
            i, j = models.index(c.graph), models.index(c.baseline)
            for a, b, sign in ((i, j, 1), (j, i, -1)):
                grid[a, b] = sign * 100 * c.difference
                star = " ★" if c.holm_p < 0.05 else ""
                ax.text(b, a, f"{pts(sign * c.difference)}{star}", ha="center", va="center", fontsize=8)
        limit = max(5.0, float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 5.0)
        cmap = plt.get_cmap("RdBu").copy()
        cmap.set_bad("#eeeeee")
        ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=-limit, vmax=limit)
        ax.set_xticks(range(len(models)), models, fontsize=8, rotation=30, ha="right")
        ax.set_yticks(range(len(models)), models, fontsize=8)
        ax.set_title(f"{strategy}: row − column, points", fontsize=9)
    fig.tight_layout()
    return png(fig)


def reliability(lb: Leaderboard) -> str | None:
    """Calibration: accuracy against confidence per bin (a point per bin, sized by its questions), diagonal = ideal."""
    if not lb.calibration:
        return None
    plt = pyplot()
    fig, (ax, cov) = plt.subplots(1, 2, figsize=(11, 4))
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1)
    for i, c in enumerate(lb.calibration):
        label = f"{c.model} · {c.strategy} (ECE {c.ece:.3f})"
        xs, ys = [b["confidence"] for b in c.bins], [b["accuracy"] for b in c.bins]
        ax.plot(xs, ys, marker="o", color=f"C{i}", label=label, lw=1)
        ax.scatter(xs, ys, s=[8 + 120 * b["n"] / c.n for b in c.bins], color=f"C{i}", alpha=0.4)
        shown = [v for v in c.coverage if v["answered"]]
        cov.plot([v["answered"] / c.n for v in shown], [v["correct"] / v["answered"] for v in shown], marker="o",
                 color=f"C{i}")  # fmt: skip
    ax.set(xlabel="confidence (top option's probability)", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=7)
    cov.set(xlabel="coverage (share of questions answered)", ylabel="accuracy on those answered", xlim=(0, 1.02))
    cov.set_title("answer only above a confidence threshold", fontsize=9)
    for a in (ax, cov):
        a.grid(alpha=0.3)
    fig.tight_layout()
    return png(fig)


def render(lb: Leaderboard, title: str) -> str:
    several = len(lb.board.strategies) > 1
    rows = [
        {
            "row": r,
            "label": _label(r, several),
            "rank": rank_text(r),
            "accuracy": accuracy_text(r.overall) if r.overall else r.status,
            "params": params_text(r.facts.total_params) if r.facts else "–",
            "active": params_text(r.facts.active_params) if r.facts else "–",
            "experts": r.facts.experts if r.facts else "–",
            "sort_params": (r.facts.total_params or 0) if r.facts else 0,
            "sort_active": (r.facts.active_params or 0) if r.facts else 0,
            "budget": budget_text(r.budget),
            "cost_per_q": usd_text(r.cost_per_q),
            "cost_per_correct": usd_text(r.cost_per_correct),
        }
        for r in ranked(lb)
    ]
    figures = {
        "heatmap": heatmap(lb),
        "sizes": size_scatter(lb),
        "pairs": pair_matrix(lb),
        "calibration": reliability(lb),
    }
    return TEMPLATES.get_template("leaderboard.html.j2").render(
        title=title, lb=lb, rows=rows, figures=figures, budget_warning=BUDGET_WARNING
    )
