"""The HTML pages say what the Markdown reports say, in the same units: a run page's headline columns are report.md's
(names and numbers), an ablation's and a leaderboard's are their Markdown tables'; parameter counts read as
eval.render.fmt.params_text writes them, in the text and on the leaderboard's log-scale axes; accuracy is plotted in
% on the same axis by a run's page and the leaderboard's."""

import json
import re

import pytest

pytest.importorskip("matplotlib", reason="the HTML report draws with matplotlib: pip install matplotlib")

from eval.core.schema import Message, Prediction, RunConfig, TraceStep
from eval.core.store import RunStore
from eval.render import run_page
from eval.results.pages import load_run_page

# -- a run -----------------------------------------------------------------------------------------


def token_run(root, model_info: dict | None = None):
    """Two graphs on three questions, with prompt tokens partly cached, generated tokens and (cot) thinking."""
    data = root / "q.jsonl"
    questions = [
        {"id": f"q{i}", "stem": f"题{i}", "options": {"A": "甲", "B": "乙", "C": "丙"}, "answer": "AB"[i % 2]}
        for i in range(3)
    ]
    data.write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in questions), encoding="utf-8")
    out = root / "run"
    config = RunConfig(
        graphs=["cot", "single"], model="m.gguf", model_sha256="", data=str(data), data_sha256="",
        question_ids=[q["id"] for q in questions], model_info=model_info or {},
    )  # fmt: skip
    store = RunStore(out, config)
    for i, q in enumerate(questions):
        user = [Message(role="user", content=q["stem"])]
        for graph, calls, prompt, cached, completion, thinking in (("cot", 2, 301, 100, 57 + i, 20 + i),
                                                                   ("single", 1, 120, 40 * i, 0, 0)):  # fmt: skip
            step = TraceStep(
                node="answer", messages=user, output="A", prompt_tokens=prompt, completion_tokens=completion
            )
            store.append(
                Prediction(
                    question_id=q["id"], graph=graph, answer="A", gold=q["answer"], correct=q["answer"] == "A",
                    parse_status="ok", answer_method="regex", trace=[step] * calls, model_calls=calls,
                    prompt_tokens=prompt, prompt_tokens_evaluated=prompt - cached, completion_tokens=completion,
                    reasoning_tokens=thinking, seconds=0.5 + i,
                )
            )  # fmt: skip
    store.close()
    return out


@pytest.mark.parametrize(
    ("info", "said"),
    [
        ({"architecture": "llama", "total_params": 1.4e6, "quantization": "F32"}, "llama, 1.4M parameters, F32"),
        ({"architecture": "llama", "total_params": 135e6, "quantization": "Q4_1"}, "llama, 135M parameters, Q4_1"),
        (
            {"architecture": "qwen3moe", "total_params": 30.5e9, "is_moe": True, "n_experts": 128,
             "n_experts_used": 8, "active_params": 3.3e9, "quantization": "Q4_K_M"},
            "qwen3moe, 30.5B parameters, MoE: 128 experts, 8 used per token, 3.3B active, Q4_K_M",
        ),
    ],
)  # fmt: skip
def test_a_run_page_says_parameter_counts_as_the_tables_do(tmp_path, info, said):
    document = run_page.render(load_run_page(token_run(tmp_path, info)))
    assert f"Model <code>m.gguf ({said})</code>" in document
    assert not re.search(r"\d\.\d\dB parameters", document.replace(said, ""))
