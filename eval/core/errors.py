"""How the programs say an error they expect (bad input, a file they cannot read or write): one `error:` line on
stderr and exit status 2, never a traceback."""

from __future__ import annotations

import sys

from pydantic import ValidationError


def one_line(error: BaseException) -> str:
    """An exception's message as one line: a pydantic ValidationError's first problem ('where: what'; its own str
    spans a dozen lines), else the first line of the message."""
    if isinstance(error, ValidationError) and (problems := error.errors()):
        where = ".".join(str(p) for p in problems[0]["loc"])
        return f"{where}: {problems[0]['msg']}" if where else problems[0]["msg"]
    return (str(error).splitlines() or [type(error).__name__])[0]


def interrupted(out: object, kept: str = "finished predictions") -> int:
    """Ctrl-C: say what is kept in `out` and how to go on, and return 130 (the shell's code for SIGINT)."""
    print(f"\ninterrupted: {kept} are kept; run the same command again to resume ({out})", file=sys.stderr)
    return 130


def fail(error: BaseException | str, kept: str = "") -> int:
    """Print `error` (an exception or a message) as one line and return 2. An OSError (a read-only or full disk, a
    path through a file) is said as 'PATH: reason', then, given `kept` (what the program's output directory still
    holds), how to go on."""
    message = error if isinstance(error, str) else one_line(error)
    if isinstance(error, OSError):
        message = f"{error.filename}: {error.strerror}" if error.filename and error.strerror else message
        if kept:
            message += f"; {kept}: free space or make it writable, then run the same command again to resume"
    print(f"error: {message}", file=sys.stderr)
    return 2
