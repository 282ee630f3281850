"""Loading questions: the bundled set, any JSONL file / directory of JSONL files in the same schema, or a real exam
dataset."""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterable
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

from eval.core.schema import Question, RunConfig
from eval.data.errors import DataError
from eval.data.formats import SUFFIXES, suffix_list

if TYPE_CHECKING:
    from eval.data.loaders import Loaded

BUNDLED = Path(str(files(__package__).joinpath("questions")))


def dataset_files(path: Path) -> list[Path]:
    """The file itself, or a directory's data files: all its files of a kind some format reads (.jsonl, .json, .csv,
    …: CMMLU and C-Eval ship one CSV per subject), never two kinds: a sample converted to .jsonl beside its source CSVs
    would count twice."""
    if path.is_dir():
        found = sorted(
            f for f in path.iterdir() if f.suffix.lower() in SUFFIXES and f.is_file() and not f.name.startswith(".")
        )
        if not found:
            raise DataError(f"{path}: no {suffix_list()} files in this directory")
        if len(kinds := sorted({f.suffix.lower() for f in found})) > 1:
            raise DataError(
                f"{path}: holds {' and '.join(kinds)} files: a directory is one dataset of one kind; split them"
            )
        return found
    if not path.is_file():
        raise DataError(f"{path}: no such file or directory")
    return [path]


def load_questions(
    path: Path | str = BUNDLED,
    format: str = "auto",
    *,
    answers: Path | str | None = None,
    fields: dict[str, str] | None = None,
    mapping: Path | str | None = None,
    multi: str = "skip",
    skip_bad: bool = False,
    encoding: str | None = None,
) -> list[Question]:
    """Questions from our JSONL (file or directory) or a real exam dataset; see eval/data/loaders.py.

    Just the questions: `eval.data.loaders.load` (same arguments) also says what was skipped and the encoding read."""
    from eval.data.loaders import load  # imported here: loaders imports dataset_files from this module

    loaded = load(
        path, format, answers=answers, fields=fields, mapping=mapping, multi=multi, skip_bad=skip_bad, encoding=encoding
    )
    log = logging.getLogger(__name__)
    if loaded.skipped:  # never silent: a run on fewer questions than the file holds must say so
        log.warning("%s: skipped %d multi-answer questions (multi='skip')", path, loaded.skipped)
    if loaded.bad:
        log.warning("%s: skipped %d bad records (skip_bad), the first: %s", path, len(loaded.bad), loaded.bad[0])
    return loaded.questions


def select(
    questions: Iterable[Question],
    *,
    specialties: Iterable[str] = (),
    levels: Iterable[str] = (),
    limit: int | None = None,
) -> list[Question]:
    """Filter, then take `limit` questions stratified round-robin over specialty x level cells, balancing answer
    letters.

    A plain head-of-file limit would test one specialty only; round-robin keeps small runs balanced and
    deterministic. Within each cell the next question taken is the first (in file order) whose answer letter has
    been chosen least so far: an unbalanced key makes "always answer A" look like skill and moves the chance line.
    """
    wanted_s, wanted_l = set(specialties), set(levels)
    kept = [q for q in questions if (not wanted_s or q.specialty in wanted_s) and (not wanted_l or q.level in wanted_l)]
    if limit is None or limit >= len(kept):
        return kept
    cells: dict[tuple[str, str | None], list[Question]] = {}
    for q in kept:
        cells.setdefault((q.specialty, q.level), []).append(q)
    chosen: list[Question] = []
    taken: Counter[str] = Counter()
    queues = list(cells.values())
    while len(chosen) < limit:
        for queue in queues:
            if queue and len(chosen) < limit:
                pick = min(queue, key=lambda q: taken[q.answer])  # min keeps the first of equals: file order
                queue.remove(pick)
                chosen.append(pick)
                taken[pick.answer] += 1
    return chosen


def questions_sha256(questions: Iterable[Question]) -> str:
    """What the model is shown, in order: ids, stems and options (not the key, not the metadata)."""
    return _sha256([q.id, q.stem, q.options] for q in questions)


def key_sha256(questions: Iterable[Question]) -> str:
    return _sha256([q.id, q.answer] for q in questions)


def _sha256(rows: Iterable[list]) -> str:
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps(row, ensure_ascii=False, sort_keys=True).encode() + b"\n")
    return digest.hexdigest()


def load_for_config(config: RunConfig) -> Loaded:
    """A run's questions reloaded exactly as the run read them (same format, key, field map, mapping, encoding),
    in its order and, for a shuffled run, in its option order (under --circular, every rotation of each);
    `.questions` holds just those."""
    from eval.core.schema import rotation_of
    from eval.core.shuffle import rotate, shuffle_options
    from eval.data.loaders import load

    loaded = load(
        config.data,
        config.format,
        answers=config.answers or None,
        fields=config.fields or None,
        mapping=config.mapping or None,
        skip_bad=config.skip_bad,
        multi=config.multi,
        encoding=config.encoding or None,
    )
    by_id = {q.id: q for q in loaded.questions}
    asked = [rotation_of(qid) if config.circular else (qid, 0) for qid in config.question_ids]
    if missing := [qid for qid, _ in asked if qid not in by_id]:
        raise DataError(
            f"{config.data}: {len(missing)} of the run's questions are no longer there (e.g. {missing[0]!r})"
        )
    chosen = [by_id[qid] for qid, _ in asked]
    if config.shuffle_seed is not None:
        chosen = [shuffle_options(q, config.shuffle_seed) for q in chosen]
    loaded.questions = [rotate(q, r) for q, (_, r) in zip(chosen, asked, strict=True)]
    return loaded
