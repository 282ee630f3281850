"""The benchmark runs and reports every figure (its numbers are machine-dependent: only their shape is checked)."""

import json

from eval.bench import KEYS, main


def test_bench_reports_ratios_and_compares_to_a_baseline(tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = ["--model", "smollm2-135m", "--questions", "1", "--draft-tokens", "16", "--critique-tokens", "16", "--n-threads", "1"]
    assert main([*args, "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert all(key in result for key in KEYS)
    assert 0 <= result["scoring_agreement"] <= 1
    assert result["scoring_speedup"] > 1, "five independent passes cannot beat one"
    assert result["reflect_prompt_token_ratio"] >= 1
    assert 0 < result["throughput_ratio"] < 2
    assert result["peak_rss_mib"] > 0
    capsys.readouterr()
    assert main([*args, "--baseline", str(out)]) == 0
    assert "baseline" in capsys.readouterr().out


def test_missing_model_is_a_clear_error(tmp_path, capsys):
    assert main(["--model", str(tmp_path / "nope.gguf")]) == 2
    assert "error:" in capsys.readouterr().err
