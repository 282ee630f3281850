"""The evaluator as a Python function: `evaluate(RunSpec(graph="reflect"))` runs a strategy and its baseline on the
same questions and returns the run's typed summary. `python -m eval.agentic` is its flags (generated from
RunSpec) and a print; the ablation runner calls it once per cell.

    from eval.api import RunSpec, evaluate
    result = evaluate(RunSpec(graph="cot", baseline="single", limit=14))
    print(result.summary.graphs[0].overall.accuracy, result.out)
"""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

# Nothing may leave the machine: LangChain/LangSmith tracing stays off even if the environment asks for it.
os.environ["LANGCHAIN_TRACING_V2"] = "false"
os.environ["LANGSMITH_TRACING"] = "false"

import structlog
from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from agents.backends import BACKENDS, backend_fields
from agents.backends.base import Backend, BackendError
from agents.backends.llamacpp import LlamaCppBackend
from agents.backends.template import template_thinking
from agents.nodes.retrieve import Retrieval
from agents.prompts import PromptError, UnknownVariant, load_prompts
from eval.core.cache import model_sha256, sha256_file
from eval.core.schema import Determinism, RunConfig, RunSummary, Specialty
from eval.core.shuffle import rotations, shuffle_options
from eval.core.store import RunDirError, RunStore, config_hash, read_predictions
from eval.data import BUNDLED, DataError, dataset_files, key_sha256, questions_sha256, select
from eval.data.loaders import load
from eval.models import DEFAULT_MODEL, ModelError, resolve_model
from eval.models.gguf import check_fits, inspect_gguf
from eval.plans.plan import model_name
from eval.render.report_md import render_markdown
from eval.results.analysis import over_budget
from eval.results.report import summarize
from eval.run.runner import run
from graphs import RAG_SUFFIX, STRATEGIES, GraphSpec, UnknownGraph, build_graph, option_fields, options_of
from graphs.strategy import ROLES
from retrieval import RetrievalError

