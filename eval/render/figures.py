"""What every HTML page shares: matplotlib figures as PNG data URIs, and the Jinja2 templates with their filters.

Pages are self-contained (figures inline, nothing fetched), so a report can be mailed or opened offline.
"""

from __future__ import annotations

import base64
import io

from jinja2 import Environment, PackageLoader, StrictUndefined

from eval.render.fmt import p_value, pct, pts


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


# The pages' markup lives in eval/render/templates: report.html.j2, leaderboard.html.j2 and the parts they include.
TEMPLATES = Environment(
    loader=PackageLoader("eval.render", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,  # an included part ends with its line break, the page too
)
TEMPLATES.filters.update(pct=pct, pts=pts, p=p_value, fmt=format)
