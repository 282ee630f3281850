"""The benchmark on the real tiny model. Its figures are machine-dependent, so the checks are relations that hold
on any machine: each headline ratio is the quotient of the figures it is reported beside, reflect's prefix reuse
evaluates fewer prompt tokens than it sends, and the baseline column divides by the baseline."""

import json

import pytest

from eval.bench import KEYS, main, render


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    args = [
        "--model",
        "smollm2-135m",
        "--questions",
        "1",
        "--draft-tokens",
        "16",
        "--critique-tokens",
        "16",
    ]
    assert main([*args, "--json", str(out)]) == 0
    return json.loads(out.read_text())


@pytest.mark.slow
def test_ratios_are_the_quotients_of_what_was_measured(result):
    assert all(key in result for key in KEYS)
    graphs = ("reflect", "single")
    seconds = sum(60 / result[f"{g}_questions_per_min"] for g in graphs)  # per question, both graphs
    evaluated = sum(result[f"{g}_prompt_tokens_evaluated_per_q"] for g in graphs)
    generated = sum(result[f"{g}_completion_tokens_per_q"] for g in graphs)
    # What llama.cpp alone would need for the evaluator's tokens, over what the evaluator took.
    llama_cpp_alone = evaluated / result["raw_prompt_tok_s"] + generated / result["raw_gen_tok_s"]
    assert result["throughput_ratio"] == pytest.approx(llama_cpp_alone / seconds)
    assert result["evaluator_tok_s"] == pytest.approx((evaluated + generated) / seconds)
    assert result["scoring_speedup"] == pytest.approx(result["per_option_s_per_q"] / result["one_pass_s_per_q"])
    assert result["per_option_s_per_q"] > result["one_pass_s_per_q"], "five cold passes cannot beat one"
    assert result["restore_speedup"] == pytest.approx(result["one_pass_s_per_q"] / result["restored_s_per_q"])
    assert result["restore_speedup"] > 1 and result["restore_agreement"] == 1.0
    # A prompt is evaluated in batches, generation one token at a time: the raw ceiling must show that.
    assert result["raw_prompt_tok_s"] > result["raw_gen_tok_s"]


@pytest.mark.slow
def test_reflect_reuses_its_prefix(result):
    # critique and extract extend the draft's conversation: the KV cache spares the shared prefix.
    assert result["reflect_prompt_tokens_evaluated_per_q"] < result["reflect_prompt_tokens_sent_per_q"]
    assert result["reflect_prompt_token_ratio"] > 1, "the critique and extraction evaluate tokens of their own"


def test_baseline_column_divides_by_the_baseline():
    result = {"model": "m.gguf", "throughput_ratio": 0.9, "scoring_speedup": 3.0, "peak_rss_mib": 500.0, "errors": 0.0}
    baseline = {"throughput_ratio": 0.6, "scoring_speedup": 4.0, "peak_rss_mib": 250.0, "errors": 0.0}
    lines = {line.split()[0]: line.split()[1:] for line in render(result, baseline).splitlines()[1:]}
    assert lines == {
        "model": ["m.gguf"],
        "throughput_ratio": ["0.900", "0.600", "1.50"],
        "scoring_speedup": ["3.000", "4.000", "0.75"],
        "peak_rss_mib": ["500.000", "250.000", "2.00"],
        "errors": ["0.000"],  # no ratio against a zero baseline
    }


def test_missing_model_or_baseline_is_a_clear_error(tmp_path, capsys):
    assert main(["--model", str(tmp_path / "nope.gguf")]) == 2
    assert main(["--model", "smollm2-135m", "--baseline", str(tmp_path / "nope.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 2 and "nope.json" in err


def test_one_pass_scoring_is_timed_cold(tiny_backend, monkeypatch):
    """The one-pass side of scoring_speedup evaluates its whole prompt, as each per-option request does, even where
    the backend still holds that prompt (in its KV cache or its kept states)."""
    from agents.messages import question_messages
    from agents.prompts import load_prompts
    from eval.bench import one_pass
    from eval.data import BUNDLED, load_questions, select

    (question,) = select(load_questions(BUNDLED), limit=1)
    prompts = load_prompts("single")
    one_pass(tiny_backend, question, prompts)
    tiny_backend.score_next(
        question_messages("别的提示。", question, "别的问题"), question.letters
    )  # the first is kept
    seen = []
    score_next = tiny_backend.score_next
    monkeypatch.setattr(tiny_backend, "score_next", lambda *a, **k: seen.append(score_next(*a, **k)) or seen[-1])
    one_pass(tiny_backend, question, prompts)
    assert seen[0].prompt_tokens_evaluated == seen[0].prompt_tokens
