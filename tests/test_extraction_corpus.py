"""Answer extraction on real model outputs: every free-text step the packaged models wrote, labelled by hand.

tests/data/extraction_corpus.jsonl holds one record per output: the drafts, critiques, chains of thought and
self-consistency samples that `python -m eval.agentic --graph cot|reflect|sc --baseline none` produced with
smollm2-135m, qwen2.5-coder-0.5b and qwen2.5-coder-1.5b (prompt variants zh, zh-plain, en, en-plain; default token
budgets, 256 for some SmolLM2 runs) on the bundled questions and on CMMLU clinical knowledge, each trace step's
`output` once (deduplicated); served by llama-server (`--parallel 4`, `--backend openai --prompt-mode completions`,
the GGUF's own chat template rendered here) for speed on a shared CPU. gemma3-270m is not among them: it has no chat
template, and the evaluator refuses it. `finish` is why generation stopped. `label` is the letter the text commits
to as its answer (for a critique, the letter the critic proposes), read by a person; null when it commits to none:
cut off before an answer, two letters, an analysis only, an echoed option list. `why` says why where that is not
obvious.

A parser may miss (leave an answer unparsed) but never commit wrongly: a wrong letter is scored as the model's
answer, a miss is at least counted as unparsed. CMMLU's option texts are not copied into the repository (its
licence): they are read in place from the shared data when it is there, else those records are parsed without
them (which can only turn a parse into a miss, never into another letter).

Run as a script to see every miss and wrong commit, optionally for another version of agents/answer.py:
    python tests/test_extraction_corpus.py [path/to/answer.py]
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections import Counter
from pathlib import Path

from agents.answer import parse_letter

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests/data/extraction_corpus.jsonl"
CMMLU = ROOT.parent / "shared/data/cmmlu/clinical_knowledge.csv"  # real CMMLU, used in place (see its README)
MODELS = {"smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"}


def load_corpus() -> list[dict]:
    records = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    if CMMLU.is_file():
        from eval.data import load_questions

        options = {q.id: q.options for q in load_questions(CMMLU)}
        for r in records:
            if r["data"] == "cmmlu":
                r["options"] = options[r["question"]]
    return records


def outcomes(records: list[dict], parse=parse_letter) -> dict[str, list[tuple[dict, str | None]]]:
    """Each record with what `parse` read: right, missed (unparsed where a letter was meant) or wrong."""
    out: dict[str, list[tuple[dict, str | None]]] = {"right": [], "missed": [], "wrong": []}
    for r in records:
        got = parse(r["text"], list(r["letters"]), r["options"] or {})
        kind = "right" if got == r["label"] else "missed" if got is None else "wrong"
        out[kind].append((r, got))
    return out


def describe(outcome: dict[str, list[tuple[dict, str | None]]]) -> str:
    n = sum(len(v) for v in outcome.values())
    lines = [
        f"{len(outcome['right'])}/{n} right ({len(outcome['right']) / n:.1%}), "
        f"{len(outcome['missed'])} missed, {len(outcome['wrong'])} wrong commits"
    ]
    for kind in ("wrong", "missed"):
        for r, got in outcome[kind]:
            tail = r["text"][-160:].replace("\n", "⏎")
            lines.append(f"{kind}: {r['id']} {r['model']} {r['node']} label={r['label']} parsed={got}: …{tail}")
    return "\n".join(lines)


RECORDS = load_corpus()


def test_the_corpus_is_large_real_and_labelled():
    assert len(RECORDS) >= 300 and len({r["id"] for r in RECORDS}) == len(RECORDS)
    assert {r["model"] for r in RECORDS} == MODELS
    assert {"draft", "critique", "reason", "sample"} <= {r["node"] for r in RECORDS}
    assert {r["data"] for r in RECORDS} == {"bundled", "cmmlu"}
    assert all(r["label"] is None or r["label"] in r["letters"] for r in RECORDS)
    labelled = Counter(r["label"] is not None for r in RECORDS)
    assert labelled[True] >= 100 and labelled[False] >= 100  # both commitments and non-answers are exercised


def test_no_wrong_commit_and_at_least_98_percent_right():
    outcome = outcomes(RECORDS)
    report = describe(outcome)
    print(report)
    assert not outcome["wrong"], report
    assert len(outcome["right"]) >= 0.98 * len(RECORDS), report


if __name__ == "__main__":
    parse = parse_letter
    if len(sys.argv) > 1:  # another version of agents/answer.py, e.g. `git show REV:agents/answer.py > old.py`
        spec = importlib.util.spec_from_file_location("answer_under_test", sys.argv[1])
        module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # dataclasses look it up
        spec.loader.exec_module(module)
        parse = module.parse_letter
    print(describe(outcomes(RECORDS, parse)))
