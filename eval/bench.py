"""python -m eval.bench --model PATH: how close the evaluator runs to llama.cpp's own speed, on this machine, now.

Every figure that matters is a ratio between two things measured in the same run on the same model, so it holds
on a shared, noisy machine:
  throughput_ratio           seconds llama.cpp alone would need for the evaluator's token mix ÷ seconds the
                             evaluator took (1.0 = no overhead; the evaluator's tokens/s ÷ raw tokens/s)
  reflect_prompt_token_ratio prompt tokens reflect evaluated ÷ those its draft node alone evaluated (prefix reuse)
  scoring_speedup            seconds per question of per-option log-likelihood (5 independent requests, as
                             harnesses that send one request per option do) ÷ one-pass next-token scoring
  scoring_agreement          share of questions where both scoring methods choose the same letter
  restore_speedup            seconds per question of one-pass scoring cold ÷ the same prompts again, dropped from
                             the KV cache since and restored from the backend's kept states (keeping a state, done
                             once when the cache drops it, is kept_s_per_q apart)
  restore_agreement          share of questions where the restored scoring chooses the cold one's letter (must be 1)
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from agents.backends.llamacpp import LlamaCppBackend
from agents.messages import question_messages
from agents.prompts import load_prompts
from eval.api import RunSpec, evaluate
from eval.core.errors import fail
from eval.core.flags import HelpFormatter
from eval.core.schema import Question
from eval.core.store import read_predictions
from eval.data import BUNDLED, load_questions, select
from eval.models import DEFAULT_MODEL, ModelError, resolve_model

KEYS = (
    "throughput_ratio",
    "reflect_prompt_token_ratio",
    "scoring_speedup",
    "scoring_agreement",
    "restore_speedup",
    "restore_agreement",
)


def _logits(backend: LlamaCppBackend) -> np.ndarray:
    import llama_cpp

    llm = backend.llm
    return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(llm.n_vocab(),)).copy()


def raw_throughput(backend: LlamaCppBackend, prompt_tokens: int = 384, gen_tokens: int = 64) -> tuple[float, float]:
    """Prompt-processing and greedy-generation tokens/s through llama.cpp's low-level eval: the ceiling."""
    llm = backend.llm
    text = "患者男，62岁，突发胸骨后压榨性疼痛3小时，心电图示下壁导联ST段抬高。" * 40
    tokens = llm.tokenize(text.encode(), add_bos=True)[:prompt_tokens]
    llm.reset()
    start = time.perf_counter()
    llm.eval(tokens)
    pp = len(tokens) / (time.perf_counter() - start)
    start = time.perf_counter()
    for _ in range(gen_tokens):
        llm.eval([int(np.argmax(_logits(backend)))])
    tg = gen_tokens / (time.perf_counter() - start)
    llm.reset()
    return pp, tg


def per_option_loglik(backend: LlamaCppBackend, question: Question, prompts: dict) -> str:
    """The harness way: score each option's continuation as its own request, cache cleared in between."""
    llm = backend.llm
    messages = question_messages(prompts["system"], question, prompts["answer"])
    prompt, _ = backend._tokens(messages, prompts["answer_prefix"])
    totals = {}
    for letter, text in question.options.items():
        continuation = llm.tokenize(f"{letter}. {text}".encode(), add_bos=False, special=False)
        llm.reset()
        llm.eval(prompt)
        total = 0.0
        for token in continuation:
            logits = _logits(backend)
            total += float(logits[token] - np.logaddexp.reduce(logits))
            llm.eval([token])
        totals[letter] = total
    return max(totals, key=totals.__getitem__)


def one_pass(backend: LlamaCppBackend, question: Question, prompts: dict) -> str:
    backend.clear_cache()  # cold, like the per-option method: the comparison is one pass against five
    return score(backend, question, prompts)


def score(backend: LlamaCppBackend, question: Question, prompts: dict) -> str:
    messages = question_messages(prompts["system"], question, prompts["answer"])
    return backend.score_next(messages, question.letters, assistant_prefix=prompts["answer_prefix"]).text


def restored(backend: LlamaCppBackend, question: Question, prompts: dict) -> tuple[str, float, float]:
    """(letter, seconds to restore and score, seconds to keep) of one-pass scoring of a prompt evaluated before and
    kept when the KV cache let it go, then restored."""
    score(backend, question, prompts)
    start = time.perf_counter()
    backend.clear_cache(keep=True)
    kept = time.perf_counter()
    letter = score(backend, question, prompts)
    return letter, time.perf_counter() - kept, kept - start


def _timed(fn, items) -> tuple[list, float]:
    start = time.perf_counter()
    results = [fn(item) for item in items]
    return results, (time.perf_counter() - start) / len(items)


