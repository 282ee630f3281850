"""structlog setup: readable on a terminal, JSON lines otherwise; always on stderr so stdout stays the report."""

from __future__ import annotations

import logging
import sys
from typing import TextIO, cast

import structlog


def configure(verbose: bool = False) -> None:
    renderer = (
        structlog.dev.ConsoleRenderer()
        if sys.stderr.isatty()
        else structlog.processors.JSONRenderer(ensure_ascii=False)
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG if verbose else logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(cast(TextIO, _Stderr())),  # it only writes and flushes
    )


class _Stderr:
    """Whatever sys.stderr is when a line is logged, not when logging was configured (a program run in-process, as
    the tests do, may be configured while stderr is a capture that is closed later)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()
