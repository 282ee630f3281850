"""python -m eval.agentic --graph reflect: run a chain and the single-shot baseline on the same questions.

Writes predictions (JSONL with full traces), a Markdown report and prints the comparison.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# Nothing may leave the machine: LangChain/LangSmith tracing stays off even if the environment asks for it.
os.environ["LANGCHAIN_TRACING_V2"] = "false"
os.environ["LANGSMITH_TRACING"] = "false"

import structlog

from agents.llamacpp import BackendError, LlamaCppBackend
from agents.openai_backend import CHAT_PROMPTS_VERSION, OpenAIBackend, RetryPolicy, api_key_from_env
from agents.prompts import UnknownVariant
from agents.retrieve import Retrieval
from eval import log as logsetup
from eval.data import BUNDLED, DataError, key_sha256, questions_sha256, select
from eval.data.loaders import load
from eval.gguf_info import inspect_gguf
from eval.models import DEFAULT_MODEL, ModelError, model_sha256, resolve_model
from eval.report import render_markdown, summarize
from eval.runner import run
from eval.schema import SPECIALTIES, RunConfig
from eval.shuffle import shuffle_options
from eval.store import RunDirError, RunStore
from graphs import GRAPHS, RAG_SUFFIX, UnknownGraph, parse_graph_name
from retrieval import RetrievalError

# 28 stratified questions (2 per specialty x level) keep the default run (reflect + single, 0.5B model,
# 2 CPU cores) near 6 minutes.
DEFAULT_LIMIT = 28


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m eval.agentic", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--graph", default="reflect", help=f"strategy to evaluate ({', '.join(GRAPHS)}); default reflect")
    p.add_argument("--baseline", default="single", help="graph to compare against on the same questions, or 'none'")
    p.add_argument(
        "--model",
        help=f"GGUF path or packaged model name; default {DEFAULT_MODEL}. With --backend openai: the GGUF the server serves "
        "(optional; its chat template lets prompts match the in-process run exactly)",
    )
    p.add_argument(
        "--data",
        type=Path,
        default=BUNDLED,
        help="dataset file or directory of JSONL files; default: bundled questions",
    )
    p.add_argument(
        "--format",
        default="auto",
        help="dataset format: auto, native, cmexam, cmb, medqa, mmlu, generic (see python -m eval.data)",
    )
    p.add_argument("--answers", type=Path, help="CMB: answers in a separate file, joined by id")
    p.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="FIELD=SOURCE",
        help="generic format: our field = the dataset's field",
    )
    p.add_argument("--mapping", type=Path, help="TOML of department/exam-class rules checked before the bundled ones")
    p.add_argument("--encoding", help="dataset text encoding (default: detect UTF-8, else GB18030/GBK)")
    p.add_argument(
        "--skip-bad", action="store_true", help="skip malformed records (counted in the report) instead of stopping"
    )
    p.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        help=f"questions, stratified over specialty x level; 0 = all (default {DEFAULT_LIMIT})",
    )
    p.add_argument(
        "--specialty", action="append", default=[], choices=SPECIALTIES, help="keep only this specialty (repeatable)"
    )
    p.add_argument(
        "--level",
        action="append",
        default=[],
        choices=["attending", "senior"],
        help="keep only this level (repeatable)",
    )
    p.add_argument(
        "--out",
        type=Path,
        help="run directory; re-running with the same --out resumes (default runs/GRAPH-vs-BASELINE-MODEL)",
    )
    p.add_argument("--fresh", action="store_true", help="discard what --out holds and start over")
    p.add_argument(
        "--retrieval",
        action="store_true",
        help=f"precede --graph with guideline retrieval (same as --graph NAME{RAG_SUFFIX})",
    )
    p.add_argument(
        "--retriever",
        default="hybrid",
        choices=["dense", "bm25", "hybrid"],
        help="dense (e5), bm25 (jieba), or both fused (default)",
    )
    p.add_argument("--top-k", type=int, default=4, help="passages retrieved per question")
    p.add_argument(
        "--context-tokens", type=int, default=1024, help="token budget for retrieved passages; more are dropped"
    )
    p.add_argument(
        "--guideline-store",
        type=Path,
        help="chromadb store built by python -m retrieval.ingest (default: the bundled notes)",
    )
    p.add_argument(
        "--shuffle-options",
        type=int,
        metavar="SEED",
        help="show options in a seeded per-question order (see python -m eval.position_bias)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="reflect: critique rounds at most, revising in between (stops early when the critic agrees)",
    )
    p.add_argument(
        "--samples",
        type=int,
        default=RunConfig.model_fields["samples"].default,
        help="sc: sampled drafts per question (k)",
    )
    p.add_argument(
        "--sample-temperature",
        type=float,
        default=RunConfig.model_fields["sample_temperature"].default,
        help="sc: sampling temperature",
    )
    p.add_argument(
        "--prompt-variant", default="", help="a [variants.NAME] table of the strategy's prompt file (e.g. en, zh-plain)"
    )
    p.add_argument("--flash-attn", action="store_true", help="llama.cpp flash attention (where the build supports it)")
    p.add_argument("--n-ctx", type=int, default=4096)
    p.add_argument("--n-threads", type=int, default=None, help="CPU threads (default: all cores)")
    p.add_argument("--n-gpu-layers", type=int, default=0, help="layers to offload to the GPU; -1 = all")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--draft-tokens", type=int, default=RunConfig.model_fields["draft_tokens"].default)
    p.add_argument("--critique-tokens", type=int, default=RunConfig.model_fields["critique_tokens"].default)
    s = p.add_argument_group(
        "serving (--backend openai: any OpenAI-compatible server, e.g. llama_cpp.server, llama-server, vLLM)"
    )
    s.add_argument(
        "--backend",
        default="llama",
        choices=["llama", "openai"],
        help="llama: in-process llama.cpp (default); openai: an HTTP server",
    )
    s.add_argument("--base-url", help="the server's OpenAI API root, e.g. http://127.0.0.1:8000/v1")
    s.add_argument("--model-name", help="model name to request (default: the first one the server lists)")
    s.add_argument(
        "--api-key-env",
        metavar="NAME",
        help="environment variable holding the API key (default OPENAI_API_KEY; none needed for local servers)",
    )
    s.add_argument(
        "--prompt-mode",
        default="auto",
        choices=["auto", "completions", "chat"],
        help="completions: render the GGUF's chat template here and use /v1/completions (needs --model); chat: /v1/chat/completions; auto: completions when possible",
    )
    s.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="questions in flight at once (openai backend; in-process llama.cpp runs one)",
    )
    s.add_argument(
        "--retries",
        type=int,
        default=4,
        help="retries of a failed request (connection errors, timeouts, 429, 5xx), with exponential backoff",
    )
    s.add_argument(
        "--retry-backoff",
        type=float,
        default=0.5,
        help="seconds before the first retry; doubles each time, with jitter",
    )
    s.add_argument("--request-timeout", type=float, default=600.0, help="seconds one request may take")
    p.add_argument("-v", "--verbose", action="store_true", help="log every prediction")
    args = p.parse_args(argv)
    if args.limit < 0:
        p.error("--limit must be 0 (all) or positive")
    if args.rounds < 1 or args.samples < 1:
        p.error("--rounds and --samples must be at least 1")
    if args.concurrency < 1 or args.retries < 0:
        p.error("--concurrency must be at least 1 and --retries at least 0")
    if args.backend == "openai" and not args.base_url:
        p.error("--backend openai needs --base-url (e.g. http://127.0.0.1:8000/v1)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logsetup.configure(args.verbose)
    log = structlog.get_logger()
    try:
        graph = args.graph + RAG_SUFFIX if args.retrieval and not args.graph.endswith(RAG_SUFFIX) else args.graph
        names = [graph] + ([args.baseline] if args.baseline not in ("none", graph) else [])
        parsed = {name: parse_graph_name(name) for name in names}
        if bad := [pair for pair in args.map if "=" not in pair]:
            raise DataError(f"--map {bad[0]!r}: expected FIELD=SOURCE, e.g. --map stem=题目")
        fields = dict(pair.split("=", 1) for pair in args.map) or None
        loaded = load(
            args.data,
            args.format,
            answers=args.answers,
            fields=fields,
            mapping=args.mapping,
            skip_bad=args.skip_bad,
            encoding=args.encoding,
        )
        for problem in loaded.bad:
            log.warning("data.skipped_bad_record", problem=problem)
        questions = select(loaded.questions, specialties=args.specialty, levels=args.level, limit=args.limit or None)
        if args.shuffle_options is not None:
            questions = [shuffle_options(q, args.shuffle_options) for q in questions]
        if not questions:
            raise DataError(
                f"{args.data}: no questions match --specialty {args.specialty or 'any'} --level {args.level or 'any'}"
            )
        model_path = resolve_model(args.model or DEFAULT_MODEL) if args.model or args.backend == "llama" else None
        server = open_server(args, model_path) if args.backend == "openai" else None
        retrieval = open_retrieval(args, log) if any(rag for _, rag in parsed.values()) else None
        version = prompts_version([base for base, _ in parsed.values()])
        check_variant(args.prompt_variant, [base for base, _ in parsed.values()])
        if server and server.capabilities.prompt_mode == "chat":
            version += f"+{CHAT_PROMPTS_VERSION}"  # the prefix instructions chat mode adds to the prompts
        config = RunConfig(
            graphs=names,
            model=f"openai:{server.model_name}" if server else str(model_path),
            model_sha256=model_sha256(model_path) if model_path else "",
            model_info=inspect_gguf(model_path, sha256=False).model_dump(exclude={"path", "sha256", "tensor_types"})
            if model_path
            else {},
            data=str(args.data),
            data_sha256=questions_sha256(questions),
            key_sha256=key_sha256(questions),
            question_ids=[q.id for q in questions],
            format=args.format,
            answers=str(args.answers or ""),
            fields=fields or {},
            mapping=str(args.mapping or ""),
            encoding=loaded.encoding,
            skip_bad=args.skip_bad,
            n_ctx=args.n_ctx,
            n_gpu_layers=args.n_gpu_layers,
            seed=args.seed,
            draft_tokens=args.draft_tokens,
            critique_tokens=args.critique_tokens,
            prompts_version=version,
            retrieval=retrieval.describe() if retrieval else "",
            rounds=args.rounds,
            shuffle_seed=args.shuffle_options,
            samples=args.samples,
            sample_temperature=args.sample_temperature,
            prompt_variant=args.prompt_variant,
        )
        model_label = f"openai-{Path(server.model_name).stem}" if server else model_path.stem
        out = args.out or Path("runs") / f"{'-vs-'.join(names)}-{model_label}"
        store = RunStore(out, config, fresh=args.fresh)
        if server:
            backend = server
        else:
            if args.concurrency > 1:
                log.warning(
                    "concurrency.clamped",
                    requested=args.concurrency,
                    used=1,
                    reason="in-process llama.cpp evaluates one stream",
                )
                args.concurrency = 1
            log.info("model.loading", model=str(model_path))
            backend = LlamaCppBackend(
                model_path,
                n_ctx=args.n_ctx,
                n_threads=args.n_threads,
                n_gpu_layers=args.n_gpu_layers,
                seed=args.seed,
                flash_attn=args.flash_attn,
            )
        graphs = {
            name: GRAPHS[base](backend, config, retrieval if rag else None) for name, (base, rag) in parsed.items()
        }
    except (UnknownGraph, UnknownVariant, DataError, ModelError, RunDirError, BackendError, RetrievalError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    try:
        run(questions, graphs, store, concurrency=args.concurrency)
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: finished predictions are saved; run the same command again to resume ({out})",
            file=sys.stderr,
        )
        return 130
    finally:
        store.close()

    model_name = f"{server.model_name} ({server.base_url})" if server else model_path.name
    baseline = names[1] if len(names) > 1 else None
    summary = summarize(
        model_name,
        str(args.data),
        names,
        baseline,
        questions,
        store.predictions().values(),
        bad_records=len(loaded.bad),
    )
    summary.model_info = config.model_info
    markdown = render_markdown(summary)
    (out / "report.md").write_text(markdown, encoding="utf-8")
    (out / "summary.json").write_text(summary.model_dump_json(indent=2), encoding="utf-8")
    print(markdown)
    print(f"predictions: {store.path}\nreport: {out / 'report.md'}", file=sys.stderr)
    return 0


def open_server(args: argparse.Namespace, model_path: Path | None) -> OpenAIBackend:
    """Connect to the server and detect what it supports; raises BackendError (one line) when it is not there."""
    server = OpenAIBackend(
        args.base_url,
        args.model_name,
        api_key=api_key_from_env(args.api_key_env),
        model_path=model_path,
        prompt_mode=args.prompt_mode,
        seed=args.seed,
        timeout=args.request_timeout,
        retry=RetryPolicy(retries=args.retries, backoff=args.retry_backoff),
    )
    server.probe()
    return server


def open_retrieval(args: argparse.Namespace, log) -> Retrieval:
    from retrieval.store import open_store

    # reflect's conversation grows by a revision and a critique per extra round.
    reserved = (
        args.context_tokens + args.rounds * (args.draft_tokens + args.critique_tokens) + 1024
    )  # + question, instructions
    if reserved > args.n_ctx:
        raise RetrievalError(
            f"--context-tokens {args.context_tokens} leaves too little of --n-ctx {args.n_ctx}; raise --n-ctx to at least {reserved}"
        )
    log.info("guidelines.opening", store=str(args.guideline_store or "bundled (built once on first use)"))
    return Retrieval(
        store=open_store(args.guideline_store), mode=args.retriever, k=args.top_k, budget_tokens=args.context_tokens
    )


def check_variant(variant: str, strategies: list[str]) -> None:
    """Refuse a --prompt-variant that would not be used, before the run directory records it.

    The strategy under test (the first) must have it; a baseline whose prompt file has no variants at all keeps its
    only prompts (its version is in the manifest), one that has variants must have this one too.
    """
    from agents.prompts import UnknownVariant, load_prompts

    if not variant:
        return
    for i, strategy in enumerate(strategies):
        if "variants" in load_prompts(strategy):
            load_prompts(strategy, variant)
        elif i == 0:
            raise UnknownVariant(
                f"{strategy}'s prompts have no variants, so --prompt-variant {variant} would be ignored"
            )


def prompts_version(names: list[str]) -> str:
    from agents.prompts import load_prompts

    return ",".join(load_prompts(n)["version"] for n in names)


if __name__ == "__main__":
    sys.exit(main())
