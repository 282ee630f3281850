"""A real run killed with SIGKILL at random moments, resumed each time, loses nothing, duplicates nothing, and ends
with the same answers and report as a run that was never interrupted."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path

import pytest
from conftest import ROOT, TINY, run_main

from eval.core.schema import Prediction

ARGS = (
    "--graph",
    "reflect",
    "--model",
    TINY,
    "--limit",
    "6",
    "--draft-tokens",
    "48",
    "--critique-tokens",
    "32",
    "--n-ctx",
    "2048",
)
GRAPHS = ("reflect", "single")
BLIND, AFTER_PROGRESS = 4, 3  # kills of each kind; at least 5 of the 7 must land on a live process
SEED = 20240501
TIMEOUT = 600  # a whole run under heavy CPU contention; normally well under a minute


def command(out: Path) -> list[str]:
    return [sys.executable, "-m", "eval.agentic", *ARGS, "--out", str(out)]


def complete_lines(path: Path) -> list[bytes]:
    """The lines a resume must keep: everything up to the last newline (a torn tail is not a record yet)."""
    if not path.exists():
        return []
    data = path.read_bytes()
    return data[: data.rfind(b"\n") + 1].splitlines(keepends=True)


def wait_for_new_line(path: Path, proc: subprocess.Popen, seen: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if len(complete_lines(path)) > seen:
            return True
        time.sleep(0.05)
    return False


def final_predictions(path: Path) -> dict[tuple[str, str], Prediction]:
    """The store's rule: the last line per (graph, question_id) wins."""
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        p = Prediction.model_validate_json(line)
        found[(p.graph, p.question_id)] = p
    return found


def without_columns(markdown: str, dropped: set[str]) -> str:
    """report.md with the columns that legitimately differ between runs (wall time, KV-cache reuse) removed."""
    out, drop = [], set()
    for line in markdown.splitlines():
        if not line.startswith("|"):
            drop = set()
            out.append(line)
            continue
        cells = line.strip("|").split("|")
        if not drop and not set(cells) <= {"---"}:  # a table's header row decides which columns go
            drop = {i for i, c in enumerate(cells) if c.strip() in dropped}
        out.append("|".join(c for i, c in enumerate(cells) if i not in drop))
    return "\n".join(out)


# What must not depend on kills: accuracies, flips, parse counts, calls and tokens generated. Left out: seconds, and
# evaluated prompt tokens (a resumed process starts with a cold KV cache, so it re-evaluates more).
GRAPH_FIELDS = (
    "overall",
    "by_specialty",
    "by_level",
    "unparsed",
    "errors",
    "draft_to_final",
    "calls_per_q",
    "prompt_tokens_per_q",
    "completion_tokens_per_q",
)


def comparable_summary(path: Path) -> dict:
    summary = json.loads(path.read_text(encoding="utf-8"))
    return {
        "questions": summary["questions"],
        "graphs": [{k: g[k] for k in ("graph", *GRAPH_FIELDS)} for g in summary["graphs"]],
        "comparisons": summary["comparisons"],
    }


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume(tmp_path, capsys):
    rng = random.Random(SEED)
    out = tmp_path / "killed"
    path = out / "predictions.jsonl"
    landed = {"starting": 0, "evaluating": 0}
    missed = 0
    torn_injected = False
    # Blind delays are spread evenly over 0.3-4 s (one seeded draw per slice) so both startup and evaluation get hit.
    slices = [0.3 + 3.7 * i / BLIND for i in range(BLIND + 1)]
    blind = [rng.uniform(lo, hi) for lo, hi in pairwise(slices)]
    rng.shuffle(blind)
    plan = [
        ("blind", blind[i // 2]) if i % 2 == 0 else ("progress", rng.uniform(0.0, 2.0))
        for i in range(BLIND + AFTER_PROGRESS)
    ]
    for attempt, (how, delay) in enumerate(plan):
        before = complete_lines(path)
        err = tmp_path / f"stderr-{attempt}.log"
        with open(err, "wb") as stderr:
            proc = subprocess.Popen(command(out), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr)
            try:
                if how == "progress":
                    # Once this process has appended a prediction, so the kill lands inside a later question
                    # (on a slow machine a blind kill would rarely get past model loading).
                    wait_for_new_line(path, proc, len(before), TIMEOUT)
                time.sleep(delay)
                if proc.poll() is None:
                    proc.kill()  # SIGKILL: no handler, no finally, no flush
                    landed["evaluating" if b'"run.start"' in err.read_bytes() else "starting"] += 1
                else:
                    missed += 1
            finally:
                proc.kill()
                proc.wait()
        after = complete_lines(path)
        # Append-only: a kill (and the resume before it) never rewrites or drops a finished record.
        assert after[: len(before)] == before, f"attempt {attempt}: finished predictions were lost or rewritten"
        for line in after:
            Prediction.model_validate_json(line)
        if not torn_injected and after:
            # A real SIGKILL almost never lands inside the single write() of a line, so make the torn tail it
            # would leave: half of a record, no newline. The next resume must drop it.
            with open(path, "ab") as f:
                f.write(after[-1][: len(after[-1]) // 2])
            torn_injected = True

    finished = subprocess.run(command(out), cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT)
    assert finished.returncode == 0, finished.stderr
    kills = landed["starting"] + landed["evaluating"]
    with capsys.disabled():
        print(
            f"\n[kill-resume] {kills} of {len(plan)} SIGKILLs landed mid-run "
            f"({landed['starting']} while starting or loading the model, {landed['evaluating']} while evaluating); "
            f"{missed} found the run already finished; "
            f"torn tail injected: {torn_injected}"
        )
    assert kills >= 5
    assert landed["evaluating"] >= 1
    assert torn_injected

    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    lines = [Prediction.model_validate_json(line) for line in raw.decode("utf-8").splitlines()]  # every line parses
    manifest = json.loads((out / "manifest.json").read_text())
    expected = {(g, q) for g in GRAPHS for q in manifest["question_ids"]}
    assert len(manifest["question_ids"]) == 6
    final = final_predictions(path)
    assert set(final) == expected
    assert all(p.parse_status != "error" for p in final.values())
    # Stricter than the store's dedup: no (graph, question) was answered twice.
    non_error = [(p.graph, p.question_id) for p in lines if p.parse_status != "error"]
    assert sorted(non_error) == sorted(expected), "a prediction was duplicated or is missing"

    # The same command, never interrupted: greedy decoding makes the outcome identical. Run in this process, on the
    # session's model and whatever its caches hold (results do not depend on them), it needs no fresh start.
    clean = tmp_path / "clean"
    reference = run_main("eval.agentic", *ARGS, "--out", clean)
    assert reference.returncode == 0, reference.stderr
    ref = final_predictions(clean / "predictions.jsonl")
    outcome = lambda ps: {k: (p.answer, p.draft_answer, p.parse_status, p.correct) for k, p in ps.items()}  # noqa: E731
    assert outcome(final) == outcome(ref)
    assert comparable_summary(out / "summary.json") == comparable_summary(clean / "summary.json")
    dropped = {"s/q", "evaluated tok/q"}
    assert without_columns((out / "report.md").read_text(encoding="utf-8"), dropped) == without_columns(
        (clean / "report.md").read_text(encoding="utf-8"), dropped
    )
