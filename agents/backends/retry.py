"""Retrying a server's requests: which failures are worth another attempt (connection errors, timeouts, 429, 5xx),
which never are (a prompt the server says is too long), and exponential backoff with jitter between attempts. The
OpenAI client's own retries are off, so this is the only retry loop."""

from __future__ import annotations

import contextlib
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import httpx
import structlog

from agents.backends.base import BackendError, PermanentError, Unreachable

log = structlog.get_logger()
T = TypeVar("T")


class ServerError(BackendError):
    """The server failed a request (after retries) or refused it; the message says which and why."""


class ServerUnreachable(ServerError, Unreachable):
    """Every attempt of a request failed to connect, or lost its connection: the server is down or gone."""


def _retryable_status(code: int) -> bool:
    return code in (408, 409, 425, 429) or code >= 500


def lost_connection(e: BaseException) -> bool:
    """No answer at all: refused, reset or dropped connections and timeouts (from the openai client or httpx)."""
    import openai

    return isinstance(e, openai.APIConnectionError | httpx.TransportError)


# What servers answer (HTTP 400) to a prompt, with its token budget, longer than the context: llama-server,
# llama_cpp.server, vLLM, OpenAI. Narrow on purpose: any other 400 stays an ordinary error, retried on resume.
_TOO_LONG = re.compile(
    r"exceeds the available context size|exceed context window|maximum context length|context_length_exceeded"
    r"|longer than the maximum model length",
    re.IGNORECASE,
)


def too_long(e: BaseException) -> bool:
    """The server refused the request because the prompt cannot fit its context window: asking again cannot help."""
    import openai

    return (
        isinstance(e, openai.APIStatusError | httpx.HTTPStatusError)
        and e.response.status_code == 400
        and bool(_TOO_LONG.search(e.response.text))
    )


def is_transient(e: BaseException) -> bool:
    """Worth retrying: connection errors, timeouts, 429 and 5xx (from the openai client or from httpx)."""
    import openai

    if lost_connection(e):
        return True
    if isinstance(e, openai.APIStatusError | httpx.HTTPStatusError):
        return _retryable_status(e.response.status_code)
    return False


def describe(e: BaseException) -> str:
    import openai

    if isinstance(e, openai.APIStatusError | httpx.HTTPStatusError):
        body = e.response.text.strip().replace("\n", " ")
        return f"HTTP {e.response.status_code}: {body[:300]}"
    cause = e.__cause__ or e.__context__
    detail = f" ({type(cause).__name__}: {cause})" if cause and str(cause) and str(cause) not in str(e) else ""
    return f"{type(e).__name__}: {e}{detail}"


@dataclass
class RetryPolicy:
    retries: int = 4  # attempts after the first
    backoff: float = 0.5  # seconds before the first retry; doubles each time
    max_backoff: float = 30.0
    seed: int | None = None  # jitter is seeded when given (tests)
    sleep: Callable[[float], None] = time.sleep
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def delay(self, attempt: int, e: BaseException | None = None) -> float:
        """Equal jitter: half the exponential step plus a random part of the other half; Retry-After wins if longer."""
        step = min(self.max_backoff, self.backoff * 2**attempt)
        with self._lock:
            d = step / 2 + self._rng.uniform(0, step / 2)
        response = getattr(e, "response", None)
        retry_after = response.headers.get("retry-after") if response is not None else None
        if retry_after:
            with contextlib.suppress(ValueError):
                d = max(d, min(self.max_backoff, float(retry_after)))
        return d

    def call(self, what: str, fn: Callable[[], T]) -> T:
        for attempt in range(self.retries + 1):
            try:
                return fn()
            except Exception as e:
                if too_long(e):
                    raise PermanentError(f"{what}: the server refused the prompt as too long: {describe(e)}") from e
                if not is_transient(e):
                    raise
                if attempt == self.retries:
                    raise (ServerUnreachable if lost_connection(e) else ServerError)(
                        f"{what} failed after {attempt + 1} attempts: {describe(e)}"
                    ) from e
                d = self.delay(attempt, e)
                log.warning(
                    "server.retry",
                    request=what,
                    attempt=attempt + 1,
                    of=self.retries + 1,
                    wait_s=round(d, 3),
                    error=describe(e),
                )
                self.sleep(d)
        raise AssertionError("unreachable")