def bench(model: str, questions: int, n_threads: int | None, draft_tokens: int, critique_tokens: int) -> dict:
    path = resolve_model(model)
    backend = LlamaCppBackend(path, n_threads=n_threads)
    chosen = select(load_questions(BUNDLED), limit=questions)
    pp, tg = raw_throughput(backend)
    result: dict = {"model": path.name, "questions": len(chosen), "raw_prompt_tok_s": pp, "raw_gen_tok_s": tg}

    evaluated = completion = actual = 0.0
    for name in ("reflect", "single"):
        # One evaluator run per graph, as the CLI makes it (store, fsync and report included in the time).
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            # validated as RunSpec(...) would be: the strategies' options are RunSpec's fields only at run time
            spec = RunSpec.model_validate({
                "graph": name, "baseline": "none", "model": str(path), "out": Path(tmp), "draft_tokens": draft_tokens,
                "critique_tokens": critique_tokens,
            })  # fmt: skip
            backend.clear_cache()  # a fresh process's cold cache: one graph's figures do not depend on the other's
            start = time.perf_counter()
            evaluate(spec, questions=chosen, backend=backend)
            seconds = (time.perf_counter() - start) / len(chosen)
            predictions = list(read_predictions(Path(tmp)).values())
        assert all(p.parse_status != "error" for p in predictions), [p.error for p in predictions]
        ev = sum(p.prompt_tokens_evaluated for p in predictions)
        co = sum(p.completion_tokens for p in predictions)
        evaluated, completion, actual = evaluated + ev, completion + co, actual + seconds * len(chosen)
        result[f"{name}_questions_per_min"] = 60 / seconds
        result[f"{name}_prompt_tokens_sent_per_q"] = sum(p.prompt_tokens for p in predictions) / len(chosen)
        result[f"{name}_prompt_tokens_evaluated_per_q"] = ev / len(chosen)
        result[f"{name}_completion_tokens_per_q"] = co / len(chosen)
        if name == "reflect":
            draft = sum(s.prompt_tokens_evaluated for p in predictions for s in p.trace if s.node == "draft")
            result["reflect_prompt_token_ratio"] = ev / draft
    # What llama.cpp alone would need for the same evaluated prompt tokens and generated tokens.
    result["evaluator_tok_s"] = (evaluated + completion) / actual
    result["throughput_ratio"] = (evaluated / pp + completion / tg) / actual

    prompts = load_prompts("single")
    fast, one_pass_s = _timed(lambda q: one_pass(backend, q, prompts), chosen)
    slow, per_option_s = _timed(lambda q: per_option_loglik(backend, q, prompts), chosen)
    again, restored_s, kept_s = zip(*(restored(backend, q, prompts) for q in chosen), strict=True)
    result |= {
        "kept_s_per_q": sum(kept_s) / len(chosen),
        "restored_s_per_q": sum(restored_s) / len(chosen),
        "restore_speedup": one_pass_s * len(chosen) / sum(restored_s),
        "restore_agreement": sum(a == b for a, b in zip(fast, again, strict=True)) / len(chosen),
    }
    result |= {
        "one_pass_s_per_q": one_pass_s,
        "per_option_s_per_q": per_option_s,
        "scoring_speedup": per_option_s / one_pass_s,
        "scoring_agreement": sum(a == b for a, b in zip(fast, slow, strict=True)) / len(chosen),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    return result


def render(result: dict, baseline: dict | None) -> str:
    lines = [f"{'figure':<36} {'value':>12}" + (f" {'baseline':>12} {'ratio':>7}" if baseline else "")]
    for key, value in result.items():
        if isinstance(value, float):
            line = f"{key:<36} {value:>12.3f}"
            if baseline and isinstance(baseline.get(key), (int, float)) and baseline[key]:
                line += f" {baseline[key]:>12.3f} {value / baseline[key]:>7.2f}"
            lines.append(line)
        else:
            lines.append(f"{key:<36} {value!s:>12}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.bench", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--model", default=DEFAULT_MODEL, help="GGUF path or packaged model name")
    p.add_argument("--questions", type=int, default=7, help="bundled questions, stratified (default 7)")
    p.add_argument("--n-threads", type=int, default=None, help="CPU threads (default: all cores)")
    p.add_argument("--draft-tokens", type=int, default=128, help="the timed reflect runs' draft budget")
    p.add_argument("--critique-tokens", type=int, default=96, help="the timed reflect runs' critique budget")
    p.add_argument("--json", type=Path, help="write the figures here")
    p.add_argument("--baseline", type=Path, help="a previous --json to compare against (ratio column)")
    args = p.parse_args(argv)
    # Checked before the model loads: a bad value would otherwise end minutes of measuring in a traceback.
    if any(v is not None and v < 1 for v in (args.questions, args.n_threads, args.draft_tokens, args.critique_tokens)):
        p.error("--questions, --n-threads, --draft-tokens and --critique-tokens must be at least 1")
    if args.json and not args.json.parent.is_dir():
        p.error(f"--json {args.json}: {args.json.parent} is not a directory")
    try:
        baseline = json.loads(args.baseline.read_text()) if args.baseline else None
    except (OSError, ValueError) as e:
        return fail(f"--baseline {args.baseline}: {e.strerror if isinstance(e, OSError) else f'not JSON ({e})'}")
    try:
        result = bench(args.model, args.questions, args.n_threads, args.draft_tokens, args.critique_tokens)
        print(render(result, baseline))
        if args.json:
            args.json.write_text(json.dumps(result, indent=2))
    except (ModelError, OSError) as e:  # the figures are printed before --json is written
        return fail(e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
