"""A run directory as Inspect AI eval logs (inspect_ai.log), so `inspect view` can browse it.

One log per graph: Inspect's viewer lists each log as a task with its model and headline score, so the chain and
its baseline appear side by side, and each sample's id is simply the question's. A log holds one sample per question
the graph answered: its messages (every step's prompt and reply, reasoning included where recorded), one model event
per step in the transcript (inside a span named after the node), the score against the current answer key, and the
question's metadata. Accuracy and its standard error are computed by Inspect's own metrics.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path

from inspect_ai.event import Event, InfoEvent, ModelEvent, ScoreEvent, SpanBeginEvent, SpanEndEvent
from inspect_ai.log import (
    EvalConfig,
    EvalDataset,
    EvalError,
    EvalLog,
    EvalPlan,
    EvalPlanStep,
    EvalSample,
    EvalSpec,
    EvalStats,
    recompute_metrics,
    write_eval_log,
)
from inspect_ai.log._log import EvalMetricDefinition, EvalScorer  # EvalSpec's field types, not re-exported
from inspect_ai.model import (
    ChatCompletionChoice,
    ChatMessage,
    ChatMessageAssistant,
    ChatMessageSystem,
    ChatMessageUser,
    ContentReasoning,
    ContentText,
    GenerateConfig,
    Logprob,
    Logprobs,
    ModelOutput,
    ModelUsage,
    TopLogprob,
)
from inspect_ai.scorer import CORRECT, INCORRECT, Score

from eval.core.schema import Message, Prediction, Question, RunConfig, TraceStep
from eval.core.store import MANIFEST, PREDICTIONS, finished, read_manifest, read_predictions
from eval.results.analysis import regrade

SCORER = "choice"  # Inspect's name for a multiple-choice scorer: the answer against the key, exactly
STOP = {"stop": "stop", "length": "max_tokens"}  # our finish reasons as Inspect's stop reasons


class ExportError(Exception):
    pass


def export(run_dir: Path, out: Path | None = None, graphs: list[str] | None = None) -> tuple[list[Path], list[str]]:
    """Write one Inspect log per graph of the run (or of `graphs`) into the directory `out` (default
    RUN_DIR/inspect), or into the file `out` (.eval or .json) when one graph is exported. Returns the files written
    and notes for the reader."""
    logs, notes = run_logs(run_dir, graphs)
    out = out or run_dir / "inspect"
    if out.suffix in (".eval", ".json"):
        if len(logs) > 1:
            raise ExportError(
                f"--out {out}: a file holds one graph's log and this run has {len(logs)} "
                f"({', '.join(log.eval.task for log in logs)}); give a directory, or choose one with --graph"
            )
        paths = [out]
    else:
        paths = [out / file_name(log) for log in logs]
    for log, path in zip(logs, paths, strict=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_eval_log(log, path)
    return paths, notes


def file_name(log: EvalLog) -> str:
    """Inspect's own pattern, {created}_{task}_{task id}.eval, which its listing parses (so each part is clean of
    separators as Inspect cleans them)."""
    created, task = (re.sub(r"[_/:+]", "-", part) for part in (log.eval.created, log.eval.task))
    return f"{created}_{task}_{log.eval.task_id}.eval"


def run_logs(run_dir: Path, graphs: list[str] | None = None) -> tuple[list[EvalLog], list[str]]:
    """The run's graphs as Inspect logs (not written), and notes for the reader."""
    config = read_manifest(run_dir)
    found = read_predictions(run_dir)
    if not found:
        raise ExportError(f"{run_dir}: no predictions yet ({PREDICTIONS} is missing or empty): nothing to export")
    if unknown := [g for g in graphs or () if g not in config.graphs]:
        raise ExportError(f"--graph {unknown[0]}: not a graph of this run (it has {', '.join(config.graphs)})")
    questions, notes = _questions(config)
    logs = []
    for graph in graphs or config.graphs:
        predictions = {q: p for (g, q), p in found.items() if g == graph}
        if not predictions:
            notes.append(f"{graph}: no predictions yet, no log written")
            continue
        logs.append(graph_log(run_dir, config, graph, predictions, questions))
    if not logs:
        raise ExportError(f"{run_dir}: no predictions yet for {', '.join(graphs or config.graphs)}: nothing to export")
    return logs, notes


