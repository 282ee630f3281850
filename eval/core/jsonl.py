"""Append-only JSON-lines files (a run's predictions, Medprompt's example reasoning): one writer, one reader.

A record is one line ending in its newline, written by one `os.write` under an exclusive lock and fsynced. A kill or
a full disk can still leave a last line without its newline, cut anywhere, inside a multi-byte character too: that
line is no record. The reader leaves it out with a warning; the appender cuts it off before writing, so the next
record starts on a line of its own instead of being glued onto the fragment.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import structlog

from eval.core.errors import one_line

T = TypeVar("T")
CHUNK = 1 << 16  # how far back at a time the appender looks for a torn line's start


class JsonlError(ValueError):
    """A complete line that is not a record; the message names the file and the line."""


def read(path: Path, parse: Callable[[str], T], *, skip_bad: bool = False) -> Iterator[tuple[int, T]]:
    """(line number, parse(line)) for each complete, non-blank line; nothing for a file that does not exist.

    Reads bytes, so a last line cut inside a character is dropped like any torn line rather than failing to decode.
    A complete line that is not UTF-8 or that `parse` refuses (ValueError) raises JsonlError, or with `skip_bad`
    is logged and left out (a cache makes it again).
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    # b"\n" only: splitlines() would also cut at U+2028 and other separators inside a model's output.
    *lines, torn = data.split(b"\n")
    if torn:
        structlog.get_logger().warning(
            "jsonl.torn_last_line", file=str(path), line=len(lines) + 1, bytes=len(torn), note="left out: incomplete"
        )
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            record = parse(raw.decode("utf-8"))
        except ValueError as e:  # UnicodeDecodeError, JSONDecodeError and pydantic's ValidationError included
            reason = one_line(e)
            if not skip_bad:
                raise JsonlError(f"{path}:{number}: not a valid record ({reason})") from None
            structlog.get_logger().warning("jsonl.bad_line", file=str(path), line=number, reason=reason)
            continue
        yield number, record


def append(path: Path, record: str) -> None:
    """Append one record (one line of JSON text, without its newline) and fsync it.

    Under an exclusive lock, so processes sharing the file never interleave; a torn last line is cut off first. When
    the write fails (a full disk), the file is cut back to where it was, so what it held stays whole.
    """
    if "\n" in record:
        raise ValueError("a JSON-lines record must be one line")
    data = (record + "\n").encode("utf-8")
    with _locked(path, os.O_CREAT | os.O_APPEND) as (fd, end):
        try:
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
            os.fsync(fd)
        except OSError:
            os.ftruncate(fd, end)
            raise


def repair(path: Path) -> None:
    """Cut a torn last line off now (a run resuming does, so its file is whole even when nothing is left to append)."""
    with contextlib.suppress(FileNotFoundError), _locked(path, 0):
        pass


@contextlib.contextmanager
def _locked(path: Path, flags: int) -> Iterator[tuple[int, int]]:
    """The file open for writing under an exclusive lock, its torn last line cut off: (descriptor, size)."""
    fd = os.open(path, os.O_RDWR | flags, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd, _cut_torn_tail(fd, path)
    finally:
        os.close(fd)  # releases the lock


def _cut_torn_tail(fd: int, path: Path) -> int:
    """Cut the file after its last newline when it does not end with one; return its size."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return size
    start = size
    while start > 0:
        block = os.pread(fd, min(CHUNK, start), max(0, start - CHUNK))
        start = max(0, start - CHUNK)
        if (at := block.rfind(b"\n")) >= 0:
            start += at + 1
            break
    os.ftruncate(fd, start)
    structlog.get_logger().warning(
        "jsonl.torn_last_line_cut", file=str(path), bytes=size - start, note="an incomplete record, not kept"
    )
    return start