# 28 stratified questions (2 per specialty x level) keep the default run (reflect + single, 0.5B model,
# 2 CPU cores) near 6 minutes.
DEFAULT_LIMIT = 28
# What evaluate raises for bad input or a missing resource; each message is one line a user can act on.
ERRORS = (UnknownGraph, UnknownVariant, PromptError, DataError, ModelError, RunDirError, BackendError, RetrievalError)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run: every finished prediction is saved in `out`; the same call resumes it."""

    def __init__(self, out: Path):
        super().__init__(str(out))
        self.out = out


class _RunSpec(BaseModel):
    """What one evaluator run is asked to do; every field is also a flag of python -m eval.agentic.

    RunSpec adds every strategy's options (graphs/*.py declare them) and every backend's (agents/backends/*.py), so a
    new strategy's or engine's option is a flag too.
    """

    if TYPE_CHECKING:  # the options spec_model() adds, as a type checker sees them: pydantic validates them

        def __getattr__(self, name: str) -> Any: ...

    model_config = ConfigDict(extra="forbid")

    graph: str = Field("reflect", description=f"strategy to evaluate ({', '.join(STRATEGIES)}); default reflect")
    baseline: str = Field("single", description="graph to compare against on the same questions, or 'none'")
    model: str | None = Field(
        None,
        description=f"GGUF path or packaged model name; default {DEFAULT_MODEL}. With --backend openai: the GGUF the "
        "server serves (optional; its chat template lets prompts match the in-process run exactly)",
    )
    critic_model: str | None = Field(
        None,
        description="the critic's model where the strategy has one (reflect): a GGUF path, a packaged model name or "
        "an OpenAI-compatible endpoint (http://HOST:PORT/v1); default the drafter's (self-critique)",
    )
    extract_model: str | None = Field(
        None,
        description="the model that commits to the letter (reflect's extractor, panel's chair), as --critic-model",
    )
    data: Path = Field(BUNDLED, description="dataset file or directory; default: the bundled questions")
    format: str = Field(
        "auto", description="dataset format: auto, native, cmexam, cmb, medqa, mmlu, generic (see python -m eval.data)"
    )
    answers: Path | None = Field(None, description="CMB: answers in a separate file, joined by id")
    map: list[str] = Field(
        default_factory=list,
        description="generic format: our field = the dataset's field",
        json_schema_extra={"metavar": "FIELD=SOURCE"},
    )
    mapping: Path | None = Field(
        None, description="TOML of department/exam-class rules checked before the bundled ones"
    )
    encoding: str | None = Field(None, description="dataset text encoding (default: detect UTF-8, else GB18030/GBK)")
    skip_bad: bool = Field(False, description="skip malformed records (counted in the report) instead of stopping")
    multi: Literal["include", "skip"] = Field(
        "include",
        description="multi-answer (多选) questions: include them (answered as letter sets, scored by exact match and "
        "reported apart from single-answer accuracy) or skip them (counted in the log)",
    )
    limit: int = Field(
        DEFAULT_LIMIT,
        ge=0,
        description=f"questions, stratified over specialty x level; 0 = all (default {DEFAULT_LIMIT})",
    )
    specialty: list[Specialty] = Field(
        default_factory=list, description="keep only this specialty (repeatable; default: every one)"
    )
    level: list[Literal["attending", "senior"]] = Field(
        default_factory=list, description="keep only this level (repeatable; default: both)"
    )
    out: Path | None = Field(
        None,
        description="run directory; re-running with the same --out resumes (default runs/MODEL-GRAPH-vs-BASELINE-HASH, "
        "HASH over the settings a resume compares: another option that changes results is another directory)",
    )
    fresh: bool = Field(False, description="discard what --out holds and start over")
    retrieval: bool = Field(
        False, description=f"precede --graph with guideline retrieval (same as --graph NAME{RAG_SUFFIX})"
    )
    retriever: Literal["dense", "bm25", "hybrid"] = Field(
        "hybrid", description="dense (e5), bm25 (jieba), or both fused (default)"
    )
    top_k: int = Field(4, ge=1, description="passages retrieved per question")
    context_tokens: int = Field(1024, ge=1, description="token budget for retrieved passages; more are dropped")
    guideline_store: Path | None = Field(
        None, description="chromadb store built by python -m retrieval.ingest (default: the bundled notes)"
    )
    shuffle_options: int | None = Field(
        None,
        description="show options in a seeded per-question order (see python -m eval.position_bias)",
        json_schema_extra={"metavar": "SEED"},
    )
    circular: bool = Field(
        False,
        description="ask every question under every rotation of its options and report circular accuracy (right "
        "under all of them) and consistency beside the original order's",
    )
    prompt_variant: str = Field(
        "", description="a [variants.NAME] table of the strategy's prompt file (e.g. en, zh-plain)"
    )
    flash_attn: bool = Field(False, description="llama.cpp flash attention (where the build supports it)")
    n_ctx: int = Field(4096, ge=256, description="context window, tokens")
    n_threads: int | None = Field(None, ge=1, description="CPU threads (default: all cores)")
    n_gpu_layers: int = Field(0, ge=-1, description="layers to offload to the GPU; -1 = all")
    seed: int = Field(0, description="decoding seed")
    thinking_tokens: int = Field(
        0,
        ge=0,
        description="a reasoning model's thinking budget, on top of each reply's own token budget: the thinking is "
        "ended after this many tokens (llama-server: reasoning_budget_tokens; in-process: the block is closed and the "
        "answer generated; other servers: max_tokens only); default 0: thinking counts against the reply's budget",
    )
    backend: str = "llama"  # RunSpec: one of the registered backends (agents/backends/__init__.py)
    concurrency: int = Field(
        1, ge=1, description="questions in flight at once (a server backend; in-process llama.cpp runs one)"
    )
    check_determinism: int = Field(
        0,
        ge=0,
        description="after the run, re-run K of its questions (seeded sample) at concurrency 1 and report how many "
        "answers changed: batching servers may change greedy answers",
        json_schema_extra={"metavar": "K"},
    )

    @model_validator(mode="after")
    def _an_address_selects_its_backend(self):
        """An endpoint's address (--base-url) is never ignored: it selects its backend unless --backend names
        another, an error."""
        for kind, backend in BACKENDS.items():
            address = backend.endpoint[0] if backend.endpoint else None
            if not (address and getattr(self, address, None)) or self.backend == kind:
                continue
            if "backend" not in self.model_fields_set:
                self.backend = kind
            else:
                raise ValueError(
                    f"--{address.replace('_', '-')} needs --backend {kind} "
                    f"(--backend {self.backend} {BACKENDS[self.backend].about})"
                )
        return self

    @property
    def graphs(self) -> list[str]:
        """The strategy (with +rag under --retrieval) and, unless 'none' or the same, the baseline."""
        graph = self.graph + RAG_SUFFIX if self.retrieval and not self.graph.endswith(RAG_SUFFIX) else self.graph
        return [graph] + ([self.baseline] if self.baseline not in ("none", graph) else [])


def spec_model() -> type[_RunSpec]:
    """RunSpec as the registries stand: _RunSpec, `backend` one of theirs, every strategy's and backend's options."""
    kinds = "; ".join(f"{kind} {b.about}" for kind, b in BACKENDS.items())
    backend = Field("llama", description=kinds)
    options = {**option_fields(), **backend_fields()}
    fields: dict[str, Any] = {n: (f.annotation, f) for n, f in options.items()}
    fields["backend"] = (Literal[tuple(BACKENDS)], backend)
    return create_model("RunSpec", __base__=_RunSpec, **fields)


if TYPE_CHECKING:
    RunSpec = _RunSpec  # a type checker cannot see a model built at import time; its declared part is checked
else:
    RunSpec = spec_model()


@dataclass
class RunResult:
    summary: RunSummary
    markdown: str  # report.md
    out: Path  # the run directory
    predictions: Path


def evaluate(
    spec: RunSpec,
    *,
    questions=None,
    backend: Backend | None = None,
    role_backends: dict[str, Backend] | None = None,
    evaluated=None,
) -> RunResult:
    """Run spec.graphs over the questions (loaded and selected as the spec says, unless given), resuming whatever
    the run directory holds, and write report.md and summary.json there.

    `backend`: an open backend to use instead of loading spec.model (its name goes in the manifest); likewise
    `role_backends` for the models of --critic-model / --extract-model. `evaluated`: the questions strategies treat
    as the evaluated set (a worked-example pool excludes them, pride calibrates on them), by default the run's. Raises
    one of ERRORS for bad input; KeyboardInterrupt leaves every finished prediction saved for a resume.
    """
    log = structlog.get_logger()
    kind = BACKENDS[spec.backend]
    if backend is None:
        kind.check(spec)
    names = spec.graphs
    specs = {name: GraphSpec.parse(name) for name in names}
    if bad := [pair for pair in spec.map if "=" not in pair]:
        raise DataError(f"--map {bad[0]!r}: expected FIELD=SOURCE, e.g. --map stem=题目")
    fields = dict(pair.split("=", 1) for pair in spec.map) or None
    bad_records, encoding = 0, ""
    if questions is None:
        loaded = load(
            spec.data,
            spec.format,
            answers=spec.answers,
            fields=fields,
            mapping=spec.mapping,
            skip_bad=spec.skip_bad,
            encoding=spec.encoding,
            multi=spec.multi,
        )
        for problem in loaded.bad:
            log.warning("data.skipped_bad_record", problem=problem)
        bad_records, encoding = len(loaded.bad), loaded.encoding
        questions = select(loaded.questions, specialties=spec.specialty, levels=spec.level, limit=spec.limit or None)
        if spec.shuffle_options is not None:
            questions = [shuffle_options(q, spec.shuffle_options) for q in questions]
    if not questions:
        raise DataError(
            f"{spec.data}: no questions match --specialty {spec.specialty or 'any'} --level {spec.level or 'any'}"
        )
    originals = questions  # the questions asked; under --circular, in every rotation of their options
    if spec.circular:
        questions = [r for q in originals for r in rotations(q)]
    model_path = resolve_model(spec.model or DEFAULT_MODEL) if spec.model or (kind.local and not backend) else None
    if backend is None and not kind.local:
        backend = kind.open(spec, model_path)  # what it serves is in the manifest
    strategies = [g.strategy for g in specs.values()]
    roles = role_models(spec, strategies[0])
    options = {s.name: options_of(s, spec) for s in strategies}
    resources = {
        name: fingerprint(Path(path))
        for s in strategies
        for name, path in s.files(s.options(**options[s.name])).items()
    }
    retrieval = open_retrieval(spec, strategies, log) if any(g.rag for g in specs.values()) else None
    # Each strategy's prompts, and the question layout every prompt shares (agents/prompts/question.toml).
    version = (
        ",".join(load_prompts(s.prompt_file)["version"] for s in strategies) + "+" + load_prompts("question")["version"]
    )
    check_variant(spec.prompt_variant, [s.prompt_file for s in strategies])
    # The model as the manifest records it, as the run directory is named after it, and as the report shows it.
    recorded = kind.recorded(spec, backend, model_path)
    info = inspect_gguf(model_path, sha256=False) if model_path else None
    config = RunConfig(
        graphs=names,
        model=recorded.model,
        model_sha256=model_sha256(model_path) if model_path else "",
        model_info=info.model_dump(exclude={"path", "sha256", "tensor_types"}) if info else {},
        data=str(spec.data),
        data_sha256=questions_sha256(questions),
        key_sha256=key_sha256(questions),
        question_ids=[q.id for q in questions],
        format=spec.format,
        answers=str(spec.answers or ""),
        fields=fields or {},
        mapping=str(spec.mapping or ""),
        encoding=encoding,
        skip_bad=spec.skip_bad,
        multi=spec.multi,
        n_ctx=spec.n_ctx,
        n_gpu_layers=spec.n_gpu_layers,
        seed=spec.seed,
        prompts_version=version + recorded.prompts,
        retrieval=retrieval.describe() if retrieval else "",
        shuffle_seed=spec.shuffle_options,
        circular=spec.circular,
        prompt_variant=spec.prompt_variant,
        options=options,
        resources=resources,
        roles={role: r.recorded() for role, r in roles.items()},
        thinking=getattr(backend, "thinking", "")
        if backend is not None
        else template_thinking(info.chat_template)
        if info
        else "",
        thinking_tokens=spec.thinking_tokens,
        scoring=recorded.scoring,
        engine=recorded.engine,
    )
    # By default runs/MODEL-GRAPHS-HASH: the model as named (a packaged name, or the GGUF file's stem), and the hash of
    # what a resume compares, so a changed option is another directory and the same command finds its own again.
    label = model_name(spec.model or DEFAULT_MODEL) if kind.local and model_path else recorded.label
    out = spec.out or Path("runs") / f"{label}-{'-vs-'.join(names)}-{config_hash(config)}"
    store = RunStore(out, config, fresh=spec.fresh)
    concurrency = spec.concurrency
    # One llama.cpp context must not be called concurrently: the drafter's, or an in-process critic's.
    if (kind.local or any(r.path for r in roles.values())) and concurrency > 1:
        log.warning(
            "concurrency.clamped", requested=concurrency, used=1, reason="in-process llama.cpp evaluates one stream"
        )
        concurrency = 1
    try:
        if role_backends is None:
            to_load = [r.path for r in roles.values() if r.path] + (
                [model_path] if backend is None and model_path else []
            )
            if len(set(to_load)) > 1:  # each backend checks its own model; together they must fit too
                infos = [inspect_gguf(p, sha256=False) for p in dict.fromkeys(to_load)]
                check_fits(infos, spec.n_ctx, spec.n_gpu_layers)
        if backend is None:
            log.info("model.loading", model=str(model_path))
            backend = kind.open(spec, model_path)
        if role_backends is None:
            role_backends = open_roles(spec, roles, drafter=(model_path, backend))
        evaluated = originals if evaluated is None else evaluated
        graphs = {name: build_graph(name, backend, config, retrieval, role_backends, evaluated) for name in names}
        run(questions, graphs, store, concurrency=concurrency, batches=bool(config.engine and config.engine.batches))
    except KeyboardInterrupt:
        raise Interrupted(out) from None
    finally:
        store.close()
    baseline = names[1] if len(names) > 1 else None
    predictions = store.predictions()
    summary = summarize(
        recorded.shown,
        str(spec.data),
        names,
        baseline,
        originals,
        predictions.values(),
        bad_records=bad_records,
        engine=config.engine,
        circular=spec.circular,
    )
    summary.model_info = config.model_info
    summary.roles = {role: r.spec for role, r in roles.items()}
    for g in summary.graphs:
        for node, hits in over_budget(g.budget).items():
            log.warning(
                "budget.too_small",
                graph=g.graph,
                node=node,
                at_budget=f"{hits.hit} of {hits.outputs}",
                note="these outputs were cut before they ended: raise the node's token budget (see report.md)",
            )
    markdown = write_report(out, summary)
    if spec.check_determinism:  # after the run's report is saved: a failing check must not lose it
        summary.determinism = check_determinism(spec, questions, backend, out, predictions, role_backends, evaluated)
        markdown = write_report(out, summary)
    return RunResult(summary, markdown, out, store.path)


@dataclass(frozen=True)
class RoleModel:
    """--critic-model / --extract-model: a GGUF (path or packaged name) loaded in-process, or an endpoint (opened,
    and so probed, as soon as it is named: the manifest records the model it serves)."""

    spec: str  # as the user gave it
    path: Path | None = None  # in-process
    server: Backend | None = None  # an endpoint
    served: str = ""  # what the manifest records of the model the endpoint serves

    def recorded(self) -> dict:
        if self.path is None:  # an endpoint
            return {"spec": self.spec, "model": self.served}
        return {"spec": self.spec, "model": str(self.path), "model_sha256": model_sha256(self.path)}


def role_models(spec: RunSpec, strategy) -> dict[str, RoleModel]:
    """The roles the user gave another model, checked against the strategy under test (which must have them)."""
    roles = {}
    for role in ROLES:
        given = getattr(spec, f"{role}_model")
        if not given:
            continue
        if role not in strategy.roles:
            has = f"its roles: {', '.join(strategy.roles)}" if strategy.roles else "it has no model roles"
            raise ModelError(f"--{role}-model: strategy {strategy.name} has no {role} ({has})")
        for backend in BACKENDS.values():  # an endpoint, opened (and so probed) now
            if (server := backend.role(spec, given)) is not None:
                roles[role] = RoleModel(given, server=server, served=backend.recorded(spec, server, None).model)
                break
        else:  # a GGUF, loaded in-process
            roles[role] = RoleModel(given, path=resolve_model(given))
    return roles


def open_roles(spec: RunSpec, roles: dict[str, RoleModel], drafter: tuple[Path | None, Backend]) -> dict[str, Backend]:
    """A backend per role, each GGUF loaded once (a role on the drafter's own GGUF shares its backend)."""
    opened: dict[Path, Backend] = {drafter[0]: drafter[1]} if drafter[0] else {}
    backends = {}
    for role, r in roles.items():
        if r.path is None:  # an endpoint
            assert r.server is not None
            backends[role] = r.server
            continue
        if r.path not in opened:
            structlog.get_logger().info("model.loading", role=role, model=str(r.path))
            opened[r.path] = LlamaCppBackend.open(spec, r.path)
        backends[role] = opened[r.path]
    return backends


def fingerprint(path: Path) -> str:
    """sha256 over a data file's contents, or a directory's data files (their names and contents)."""
    digest = hashlib.sha256()
    for file in dataset_files(path):
        digest.update(f"{file.name}\0{sha256_file(file)}\n".encode())
    return digest.hexdigest()


def write_report(out: Path, summary: RunSummary) -> str:
    markdown = render_markdown(summary)
    try:
        (out / "report.md").write_text(markdown, encoding="utf-8")
        (out / "summary.json").write_text(summary.model_dump_json(indent=2), encoding="utf-8")
    except OSError as e:  # a full disk after the last prediction: the run is whole, only its report is missing
        raise RunDirError(
            f"{e.filename}: cannot write the report ({e.strerror}); every prediction is kept in {out}: free space, "
            "then run the same command again to write it"
        ) from None
    return markdown


def check_determinism(
    spec: RunSpec, questions, backend: Backend, out: Path, made: dict, role_backends: dict, evaluated
) -> Determinism:
    """Re-make a seeded sample of spec.check_determinism questions at concurrency 1 (in OUT/determinism, afresh) with
    the same backends and evaluated set, and compare each answer with the one the run made.

    Only questions every graph answered are sampled. The server is the same one, so a prompt it still caches from
    the batched run can carry that run's numbers into the re-made answer: the count is a lower bound.
    """
    finished = {key for key, p in made.items() if p.parse_status != "error"}
    answered = [q for q in questions if all((g, q.id) in finished for g in spec.graphs)]
    if not answered:
        raise DataError("--check-determinism: no question has a finished answer from every graph to re-make")
    sample = random.Random(spec.seed).sample(answered, min(spec.check_determinism, len(answered)))
    again = evaluate(
        spec.model_copy(
            update={
                "out": out / "determinism",
                "fresh": True,
                "concurrency": 1,
                "check_determinism": 0,
                "circular": False,
            }
        ),
        questions=sample,
        backend=backend,
        role_backends=role_backends,
        evaluated=evaluated,
    )
    remade = read_predictions(again.out)
    pairs = [(made[key], p) for key, p in remade.items() if p.parse_status != "error"]
    return Determinism(
        shared_batch=sum(first.shared_batch for first, _ in pairs),
        compared={g: sum(first.graph == g for first, _ in pairs) for g in spec.graphs},
        changed={g: [a.question_id for a, b in pairs if a.graph == g and a.answer != b.answer] for g in spec.graphs},
    )


def open_retrieval(spec: RunSpec, strategies, log) -> Retrieval:
    from retrieval.store import open_store

    # The passages, the longest conversation any strategy grows to, and the question and instructions must fit.
    generated = max(s.generated_tokens(s.options(**options_of(s, spec))) for s in strategies)
    reserved = spec.context_tokens + generated + 1024
    if reserved > spec.n_ctx:
        raise RetrievalError(
            f"--context-tokens {spec.context_tokens} leaves too little of --n-ctx {spec.n_ctx}; "
            f"raise --n-ctx to at least {reserved}"
        )
    log.info("guidelines.opening", store=str(spec.guideline_store or "bundled (built once on first use)"))
    return Retrieval(
        store=open_store(spec.guideline_store), mode=spec.retriever, k=spec.top_k, budget_tokens=spec.context_tokens
    )


def check_variant(variant: str, strategies: list[str]) -> None:
    """Refuse a --prompt-variant that would not be used, before the run directory records it.

    The strategy under test (the first) must have it; a baseline whose prompt file has no variants at all keeps its
    only prompts (its version is in the manifest), one that has variants must have this one too.
    """

    if not variant:
        return
    for i, strategy in enumerate(strategies):
        if "variants" in load_prompts(strategy):
            load_prompts(strategy, variant)
        elif i == 0:
            raise UnknownVariant(
                f"{strategy}'s prompts have no variants, so --prompt-variant {variant} would be ignored"
            )
