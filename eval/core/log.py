"""structlog setup: readable on a terminal, JSON lines otherwise; always on stderr so stdout stays the report. And a
run's progress: a bar with count and ETA on a terminal, log lines elsewhere."""

from __future__ import annotations

import logging
import os
import sys
import time
from types import TracebackType
from typing import Any, TextIO, cast

import structlog
from tqdm import tqdm


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
    the tests do, may be configured while stderr is a capture that is closed later). Each line is written whole above
    a progress bar, if one is shown: tqdm clears the bar for it and draws it again below."""

    def __init__(self) -> None:
        self._line = ""  # print() writes a line and its newline apart

    def write(self, text: str) -> int:
        self._line += text
        if self._line.endswith("\n"):
            line, self._line = self._line, ""
            with tqdm.external_write_mode(file=sys.stderr):
                sys.stderr.write(line)
        return len(text)

    def flush(self) -> None:
        sys.stderr.flush()


class Lines:
    """Progress where there is no terminal to draw a bar on (a log file, CI): a `progress` log line, with the count
    and the ETA, at most every `every` seconds, and one when the last item is done."""

    def __init__(self, total: int, what: str, every: float = 30.0) -> None:
        self.total, self.what, self.every, self.done = total, what, every, 0
        self.start = self.last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if self.done < self.total and now - self.last < self.every:
            return
        self.last, elapsed = now, now - self.start
        structlog.get_logger().info(
            "progress",
            what=self.what,
            done=self.done,
            of=self.total,
            elapsed=tqdm.format_interval(elapsed),
            eta=tqdm.format_interval(elapsed / self.done * (self.total - self.done)),
        )

    def __enter__(self) -> Lines:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        pass


def progress(total: int, what: str, unit: str) -> tqdm[Any] | Lines:
    """A bar (count, rate, ETA) when stderr is a terminal, else log lines; used as a context manager, `.update()`
    after each item."""
    if not sys.stderr.isatty():
        return Lines(total, what)
    try:
        size = os.get_terminal_size(sys.stderr.fileno())
    except OSError:
        size = os.terminal_size((0, 0))
    # a terminal that reports no size (a pty nobody sized, as `script` makes) would get no bar at all
    # smoothing=0: the rate (and so the ETA) over the whole run, not a moving average of the last few items, which
    # jumps by 10x where a chain's slow questions alternate with the baseline's fast ones.
    return tqdm(total=total, desc=what, unit=unit, ncols=size.columns or 80, nrows=size.lines or 24, smoothing=0)