def _questions(config: RunConfig) -> tuple[dict[str, Question], list[str]]:
    """The run's questions as it read them; none (and a note) when its data can no longer be read."""
    from eval.data import DataError, load_for_config

    try:
        return {q.id: q for q in load_for_config(config).questions}, []
    except (DataError, OSError, ValueError) as e:
        return {}, [
            f"could not read the questions from {config.data} ({str(e).splitlines()[0]}): samples show the prompts "
            "as asked, without specialty and level"
        ]


def model_name(config: RunConfig) -> str:
    """The model as the report names it: a GGUF's file name, a server's model, or the backend's name."""
    return Path(config.model).name if config.model.endswith(".gguf") else config.model


def graph_log(
    run_dir: Path, config: RunConfig, graph: str, predictions: dict[str, Prediction], questions: dict[str, Question]
) -> EvalLog:
    model = model_name(config)
    ids = [q for q in config.question_ids if q in predictions]
    created = _mtime(run_dir / MANIFEST)
    samples = [
        sample(regrade(predictions[q], questions[q]) if q in questions else predictions[q], questions.get(q), model)
        for q in ids
    ]
    nodes = list(dict.fromkeys(step.node for p in predictions.values() for step in p.trace))
    # Stable ids: exporting the same run again rewrites the same files instead of adding copies.
    run_id = _short_id(str(run_dir.resolve()), config.model_sha256, config.data_sha256)
    log = EvalLog(
        status="success" if finished(config, predictions) else "started",  # Inspect's status for an interrupted run
        eval=EvalSpec(
            eval_id=_short_id(run_id, graph),
            run_id=run_id,
            created=created,
            task=graph,
            task_id=_short_id(run_id, graph, "task"),
            solver=graph,
            solver_args=config.options.get(graph.removesuffix("+rag"), {}),
            tags=[run_dir.name],
            dataset=EvalDataset(
                name=Path(config.data).name, location=config.data, samples=len(config.question_ids), sample_ids=ids
            ),
            model=model,
            model_generate_config=GenerateConfig(seed=config.seed),
            config=EvalConfig(),
            scorers=[
                EvalScorer(
                    name=SCORER, metrics=[EvalMetricDefinition(name="accuracy"), EvalMetricDefinition(name="stderr")]
                )
            ],
            metadata={
                "run_dir": str(run_dir),
                "graphs": config.graphs,
                "model_path": config.model,
                "model_info": config.model_info,
                "engine": config.engine.describe() if config.engine else None,
                "roles": config.roles,
                "prompts_version": config.prompts_version,
                "prompt_variant": config.prompt_variant,
                "retrieval": config.retrieval,
                "circular": config.circular,
                "shuffle_seed": config.shuffle_seed,
            },
        ),
        plan=EvalPlan(name=graph, steps=[EvalPlanStep(solver=node) for node in nodes]),
        stats=EvalStats(
            started_at=created,
            completed_at=_mtime(run_dir / PREDICTIONS),
            model_usage={model: sum(map(_usage, predictions.values()), ModelUsage())},
        ),
        samples=samples,
    )
    recompute_metrics(log)  # accuracy and stderr over the scored samples, by Inspect's own metrics
    return log


def sample(p: Prediction, question: Question | None, model: str) -> EvalSample:
    score = Score(
        value=CORRECT if p.correct else INCORRECT,
        answer=p.answer or "",
        explanation=f"{p.parse_status} ({p.answer_method})",
    )
    asked = [s for s in p.trace if s.passages is None]
    return EvalSample(
        id=p.question_id,
        epoch=1,
        # The question as the dataset gives it (stem, options as choices), else as the first step asked it.
        input=question.stem if question else asked[0].messages[-1].content if asked else p.question_id,
        choices=list(question.options.values()) if question else None,
        target=p.gold,
        messages=conversation(p.trace, model),
        output=_output(asked[-1], model) if asked else ModelOutput(model=model),
        scores=None if p.parse_status == "error" else {SCORER: score},
        error=EvalError(message=p.error or "error", traceback="", traceback_ansi="")
        if p.parse_status == "error"
        else None,
        metadata={
            "model": model,
            "strategy": p.graph,
            "specialty": question.specialty if question else None,
            "level": question.level if question else None,
            "answer": p.answer,
            "key": p.gold,
            "parse_status": p.parse_status,
            "answer_method": p.answer_method,
            "first_proposal": p.first_proposal or None,
            "draft_answer": p.draft_answer,
            "calls": p.model_calls,
            "prompt_tokens": p.prompt_tokens,
            "prompt_tokens_evaluated": p.prompt_tokens_evaluated,
            "completion_tokens": p.completion_tokens,
            "reasoning_tokens": p.reasoning_tokens,
            "seconds": round(p.seconds, 3),
            **({"extras": p.extras} if p.extras else {}),
        },
        model_usage={model: _usage(p)},
        total_time=round(p.seconds, 3),
        working_time=round(p.seconds, 3),
        events=events(p, score, model),
    )


