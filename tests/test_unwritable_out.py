"""An --out that cannot be written (a read-only directory, a full disk) ends the program with one line and exit
status 2 that say what was kept and how to resume, never a traceback; the resume afterwards completes the run."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import resource
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
from conftest import ROOT, TINY

from eval import ablate, agentic, leaderboard
from eval.core.store import read_predictions

RUN = ["--graph", "single", "--baseline", "none", "--model", TINY, "--n-ctx", "1024"]


@contextlib.contextmanager
def read_only(directory: Path):
    """Nothing under `directory` can be written, as on a read-only mount. Not as root, its mode says so (0o555).
    Root writes whatever the modes say (and a test cannot mount), so there every call the evaluator writes files with
    (open for writing, os.open, mkdir, replace, unlink) is refused inside it with EROFS, as the kernel would."""
    if os.geteuid() != 0:
        directory.chmod(0o555)
        try:
            yield
        finally:
            directory.chmod(0o755)
        return
    root = directory.resolve()

    def inside(path) -> bool:
        return isinstance(path, (str, bytes, os.PathLike)) and Path(os.fsdecode(path)).resolve().is_relative_to(root)

    def refuse(path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))

    real_open, real_os_open = io.open, os.open

    def open_(file, mode="r", *args, **kwargs):
        if inside(file) and set(mode) & set("wax+"):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    def os_open(path, flags, *args, **kwargs):
        if inside(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC):
            refuse(path)
        return real_os_open(path, flags, *args, **kwargs)

    def refused(name):
        real = getattr(os, name)

        def call(path, *args, **kwargs):
            if inside(path) or any(inside(a) for a in args):
                refuse(path)
            return real(path, *args, **kwargs)

        return call

    with contextlib.ExitStack() as stack:
        for target, replacement in [("builtins.open", open_), ("io.open", open_), ("os.open", os_open)] + [
            (f"os.{name}", refused(name)) for name in ("mkdir", "replace", "unlink")
        ]:
            stack.enter_context(mock.patch(target, replacement))
        yield


def one_error_line(err: str) -> str:
    assert "Traceback" not in err, err[-3000:]
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err[-3000:]
    return errors[0]


def _no_model(*args, **kwargs):
    raise AssertionError("a model was loaded: an unwritable --out must be refused before that")


@pytest.mark.parametrize("program", ["agentic", "ablate", "leaderboard"])
@pytest.mark.parametrize("where", ["new", "existing"])
def test_a_read_only_out_is_one_line(tmp_path, monkeypatch, capsys, own_logging, program, where):
    from agents.backends.llamacpp import LlamaCppBackend

    monkeypatch.setattr(LlamaCppBackend, "__init__", _no_model)
    spec = tmp_path / "spec.toml"
    spec.write_text(f'models = ["{TINY}"]\nlimit = 2\n' + ('graphs = ["single"]\n' if program == "ablate" else ""))
    locked = tmp_path / "locked"
    locked.mkdir()
    out = locked / "out" if where == "new" else locked
    argv = {
        "agentic": [*RUN, "--limit", "2", "--out", str(out)],
        "ablate": [str(spec), "--out", str(out)],
        "leaderboard": [str(spec), "--out", str(out)],
    }[program]
    with read_only(locked):
        status = {"agentic": agentic, "ablate": ablate, "leaderboard": leaderboard}[program].main(argv)
    error = one_error_line(capsys.readouterr().err)
    assert status == 2
    reason = "Read-only file system" if os.geteuid() == 0 else "Permission denied"
    assert f"{reason}" in error and "run the same command again to resume" in error, error
    assert list(locked.iterdir()) == []


def small_disk(limit: int):
    """A file may grow to `limit` bytes: past it write() fails (EFBIG; Python ignores SIGXFSZ), as on a full disk."""
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.slow
def test_a_full_disk_stops_the_run_in_one_line_and_the_resume_completes_it(tmp_path, monkeypatch, capsys, own_logging):
    out = tmp_path / "run"
    argv = [*RUN, "--limit", "2", "--out", str(out)]
    # Room for the manifest (~1.6 kB) and one prediction (~1.5 kB), not for two predictions in one file.
    full = subprocess.run(
        [sys.executable, "-m", "eval.agentic", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=small_disk(2500),
    )
    assert full.returncode == 2, full.stderr[-3000:]
    error = one_error_line(full.stderr)
    assert f"{out / 'predictions.jsonl'}: cannot write (File too large); 1 finished prediction kept in" in error
    assert "run the same command again to resume" in error
    kept = (out / "predictions.jsonl").read_bytes()
    assert kept.count(b"\n") == 1 and kept.endswith(b"\n")  # the record cut by the full disk is not left behind

    assert agentic.main(argv) == 0, capsys.readouterr().err[-3000:]  # space freed: the same command resumes
    capsys.readouterr()
    done = (out / "predictions.jsonl").read_bytes()
    assert done.startswith(kept) and done.count(b"\n") == 2 and len(read_predictions(out)) == 2

    # The finished run, its directory now read-only: one line, and nothing in it changes.
    from agents.backends.llamacpp import LlamaCppBackend

    monkeypatch.setattr(LlamaCppBackend, "__init__", _no_model)
    with read_only(out):
        assert agentic.main(argv) == 2
    error = one_error_line(capsys.readouterr().err)
    assert f"2 finished predictions kept in {out / 'predictions.jsonl'}" in error, error
    assert (out / "predictions.jsonl").read_bytes() == done
