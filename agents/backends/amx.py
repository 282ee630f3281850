"""Intel AMX and llama.cpp: load weights without AMX buffers, in-process and in the servers this project starts.

On CPUs with AMX (Sapphire Rapids and later) a llama.cpp built for the machine moves the weights into AMX buffers,
and the first batch of more than one token crashes in ggml_backend_amx_mul_mat (ggml-org/llama.cpp#20824, open;
reproduced with SmolLM2-135M Q4_1 and llama-cpp-python 0.3.36: every prompt segfaulted, in-process, in
llama_cpp.server and in llama-server). Loading without llama.cpp's extra buffer types (llama-server's --no-repack)
avoids it; elsewhere nothing changes. `python -m agents.backends.amx ARGS` is `python -m llama_cpp.server ARGS`
with that applied.
"""

from __future__ import annotations

import contextlib
import functools
import runpy
from collections.abc import Iterator
from pathlib import Path


@functools.cache
def has_amx(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU has AMX's integer tiles, which llama.cpp uses for quantized weights."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return any(line.startswith("flags") and "amx_int8" in line.split() for line in text.splitlines())


@contextlib.contextmanager
def without_amx_buffers() -> Iterator[None]:
    """While models load in this block, on an AMX CPU, llama-cpp-python loads them without extra buffer types."""
    if not has_amx():
        yield
        return
    import llama_cpp.llama_cpp as low

    default = low.llama_model_default_params

    def params():  # Llama() takes its model parameters from here and sets only the ones it knows
        p = default()
        p.use_extra_bufts = False
        return p

    low.llama_model_default_params = params
    try:
        yield
    finally:
        low.llama_model_default_params = default


def server_args() -> list[str]:
    """llama-server's flags for the same."""
    return ["--no-repack"] if has_amx() else []


if __name__ == "__main__":
    with without_amx_buffers():
        runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
