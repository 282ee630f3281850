"""A run directory: manifest, lock, and append-only predictions that survive a kill at any moment."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from pathlib import Path

import structlog

from eval.core import jsonl
from eval.core.schema import Message, Prediction, RunConfig, TraceStep

MANIFEST = "manifest.json"
PREDICTIONS = "predictions.jsonl"
LOCK = ".lock"

log = structlog.get_logger()


# Config fields that decide only how answers are graded, not what the model was asked.
# --multi changes nothing on its own: were other questions selected, data_sha256 and question_ids would change too.
REGRADE_ONLY = {"key_sha256", "answers", "multi"}
# Recorded for the reader, not compared: the engine a restarted (or upgraded) server reports.
RECORDED = {"engine"}


class RunDirError(Exception):
    pass


def config_hash(config: RunConfig) -> str:
    """8 hex digits over what a resume compares, less what only regrades: configs that can share a run directory hash
    alike, any other differs (the default run directory is named by it)."""
    compared = config.model_dump(mode="json", exclude=RECORDED | REGRADE_ONLY)
    return hashlib.sha256(json.dumps(compared, sort_keys=True).encode()).hexdigest()[:8]


class RunStore:
    """Opens (or resumes) a run directory for one config; the last record per (graph, question) wins."""

    def __init__(self, out: Path, config: RunConfig, *, fresh: bool = False):
        self.out, self.path = out, out / PREDICTIONS
        try:
            out.mkdir(parents=True, exist_ok=True)
            # Held open for the store's lifetime: the flock below lasts as long as this handle.
            self._lock = open(out / LOCK, "w")  # noqa: SIM115
        except OSError as e:
            raise self._unwritable(e) from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunDirError(f"{out} is in use by another run (lock held on {out / LOCK})") from None
        manifest = out / MANIFEST
        if fresh:
            for name in (MANIFEST, PREDICTIONS):
                (out / name).unlink(missing_ok=True)
        previous = read_manifest(out) if manifest.exists() else None
        if previous is not None and previous.version != config.version:
            raise RunDirError(
                f"{out} holds a run made by an earlier version of the evaluator "
                f"(run config version {previous.version}, now {config.version}); its reports still read, "
                f"but it cannot resume: use another --out, or --fresh (or delete {out})"
            )
        if previous is not None and previous != config:
            changed = sorted(
                k for k in RunConfig.model_fields.keys() - RECORDED if getattr(previous, k) != getattr(config, k)
            )
            if not set(changed) <= REGRADE_ONLY:
                raise RunDirError(
                    f"{out} holds a run with a different config (changed: {', '.join(changed)}); "
                    "use another --out, or --fresh to discard it"
                )
            # At most the key changed: what the model was shown is the same, so its answers stand; reports grade
            # every prediction against the key of the current manifest.
            if changed:
                log.warning("run.answer_key_changed", out=str(out), note="finished predictions are kept and re-graded")
            if previous.engine and config.engine and previous.engine != config.engine:
                log.warning(
                    "run.engine_changed", out=str(out), was=previous.engine.describe(), now=config.engine.describe()
                )
        try:
            if previous != config:
                tmp = manifest.with_suffix(".tmp")
                tmp.write_text(config.model_dump_json(indent=2))
                os.replace(tmp, manifest)
            jsonl.repair(self.path)  # a record torn by a kill is no record: the file is whole from here on
        except OSError as e:
            self.close()
            raise self._unwritable(e) from None

    def predictions(self) -> dict[tuple[str, str], Prediction]:
        return read_predictions(self.out)

    def done(self) -> set[tuple[str, str]]:
        """Pairs with a final prediction; transient errors are not final and are retried on resume."""
        return {key for key, p in self.predictions().items() if p.final}

    def append(self, prediction: Prediction) -> None:
        try:
            jsonl.append(self.path, compact(prediction).model_dump_json())
        except OSError as e:  # a full disk, or a directory made read-only under the run
            raise self._unwritable(e, self.path) from None

    def _unwritable(self, e: OSError, where: Path | None = None) -> RunDirError:
        """One line for a run directory that cannot be written: why, what it still holds, and how to go on."""
        n = len(read_predictions(self.out)) if self.path.exists() else 0
        kept = f"{n} finished prediction{'s' * (n != 1)} kept in {self.path}" if n else "no prediction was lost"
        return RunDirError(
            f"{e.filename or where or self.out}: cannot write ({e.strerror or e}); {kept}: free space or make it "
            "writable, then run the same command again to resume (or choose another --out)"
        )

    def close(self) -> None:
        self._lock.close()


def read_predictions(out: Path) -> dict[tuple[str, str], Prediction]:
    """The last record per (graph, question) of a run directory; read-only, so safe beside a run in progress.

    Only newline-terminated lines count: a last line still being written (or torn by a kill) is not a record. A
    complete line that is not a prediction is RunDirError naming the file and line.
    """
    found: dict[tuple[str, str], Prediction] = {}
    try:
        for _, p in jsonl.read(out / PREDICTIONS, lambda line: expand(Prediction.model_validate_json(line))):
            found[(p.graph, p.question_id)] = p
    except jsonl.JsonlError as e:
        raise RunDirError(str(e)) from None
    return found


def graph_predictions(out: Path, graph: str) -> dict[str, Prediction]:
    """One graph's final predictions in a run directory, by question id."""
    return {qid: p for (g, qid), p in read_predictions(out).items() if g == graph}


def finished(config: RunConfig, predictions: dict[str, Prediction]) -> bool:
    """Whether every question of the run is final in `predictions` (one graph's, by id): a result or a permanent
    error, which no re-run can change."""
    return all(qid in predictions and predictions[qid].final for qid in config.question_ids)


def compact(prediction: Prediction) -> Prediction:
    """Each trace step keeps only the messages it adds to the longest earlier step's conversation it extends.

    A chain's conversation grows by a turn or two per node, so storing every step's whole conversation grows with the
    square of the chain's length; this stores each message once.
    """
    steps = []
    for i, step in enumerate(prediction.trace):
        base = max(
            (j for j in range(i) if _extends(step.messages, prediction.trace[j].messages)),
            key=lambda j: len(prediction.trace[j].messages),
            default=None,
        )
        if base is not None:
            step = step.model_copy(
                update={"continues": base, "messages": step.messages[len(prediction.trace[base].messages) :]}
            )
        steps.append(step)
    return prediction.model_copy(update={"trace": steps})


def expand(prediction: Prediction) -> Prediction:
    """The trace with every step's whole conversation again (the inverse of compact; whole steps pass through)."""
    if all(step.continues is None for step in prediction.trace):
        return prediction
    steps: list[TraceStep] = []
    for step in prediction.trace:
        if step.continues is not None:
            step = step.model_copy(
                update={"continues": None, "messages": steps[step.continues].messages + step.messages}
            )
        steps.append(step)
    return prediction.model_copy(update={"trace": steps})


def _extends(messages: list[Message], base: list[Message]) -> bool:
    return bool(base) and len(base) <= len(messages) and messages[: len(base)] == base


def read_manifest(out: Path) -> RunConfig:
    """A run directory's config; RunDirError (one line) when `out` is not a run directory or its manifest is
    unreadable."""
    path = out / MANIFEST
    try:
        return RunConfig.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDirError(
            f"{out}: no {MANIFEST}; not a run directory (python -m eval.agentic --out DIR writes one)"
        ) from None
    except (OSError, ValueError) as e:
        raise RunDirError(f"{path}: unreadable manifest ({str(e).splitlines()[0]})") from None
