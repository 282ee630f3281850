"""AMX CPUs: llama.cpp's AMX weight buffers crash the first multi-token batch (agents.backends.amx), so models load
without them there; the suite's model tests are what shows a run works on such a CPU."""

import llama_cpp.llama_cpp as low

from agents.backends import amx


def test_amx_is_read_from_the_cpu_flags(tmp_path):
    sapphire, older = tmp_path / "spr", tmp_path / "icx"
    sapphire.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f amx_bf16 amx_tile amx_int8\n", encoding="utf-8")
    older.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_vnni\nbugs\t\t: amx_int8_like\n")
    assert amx.has_amx(sapphire) and not amx.has_amx(older) and not amx.has_amx(tmp_path / "missing")


def test_models_load_without_extra_buffers_only_on_amx_cpus(monkeypatch):
    for cpu_has_amx in (True, False):
        monkeypatch.setattr(amx, "has_amx", lambda cpu_has_amx=cpu_has_amx: cpu_has_amx)
        with amx.without_amx_buffers():
            assert low.llama_model_default_params().use_extra_bufts is not cpu_has_amx
        assert low.llama_model_default_params().use_extra_bufts  # llama.cpp's default again afterwards
        assert amx.server_args() == (["--no-repack"] if cpu_has_amx else [])
