"""python -m eval.bench_serve: questions per minute through an OpenAI-compatible server at concurrency 1, 2, 4.

Starts `python -m llama_cpp.server` on the model (or measures the server at `--base-url`), runs a graph over the
same questions at each concurrency through the real runner and the `openai` backend, and prints questions per
minute and the speed-up over concurrency 1; `--json OUT` writes them.

llama_cpp.server (llama-cpp-python 0.3.x) has no parallel slots: one Llama object behind a global lock, so one
server evaluates one request at a time whatever the concurrency. Concurrency pays off with servers that batch
(llama-server --parallel N, vLLM); replicas on one machine are what --parallel is for, and across machines an
off-the-shelf proxy (nginx, see the README) or the engine's own data parallelism spreads the requests.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import structlog

from agents.backends.base import BackendError
from agents.backends.openai import OpenAIBackend, RetryPolicy
from eval import log as logsetup
from eval.api import RunSpec, evaluate
from eval.data import BUNDLED, load_questions, select
from eval.models import ModelError, resolve_model
from eval.store import read_predictions

log = structlog.get_logger()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalServer:
    """One `python -m llama_cpp.server` child process on a free loopback port."""

    def __init__(self, model: Path, *, n_ctx: int, n_threads: int, log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
               "--port", str(self.port), "--n_ctx", str(n_ctx), "--n_threads", str(n_threads)]  # fmt: skip
        # The child process writes to this handle for its whole life; it is closed when the server stops.
        self._log = open(log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT)
        self.log_path = log_path

    def wait(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if httpx.get(f"{self.url}/v1/models", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        tail = self.log_path.read_text(errors="replace")[-1500:]
        raise BackendError(
            f"llama_cpp.server did not start (is the server extra installed? pip install -e '.[server]'):\n{tail}"
        )

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


def measure(backend: OpenAIBackend, graph: str, questions, n_ctx: int, concurrency: int, workdir: Path) -> dict:
    """One evaluator run (eval.api.evaluate, as the CLI makes it) of `graph` on `questions` at `concurrency`."""
    out = workdir / f"c{concurrency}"
    spec = RunSpec(
        graph=graph, baseline="none", backend="openai", out=out, fresh=True, concurrency=concurrency, n_ctx=n_ctx
    )
    start = time.perf_counter()
    evaluate(spec, questions=questions, backend=backend)
    seconds = time.perf_counter() - start
    preds = list(read_predictions(out).values())
    errors = sum(p.parse_status == "error" for p in preds)
    return {
        "concurrency": concurrency,
        "questions": len(questions),
        "seconds": round(seconds, 2),
        "questions_per_minute": round(60 * len(questions) / seconds, 2),
        "errors": errors,
        "answers": {p.question_id: p.answer for p in preds},
    }


def _median(runs: list[dict]) -> dict:
    ranked = sorted(runs, key=lambda r: r["questions_per_minute"])
    best = dict(ranked[len(ranked) // 2])
    best["rounds"] = [r["questions_per_minute"] for r in runs]
    best["errors"] = sum(r["errors"] for r in runs)
    best["answers_differ"] = any(r["answers"] != runs[0]["answers"] for r in runs)
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m eval.bench_serve", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default="smollm2-135m", help="GGUF path or packaged model name (default smollm2-135m)")
    p.add_argument("--questions", type=int, default=12, help="bundled questions, stratified (default 12)")
    p.add_argument("--graph", default="single", help="graph to run (default single)")
    p.add_argument("--concurrency", default="1,2,4", help="comma-separated levels (default 1,2,4)")
    p.add_argument("--n-threads", type=int, default=1, help="threads per server (default 1)")
    p.add_argument("--n-ctx", type=int, default=2048)
    p.add_argument("--base-url", help="measure this running server instead of starting llama_cpp.server")
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="repeat every level this often, in rotated order, and keep the median (shared machines drift)",
    )
    p.add_argument("--json", type=Path, help="write the figures here")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    logsetup.configure(args.verbose)
    levels = [int(c) for c in args.concurrency.split(",")]
    if not levels or min(levels) < 1 or args.rounds < 1:
        p.error("--concurrency levels and --rounds must be positive")

    try:
        model = resolve_model(args.model)
    except ModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    questions = select(load_questions(BUNDLED), limit=args.questions)
    server: LocalServer | None = None
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        work = Path(tmp)
        try:
            if args.base_url:
                base_url = args.base_url
            else:
                print("note: llama_cpp.server has no parallel slots (no --n_parallel setting): it evaluates one "
                      "request at a time; measure a batching server with --base-url",
                      file=sys.stderr)  # fmt: skip
                server = LocalServer(model, n_ctx=args.n_ctx, n_threads=args.n_threads, log_path=work / "server.log")
                server.wait()
                base_url = f"{server.url}/v1"
            backend = OpenAIBackend(base_url, model_path=model, retry=RetryPolicy(retries=2))
            caps = backend.probe()
            warm = questions[:1]  # load the model's pages and the system-prompt prefix before timing
            measure(backend, args.graph, warm, args.n_ctx, 1, work / "warm")
            runs: dict[int, list[dict]] = {c: [] for c in levels}
            for r in range(args.rounds):
                for c in levels[r % len(levels) :] + levels[: r % len(levels)]:
                    runs[c].append(measure(backend, args.graph, questions, args.n_ctx, c, work))
                    log.info(
                        "bench.level",
                        round=r + 1,
                        concurrency=c,
                        questions_per_minute=runs[c][-1]["questions_per_minute"],
                    )
            results = [_median(runs[c]) for c in levels]
        except BackendError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        finally:
            if server:
                server.stop()

    base = results[0]["questions_per_minute"]
    for r in results:
        r["speedup"] = round(r["questions_per_minute"] / base, 2)
    same = all(r["answers"] == results[0]["answers"] and not r["answers_differ"] for r in results)
    summary = {
        "model": model.name,
        "graph": args.graph,
        "server": args.base_url
        or f"llama_cpp.server (n_threads={args.n_threads}, n_ctx={args.n_ctx}, no parallel slots)",
        "prompt_mode": caps.prompt_mode,
        "method": caps.methods[0],
        "questions": len(questions),
        "same_answers_at_every_concurrency": same,
        "rounds": args.rounds,
        "results": [{k: v for k, v in r.items() if k not in ("answers", "answers_differ")} for r in results],
    }
    print(f"{summary['graph']} on {summary['model']}, {summary['questions']} questions, {summary['server']}")
    print(
        f"| concurrency | seconds (median of {args.rounds}) | questions/min | speed-up | every round (q/min) | errors |"
    )
    print("|---|---|---|---|---|---|")
    for r in summary["results"]:
        rounds = ", ".join(str(x) for x in r["rounds"])
        print(
            f"| {r['concurrency']} | {r['seconds']} | {r['questions_per_minute']} | {r['speedup']}x "
            f"| {rounds} | {r['errors']} |"
        )
    print(f"same answers at every concurrency: {'yes' if same else 'no'}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
