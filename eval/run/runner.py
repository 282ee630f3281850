"""Runs graphs over questions and turns each final graph state into a Prediction."""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed

import structlog
from tqdm import tqdm

from agents.backends.base import BackendError, PermanentError, Unreachable
from eval.core.log import Lines, progress
from eval.core.schema import Prediction, Question, TraceStep, trace_costs
from eval.core.store import RunStore
from graphs import GraphSpec

log = structlog.get_logger()

# Questions in a row that could not reach the server (each after its own retries) before the run stops: a server
# that went away would otherwise turn every remaining question into an error, one retry budget at a time.
UNREACHABLE_LIMIT = 3


class ServerDown(BackendError):
    """The run stopped because the server stopped answering; every finished prediction is saved."""


class Breaker:
    """Counts questions in a row whose model call could not reach the server; thread-safe."""

    def __init__(self, limit: int = UNREACHABLE_LIMIT):
        self.limit, self.in_a_row, self.last = limit, 0, ""
        self._lock = threading.Lock()

    def record(self, error: BaseException | None) -> None:
        with self._lock:
            if isinstance(error, Unreachable):
                self.in_a_row, self.last = self.in_a_row + 1, str(error)
            else:
                self.in_a_row = 0

    @property
    def tripped(self) -> bool:
        return self.in_a_row >= self.limit

    def error(self) -> ServerDown:
        return ServerDown(
            f"the server stopped answering: {self.in_a_row} questions in a row could not reach it ({self.last}); "
            "finished predictions are saved: restart the server and run the same command to resume"
        )


def _finite_scores(step: TraceStep) -> TraceStep:
    # JSON has no -inf: a letter with no finite log-probability (outside a server's top-20 logprobs, or not the
    # one a grammar committed to) is left out of the stored scores instead of being written as null.
    if step.scores and not all(math.isfinite(v) for v in step.scores.values()):
        return step.model_copy(update={"scores": {k: v for k, v in step.scores.items() if math.isfinite(v)}})
    return step


def to_prediction(graph: str, question: Question, state: dict) -> Prediction:
    strategy = GraphSpec.parse(graph).strategy
    trace = [_finite_scores(s) for s in state.get("trace", [])]
    generated = [s for s in trace if s.finish_reason is not None]  # steps that generated text, not scores
    answer = state.get("answer")
    return Prediction(
        question_id=question.id,
        graph=graph,
        answer=answer,
        gold=question.answer,
        correct=answer == question.answer,
        # No answer from a cut output (the last generated one, which the answer is read from) is truncated, not
        # unparsed: the budget or the thinking, not the parser, decided it.
        parse_status="ok" if answer else "truncated" if generated and generated[-1].cut else "unparsed",
        answer_method=state.get("answer_method", "none") if answer else "none",
        draft_answer=state.get("draft_answer"),
        draft_cut=bool(strategy.first_proposal and generated and not state.get("draft_answer") and generated[0].cut),
        first_proposal=strategy.first_proposal,
        extras={key: state[key] for key in strategy.extras if key in state},
        trace=trace,
        # Not the wall time around the graph: pride's calibration rotations ran before it, and medprompt's example
        # reasoning (the pool's preprocessing) runs inside it for whichever question needs an example first.
        **trace_costs(trace),
    )


def predict(name: str, graph, question: Question, breaker: Breaker | None = None) -> Prediction:
    start = time.perf_counter()
    try:
        state = graph.invoke({"question": question, "trace": []})
    except Exception as e:
        if breaker:
            breaker.record(e)
        # A server error that survived its retries is one clear line; anything else keeps its traceback.
        log.error(
            "question.failed", graph=name, question=question.id, error=str(e), exc_info=not isinstance(e, BackendError)
        )
        return Prediction(
            question_id=question.id,
            graph=name,
            answer=None,
            gold=question.answer,
            correct=False,
            parse_status="error",
            answer_method="none",
            error=f"{type(e).__name__}: {e}",
            error_kind="permanent" if isinstance(e, PermanentError) else "transient",
            seconds=time.perf_counter() - start,
        )
    if breaker:
        breaker.record(None)
    return to_prediction(name, question, state)


