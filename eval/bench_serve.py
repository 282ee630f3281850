"""python -m eval.bench_serve: questions per minute through an OpenAI-compatible server at concurrency 1, 2, 4.

Starts `llama-server --parallel 4` on the model (or `python -m llama_cpp.server` with --engine, or measures the
server at `--base-url`), runs each graph over the same questions at each concurrency through the real runner and
the `openai` backend, and prints questions per minute, the speed-up over concurrency 1 in the same run, and how
many answers differ from concurrency 1's; `--json OUT` writes them.

llama_cpp.server (llama-cpp-python 0.3.x) has no parallel slots: one Llama object behind a global lock, so it
evaluates one request at a time whatever the concurrency. llama-server's slots decode concurrent requests in one
batch: on one machine, more slots (--parallel) rather than more server processes; across machines an off-the-shelf
proxy or the engine's own data parallelism spreads the requests (README, Scale-out).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

import structlog

from agents.backends.openai import OpenAIBackend
from agents.backends.probe import Capabilities
from agents.backends.retry import RetryPolicy
from eval.api import ERRORS, RunSpec, evaluate
from eval.core import log as logsetup
from eval.core.errors import fail
from eval.core.flags import HelpFormatter
from eval.core.store import read_predictions
from eval.data import BUNDLED, load_questions, select
from eval.models import ModelError, resolve_model
from eval.run.serve import ENGINES, LocalServer
from graphs import GraphSpec, UnknownGraph

log = structlog.get_logger()


def measure(backend: OpenAIBackend, graph: str, questions, n_ctx: int, concurrency: int, workdir: Path) -> dict:
    """One evaluator run (eval.api.evaluate, as the CLI makes it) of `graph` on `questions` at `concurrency`."""
    out = workdir / f"c{concurrency}"
    spec = RunSpec(
        graph=graph, baseline="none", backend="openai", out=out, fresh=True, concurrency=concurrency, n_ctx=n_ctx
    )
    start = time.perf_counter()
    result = evaluate(spec, questions=questions, backend=backend)
    seconds = time.perf_counter() - start
    costs = result.summary.graphs[0]
    preds = list(read_predictions(out).values())
    errors = sum(p.parse_status == "error" for p in preds)
    return {
        "concurrency": concurrency,
        "questions": len(questions),
        "seconds": round(seconds, 2),
        "questions_per_minute": round(60 * len(questions) / seconds, 2),
        "errors": errors,
        # What the server evaluated: a chain whose requests stay on one slot re-evaluates only its new turns.
        "prompt_tokens_per_q": round(costs.prompt_tokens_per_q, 1),
        "evaluated_tokens_per_q": round(costs.prompt_tokens_evaluated_per_q, 1),
        "completion_tokens_per_q": round(costs.completion_tokens_per_q, 1),
        "answers": {p.question_id: p.answer for p in preds},
    }


def in_process_single(model: Path, questions, n_ctx: int, n_threads: int, workdir: Path) -> float:
    """Seconds per question of `single` in-process on the questions the servers answer (the last one warms up, as
    there): the baseline a server is compared with."""
    from agents.backends.llamacpp import LlamaCppBackend

    backend = LlamaCppBackend(model, n_ctx=n_ctx, n_threads=n_threads)
    spec = RunSpec(graph="single", baseline="none", out=workdir / "in-process", n_ctx=n_ctx)
    evaluate(spec.model_copy(update={"out": workdir / "in-process-warm"}), questions=questions[-1:], backend=backend)
    start = time.perf_counter()
    evaluate(spec, questions=questions[:-1], backend=backend)
    return (time.perf_counter() - start) / (len(questions) - 1)


def _median(runs: list[dict]) -> dict:
    ranked = sorted(runs, key=lambda r: r["questions_per_minute"])
    best = dict(ranked[len(ranked) // 2])
    best["rounds"] = [r["questions_per_minute"] for r in runs]
    best["errors"] = sum(r["errors"] for r in runs)
    best["answers_differ"] = any(r["answers"] != runs[0]["answers"] for r in runs)
    return best


def bench_graph(connect, graph: str, questions, levels: list[int], rounds: int, n_ctx: int, work: Path) -> dict:
    """Each level on a freshly connected server (`connect()`, a context manager yielding a backend): a server keeps
    prompts it has seen (llama-server's slots and --cache-ram), so a second pass over the same questions would
    measure its cache, not its decoding."""
    runs: dict[int, list[dict]] = {c: [] for c in levels}
    for r in range(rounds):
        for c in levels[r % len(levels) :] + levels[: r % len(levels)]:
            with connect() as backend:
                # Load the model's pages and the shared system prompt before timing, on a question not timed.
                measure(backend, graph, questions[-1:], n_ctx, 1, work / "warm")
                runs[c].append(measure(backend, graph, questions[:-1], n_ctx, c, work / graph))
            log.info("bench.level", graph=graph, round=r + 1, concurrency=c, q_min=runs[c][-1]["questions_per_minute"])
    results = [_median(runs[c]) for c in levels]
    first = results[0]
    for level in results:
        level["speedup"] = round(level["questions_per_minute"] / first["questions_per_minute"], 2)
        # Greedy answers that differ from concurrency 1's: what batching changed (0 on an engine that serialises).
        level["answers_changed"] = sum(
            level["answers"][q] != a for q, a in first["answers"].items() if q in level["answers"]
        )
    return {
        "graph": graph,
        "same_answers_at_every_concurrency": all(
            r["answers_changed"] == 0 and not r["answers_differ"] for r in results
        ),
        "results": [{k: v for k, v in r.items() if k not in ("answers", "answers_differ")} for r in results],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.bench_serve", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--model", default="qwen2.5-coder-0.5b", help="GGUF path or packaged model name")
    p.add_argument(
        "--questions", type=int, default=16, help="bundled questions timed, stratified (default 16; one more warms up)"
    )
    p.add_argument("--graph", default="single,reflect", help="comma-separated graphs (default single,reflect)")
    p.add_argument("--concurrency", default="1,2,4", help="comma-separated levels (default 1,2,4)")
    p.add_argument("--engine", choices=ENGINES, default="llama-server", help="server to start (default llama-server)")
    p.add_argument("--parallel", type=int, default=4, help="llama-server slots (default 4)")
    p.add_argument("--n-threads", type=int, default=2, help="threads of the server (default 2)")
    p.add_argument("--n-ctx", type=int, default=4096, help="context per slot (default 4096)")
    p.add_argument("--base-url", help="measure this running server instead of starting one")
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="repeat every level this often, in rotated order, and keep the median (shared machines drift)",
    )
    p.add_argument(
        "--no-in-process", action="store_true", help="skip timing single in-process on the same questions first"
    )
    p.add_argument("--json", type=Path, help="write the figures here")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    logsetup.configure(args.verbose)
    try:
        levels = [int(c) for c in args.concurrency.split(",")]
    except ValueError:
        p.error(f"--concurrency {args.concurrency!r}: expected comma-separated whole numbers, e.g. 1,2,4")
    graphs = [g for g in args.graph.split(",") if g]
    if not graphs or min(levels) < 1 or min(args.rounds, args.parallel, args.questions, args.n_threads) < 1:
        p.error(
            "--concurrency levels, --parallel, --rounds, --questions and --n-threads must be positive; --graph names "
            "a graph"
        )
    for graph in graphs:  # before a server starts
        try:
            GraphSpec.parse(graph)
        except UnknownGraph as e:
            p.error(f"--graph: {e}")
    if args.n_ctx < 256:  # as the evaluator's own --n-ctx
        p.error(f"--n-ctx must be at least 256, got {args.n_ctx}")
    if args.json and not args.json.parent.is_dir():
        p.error(f"--json {args.json}: {args.json.parent} is not a directory")
    parallel = 1 if args.engine == "llama_cpp.server" else args.parallel

    try:
        model = resolve_model(args.model)
    except ModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    questions = select(load_questions(BUNDLED), limit=args.questions + 1)
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        work = Path(tmp)

        seen: list[Capabilities] = []

        @contextlib.contextmanager
        def connect():
            with contextlib.ExitStack() as stack:
                url = args.base_url
                if not url:
                    server = LocalServer(
                        args.engine,
                        model,
                        n_ctx=args.n_ctx,
                        n_threads=args.n_threads,
                        parallel=parallel,
                        log_path=work / "server.log",
                    )
                    url = stack.enter_context(server).url
                backend = OpenAIBackend(url, model_path=model, retry=RetryPolicy(retries=2))
                stack.callback(backend.close)
                seen.append(backend.probe())
                yield backend

        try:
            in_process = None
            if "single" in graphs and not args.no_in_process:
                in_process = in_process_single(model, questions, args.n_ctx, args.n_threads, work)
                log.info("bench.in_process", graph="single", s_per_q=round(in_process, 3))
            benches = [bench_graph(connect, g, questions, levels, args.rounds, args.n_ctx, work) for g in graphs]
        except ERRORS as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        caps = seen[0]
        if args.base_url:
            note = "a server started elsewhere is not restarted between levels: its prompt cache may serve questions"
            print(f"note: {note} an earlier level sent (compare evaluated tok/q across levels)", file=sys.stderr)

    summary = {
        "model": model.name,
        "engine": caps.engine.model_dump(),
        "server": args.base_url or f"{args.engine} (threads {args.n_threads}, {parallel} slots, n_ctx {args.n_ctx})",
        "prompt_mode": caps.prompt_mode,
        "method": caps.methods[0],
        "questions": len(questions) - 1,  # the last one warms each fresh server up
        "rounds": args.rounds,
        "graphs": benches,
    }
    if in_process is not None:
        single = next(b for b in benches if b["graph"] == "single")["results"][0]
        summary["single_in_process_s_per_q"] = round(in_process, 3)
        summary["single_server_vs_in_process"] = round(single["seconds"] / single["questions"] / in_process, 2)
    print(f"{summary['model']}, {summary['questions']} questions, {caps.engine.describe()}: {summary['server']}")
    print(f"| graph | concurrency | seconds (median of {args.rounds}) | questions/min | speed-up | answers changed "
          "vs c=1 | evaluated / prompt tok/q | every round (q/min) | errors |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for bench in benches:
        for r in bench["results"]:
            rounds = ", ".join(str(x) for x in r["rounds"])
            print(
                f"| {bench['graph']} | {r['concurrency']} | {r['seconds']} | {r['questions_per_minute']} "
                f"| {r['speedup']}x | {r['answers_changed']} | {r['evaluated_tokens_per_q']:.0f} / "
                f"{r['prompt_tokens_per_q']:.0f} | {rounds} | {r['errors']} |"
            )
    if in_process is not None:
        print(f"single at concurrency {levels[0]}: {summary['single_server_vs_in_process']}x the in-process "
              f"{summary['single_in_process_s_per_q']} s/question on the same questions and threads")  # fmt: skip
    if args.json:
        try:
            args.json.write_text(json.dumps(summary, indent=2), encoding="utf-8")
        except OSError as e:  # the figures are printed above
            return fail(e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
