"""What every HTML page shares: matplotlib figures as PNG data URIs, and the Jinja2 templates with their filters.

Pages are self-contained (figures inline, nothing fetched), so a report can be mailed or opened offline.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence

from jinja2 import Environment, PackageLoader, StrictUndefined

from eval.render.fmt import finding, p_value, params_text, pct, pts

# Every figure that plots accuracy (a run's cost scatter, the leaderboard's size scatter) plots it in % on this axis.
ACCURACY_AXIS = "accuracy, % (Wilson 95% CI)"
ACCURACY_LIMITS = (-2, 102)


class ReportError(Exception):
    """The directory cannot be reported on; the message says why."""


def pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ReportError("the HTML report draws its figures with matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png(fig) -> str:
    plt = pyplot()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def params_axis(ax, values: Sequence[float]) -> None:
    """A log-scale x axis of parameter counts, its ticks labelled as the tables write them (params_text: 1.4M, 135M,
    1.5B): whole decades, or 1-2-5 steps where fewer than two decades fall on the axis, or every step 1-9 where even
    those are fewer than two (a factor of 4 at least, so some always are)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter

    low, high = min(values) / 1.5, max(values) * 1.5  # room for the markers and their labels
    if (widen := math.sqrt(4 / (high / low))) > 1:
        low, high = low / widen, high * widen
    decades = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
    ticks: list[float] = []
    for steps in ((1,), (1, 2, 5), range(1, 10)):
        ticks = [s * 10.0**d for d in decades for s in steps if low <= s * 10.0**d <= high]
        if len(ticks) >= 2:
            break
    ax.set_xscale("log")
    ax.set_xlim(low, high)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: params_text(v)))
    ax.xaxis.set_minor_locator(LogLocator(subs="all"))
    ax.xaxis.set_minor_formatter(NullFormatter())


# The pages' markup lives in eval/render/templates: report.html.j2, leaderboard.html.j2 and the parts they include.
TEMPLATES = Environment(
    loader=PackageLoader("eval.render", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,  # an included part ends with its line break, the page too
)
TEMPLATES.filters.update(pct=pct, pts=pts, p=p_value, fmt=format, finding=finding)