def run(
    questions: Sequence[Question],
    graphs: dict[str, Callable],
    store: RunStore,
    *,
    concurrency: int = 1,
    batches: bool = False,
) -> None:
    """Each question goes through every graph back to back, so they share its prompt prefix in the KV cache.

    With `concurrency` > 1, up to that many questions are in flight at once (each still through its graphs back
    to back); predictions are appended as they finish, one writer at a time. Resuming works the same either way.
    Raises ServerDown (after saving what finished) when UNREACHABLE_LIMIT questions in a row cannot reach the server.
    `batches`: the engine decodes concurrent requests together, so a prediction made beside another shared a batch.
    """
    breaker = Breaker()
    done = store.done()
    todo = [(q, name) for q in questions for name in graphs if (name, q.id) not in done]
    log.info(
        "run.start",
        questions=len(questions),
        graphs=list(graphs),
        done=len(done),
        todo=len(todo),
        concurrency=concurrency,
    )
    with progress(len(todo), "evaluating", unit="pred") as bar:
        if concurrency <= 1:
            for question, name in todo:
                prediction = predict(name, graphs[name], question, breaker)
                store.append(prediction)
                bar.update()
                _check(prediction, breaker)
        else:
            _run_concurrently(todo, graphs, store, bar, concurrency, breaker, batches)


def _check(prediction: Prediction, breaker: Breaker) -> None:
    """After a saved prediction: stop the run when the server is gone, else log it."""
    if breaker.tripped:
        raise breaker.error()
    log.debug(
        "question.done",
        graph=prediction.graph,
        question=prediction.question_id,
        answer=prediction.answer,
        correct=prediction.correct,
    )


class InFlight:
    """Questions in flight, and for each prediction being made the most that were in flight at any moment of it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._now = 0
        self._peaks: dict[int, list[int]] = {}

    @contextlib.contextmanager
    def question(self):
        with self._lock:
            self._now += 1
            for peak in self._peaks.values():
                peak[0] = max(peak[0], self._now)
        try:
            yield
        finally:
            with self._lock:
                self._now -= 1

    @contextlib.contextmanager
    def prediction(self):
        """Yields a one-item list holding the peak, final once the block ends."""
        with self._lock:
            peak = [self._now]
            self._peaks[id(peak)] = peak
        try:
            yield peak
        finally:
            with self._lock:
                del self._peaks[id(peak)]


def _run_concurrently(
    todo: list[tuple[Question, str]],
    graphs: dict[str, Callable],
    store: RunStore,
    bar: tqdm | Lines,
    concurrency: int,
    breaker: Breaker,
    batches: bool,
) -> None:
    by_question: dict[str, tuple[Question, list[str]]] = {}
    for question, name in todo:
        by_question.setdefault(question.id, (question, []))[1].append(name)
    write = threading.Lock()
    stop = threading.Event()
    flight = InFlight()

    def work(question: Question, names: list[str]) -> None:
        with flight.question():
            for name in names:
                if stop.is_set():
                    return
                with flight.prediction() as most:
                    prediction = predict(name, graphs[name], question, breaker)
                prediction = prediction.model_copy(
                    update={"in_flight": most[0], "shared_batch": batches and most[0] > 1}
                )
                with write:
                    store.append(prediction)
                    bar.update()
                _check(prediction, breaker)

    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="question")
    futures = [pool.submit(work, question, names) for question, names in by_question.values()]
    try:
        for future in as_completed(futures):
            future.result()
    except BaseException:
        # Ctrl-C, a server that went away, or a bug: start nothing new; questions in flight finish their current graph
        # and are saved.
        stop.set()
        running = sum(f.running() for f in futures)
        if running:
            log.warning(
                "run.stopping", in_flight=running, note="questions in flight finish their current graph and are saved"
            )
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
