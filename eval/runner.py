"""Runs graphs over questions and turns each final graph state into a Prediction."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import structlog
from tqdm import tqdm

from eval.schema import Prediction, Question
from eval.store import RunStore

log = structlog.get_logger()


def to_prediction(graph: str, question: Question, state: dict, seconds: float) -> Prediction:
    trace = state.get("trace", [])
    answer = state.get("answer")
    return Prediction(
        question_id=question.id,
        graph=graph,
        answer=answer,
        gold=question.answer,
        correct=answer == question.answer,
        parse_status="ok" if answer else "unparsed",
        answer_method=state.get("answer_method", "none") if answer else "none",
        draft_answer=state.get("draft_answer"),
        trace=trace,
        prompt_tokens=sum(s.prompt_tokens for s in trace),
        prompt_tokens_evaluated=sum(s.prompt_tokens_evaluated for s in trace),
        completion_tokens=sum(s.completion_tokens for s in trace),
        seconds=seconds,
        model_calls=len(trace),
    )


def predict(name: str, graph, question: Question) -> Prediction:
    start = time.perf_counter()
    try:
        state = graph.invoke({"question": question, "trace": []})
    except Exception as e:  # noqa: BLE001 - one failing question must not end a run of thousands
        log.error("question.failed", graph=name, question=question.id, error=str(e), exc_info=True)
        return Prediction(
            question_id=question.id,
            graph=name,
            answer=None,
            gold=question.answer,
            correct=False,
            parse_status="error",
            answer_method="none",
            error=f"{type(e).__name__}: {e}",
            seconds=time.perf_counter() - start,
        )
    return to_prediction(name, question, state, time.perf_counter() - start)


def run(questions: Sequence[Question], graphs: dict[str, Callable], store: RunStore) -> None:
    """Each question goes through every graph back to back, so they share its prompt prefix in the KV cache."""
    done = store.done()
    todo = [(q, name) for q in questions for name in graphs if (name, q.id) not in done]
    log.info("run.start", questions=len(questions), graphs=list(graphs), done=len(done), todo=len(todo))
    with tqdm(total=len(todo), unit="pred", desc="evaluating", disable=None) as bar:
        for question, name in todo:
            prediction = predict(name, graphs[name], question)
            store.append(prediction)
            log.debug("question.done", graph=name, question=question.id, answer=prediction.answer, correct=prediction.correct)
            bar.update()