def conversation(trace: list[TraceStep], model: str) -> list[ChatMessage]:
    """Every model step's messages and reply, in order; a step that continues the conversation the previous one
    ended (its messages begin with them and that reply) adds only its new messages. Retrieval is no model call:
    its passages are in the prompts after it."""
    shown: list[Message] = []
    messages: list[ChatMessage] = []
    for step in trace:
        if step.passages is not None:
            continue
        new = step.messages[len(shown) :] if step.messages[: len(shown)] == shown else step.messages
        messages += [_message(m, step.node) for m in new] + [_reply(step, model)]
        shown = [*step.messages, Message(role="assistant", content=step.output)]
    return messages


def events(p: Prediction, score: Score, model: str) -> list[Event]:
    """The transcript: a span per step named after its node, holding its model call (or the passages retrieved)."""
    at = datetime.now(UTC)
    found: list[Event] = []
    clock = 0.0
    for i, step in enumerate(p.trace):
        span = f"{p.question_id}-{i}"
        found.append(SpanBeginEvent(id=span, name=step.node, type="solver", timestamp=at, working_start=clock))
        if step.passages is not None:
            query = step.messages[-1].content if step.messages else ""
            passages = [x.model_dump() for x in step.passages]
            data = {"query": query, "passages": passages}
            found.append(InfoEvent(source=step.node, data=data, span_id=span, timestamp=at, working_start=clock))
        else:
            found.append(
                ModelEvent(
                    model=model,
                    input=[_message(m, step.node) for m in step.messages],
                    tools=[],
                    tool_choice="none",
                    config=GenerateConfig(),
                    output=_output(step, model),
                    working_time=step.seconds,
                    span_id=span,
                    timestamp=at,
                    working_start=clock,
                )
            )
        clock += step.seconds
        found.append(SpanEndEvent(id=span, timestamp=at, working_start=clock))
    if p.parse_status != "error":
        found.append(ScoreEvent(score=score, target=p.gold, scorer=SCORER, timestamp=at, working_start=clock))
    return found


def _message(m: Message, node: str) -> ChatMessage:
    kind = {"system": ChatMessageSystem, "user": ChatMessageUser, "assistant": ChatMessageAssistant}[m.role]
    return kind(content=m.content, metadata={"node": node})


def _reply(step: TraceStep, model: str) -> ChatMessageAssistant:
    content = [ContentReasoning(reasoning=step.reasoning), ContentText(text=step.output)] if step.reasoning else None
    return ChatMessageAssistant(
        content=content or step.output, model=model, source="generate", metadata={"node": step.node}
    )


def _output(step: TraceStep, model: str) -> ModelOutput:
    # A scoring step's letters' log-probabilities, best first, as the chosen token's top log-probabilities.
    scores = sorted((step.scores or {}).items(), key=lambda kv: -kv[1])  # finite: the runner stores no -inf
    logprobs = (
        Logprobs(
            content=[
                Logprob(
                    token=scores[0][0],
                    logprob=scores[0][1],
                    top_logprobs=[TopLogprob(token=k, logprob=v) for k, v in scores],
                )
            ]
        )
        if scores
        else None
    )
    choice = ChatCompletionChoice(
        message=_reply(step, model), stop_reason=STOP.get(step.finish_reason or "", "unknown"), logprobs=logprobs
    )
    return ModelOutput(model=model, choices=[choice], usage=_usage(step), time=step.seconds)


def _usage(x: TraceStep | Prediction) -> ModelUsage:
    """A step's or a prediction's tokens (both record the same counts)."""
    return ModelUsage(
        input_tokens=x.prompt_tokens,
        output_tokens=x.completion_tokens,
        total_tokens=x.prompt_tokens + x.completion_tokens,
        # The prompt tokens the backend did not evaluate came from its reused KV-cache prefix.
        input_tokens_cache_read=x.prompt_tokens - x.prompt_tokens_evaluated,
        reasoning_tokens=x.reasoning_tokens or None,
    )


def _short_id(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:22]


def _mtime(path: Path) -> str:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="seconds")
