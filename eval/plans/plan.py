"""What a set of evaluator runs shares (the questions, the seed, the strategy options, extra flags), as the
ablation grid and the leaderboard declare it in TOML.

Each of their runs is an ordinary evaluator run, so a plan's shared settings are the evaluator's settings (RunSpec's
fields) with the same names; this module gives them as those fields once for both (eval.plans.specs builds the runs'
specs from them).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from collections import Counter
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, create_model

from eval.core.cache import model_sha256
from eval.core.errors import one_line
from eval.core.flags import problem
from eval.core.schema import Level, Question, RunConfig, Specialty
from eval.core.store import RunDirError, read_manifest
from eval.models import PACKAGED_MODELS
from graphs import option_fields

MARKER = "cell.json"  # in each run directory of a plan: the spec it ran with, and whether it finished


class PlanError(Exception):
    """The plan cannot be run; the message says what to change."""


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")
    noun: ClassVar[str] = "plan"  # what the messages call it
    crossed: ClassVar[frozenset[str]] = frozenset()  # options the plan crosses itself, so `options` may not set them

    # Descriptions are the reference pages' text (python -m eval.docs).
    limit: int = Field(default=28, ge=0, description="questions, stratified over specialty x level; 0 = all")
    specialty: list[Specialty] = Field(default_factory=list, description="keep only these specialties")
    level: list[Level] = Field(default_factory=list, description="keep only these levels")
    seed: int = Field(0, description="decoding seed of every run")
    data: str = Field("", description='dataset file or directory, as --data; "" = the bundled questions')
    format: str = Field("auto", description="dataset format, as --format")
    answers: str = Field("", description="CMB: answers in a separate file, as --answers")
    mapping: str = Field("", description="TOML of specialty/level rules, as --mapping")
    map: dict[str, str] = Field(
        default_factory=dict, description='generic format: our field = the dataset\'s, as --map (e.g. {stem = "题目"})'
    )
    multi: Literal["include", "skip"] = Field("include", description="multi-answer questions, as --multi")
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="strategy options shared by every run whose strategy has them (e.g. {rounds = 2})",
    )
    extra_args: list[str] = Field(
        default_factory=list, description="evaluator flags for every run (not those the plan sets itself)"
    )
    bootstrap_resamples: int = Field(default=2000, ge=100, description="resamples of every bootstrap interval")
    bootstrap_seed: int = Field(0, description="seed of the bootstrap resampling")

    _source: str = PrivateAttr("")  # the plan's file, for messages (load_plan sets it)

    @property
    def source(self) -> str:
        """What messages about the plan name: its file, or its noun for a plan built in Python."""
        return self._source or self.noun

    def shared(self) -> dict[str, Any]:
        """The evaluator's settings (RunSpec's fields) every run of the plan shares: its questions, seed and strategy
        options."""
        from eval.data import BUNDLED

        return {
            "limit": self.limit,
            "seed": self.seed,
            "specialty": list(self.specialty),
            "level": list(self.level),
            "data": Path(self.data) if self.data else BUNDLED,
            "format": self.format,
            "multi": self.multi,
            "answers": Path(self.answers) if self.answers else None,
            "mapping": Path(self.mapping) if self.mapping else None,
            "map": [f"{ours}={theirs}" for ours, theirs in self.map.items()],
            **self.options,
        }

    def check_inputs(self, path: Path, error: type[Exception] = PlanError) -> None:
        """Refuse, before anything runs, the files every run would fail on: the data, its answers and its mapping (a
        model that is not there fails its own runs only). One `error` naming the plan's file."""
        for key in ("data", "answers", "mapping"):
            if (value := getattr(self, key)) and not Path(value).exists():
                raise error(f"{path}: {key} = {value!r}: no such file or directory")

    def questions(self) -> dict[str, Question]:
        """Every question of the plan's dataset by id (the runs record which of them they used)."""
        from eval.data import BUNDLED, load_questions

        loaded = load_questions(
            self.data or BUNDLED,
            self.format,
            answers=self.answers or None,
            fields=dict(self.map) or None,
            mapping=self.mapping or None,
            multi="include",  # a lookup by id: the runs record which questions they used
        )
        return {q.id: q for q in loaded}


P = TypeVar("P", bound=Plan)


def saved_plan(path: Path, key: str, kind: type[P], error: type[Exception], what: str) -> P:
    """The plan a program saved in its table's JSON (ablation.json's grid, leaderboard.json's board), to analyse its
    runs again."""
    try:
        return kind.model_validate(json.loads(path.read_text(encoding="utf-8"))[key])
    except (ValueError, KeyError, TypeError) as e:  # ValidationError and JSONDecodeError are ValueErrors
        raise error(f"{path} is not {what} this version can read: {one_line(e)}") from None


def load_plan(path: Path, kind: type[P], error: type[Exception] = PlanError) -> P:
    """Read and check a plan's TOML; every problem is one `error` naming the file and the key."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise error(f"{path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise error(f"{path}: not valid TOML: {e}") from None
    try:
        plan = kind.model_validate(raw)
    except ValidationError as e:
        where, what = problem(e)
        raise error(f"{path}: {where + ': ' if where else ''}{what}") from None
    fields = option_fields()
    if unknown := sorted(set(plan.options) - set(fields) | set(plan.options) & kind.crossed):
        raise error(
            f"{path}: options.{unknown[0]} is not a strategy option the {kind.noun} may set; "
            f"choose from: {', '.join(sorted(set(fields) - kind.crossed))}"
        )
    # Checked here, not when the first run parses its flags: one line naming the file, before anything runs.
    declared: dict[str, Any] = {name: (fields[name].annotation, fields[name]) for name in plan.options}
    options = create_model("Options", **declared)
    try:
        options.model_validate(plan.options, strict=True)
    except ValidationError as e:
        first = e.errors()[0]
        raise error(f"{path}: options.{'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None
    plan._source = str(path)  # extra_args are checked against what the plan sets: eval.plans.specs
    return plan


# -- the models of a plan and their run directories -------------------------------------------

T = TypeVar("T")


def model_name(model: str) -> str:
    """What a model is called unless a plan names it: its packaged name, or its file's stem."""
    return model if model in PACKAGED_MODELS else Path(model).stem


def model_key(model: str) -> str:
    """What tells two models apart: a packaged name or an endpoint as given, a file however its path is written
    (symlinks followed)."""
    return model if model in PACKAGED_MODELS or "://" in model else os.path.realpath(os.path.expanduser(model))


def duplicate(items: list[T], key: Callable[[T], Hashable]) -> tuple[T, T] | None:
    """The first two of `items` with the same key (the same run twice), or None."""
    seen: dict[Hashable, T] = {}
    for item in items:
        if (k := key(item)) in seen:
            return seen[k], item
        seen[k] = item
    return None


def run_names(entries: list[tuple[str, str]]) -> list[str]:
    """Directory names for a plan's entries, each given as (its name, what tells it apart): the name with what a
    path may not hold replaced, and where two entries would share one (on a case-insensitive file system too), a
    short hash of what tells each apart after it, so no two entries ever share a run directory."""
    safe = [re.sub(r"[^\w.+-]", "_", name) for name, _ in entries]
    taken = Counter(s.casefold() for s in safe)
    return [
        s if taken[s.casefold()] == 1 else f"{s}-{hashlib.sha256(apart.encode()).hexdigest()[:8]}"
        for s, (_, apart) in zip(safe, entries, strict=True)
    ]


def other_model(config: RunConfig, model: str, served: str | None = None) -> str:
    """Why the run whose manifest is `config` is not a run of `model` (a packaged name or GGUF path, "" for none),
    or "" when it is. `served`: for a model behind an endpoint, the model name requested ("" = the server's first);
    `model` is then the GGUF it serves, if given. Checked by path and by the file's hash, where both are known."""
    if served is not None:
        if not config.model.startswith("openai:") or (served and config.model != f"openai:{served}"):
            return f"its manifest names {config.model}, not a server's {served or 'model'}"
    elif config.model.startswith("openai:") or (
        model not in PACKAGED_MODELS and config.model != str(Path(model).expanduser())
    ):
        return f"its manifest names {config.model}, not {model}"
    if model and config.model_sha256:
        path = Path(model).expanduser()
        if model in PACKAGED_MODELS:
            want = PACKAGED_MODELS[model].sha256
        else:  # a file that is gone is checked by its path alone
            want = model_sha256(path) if path.is_file() else ""
        if want and want != config.model_sha256:
            return f"its manifest's model has sha256 {config.model_sha256[:12]}…, {model} has {want[:12]}…"
    return ""


def read_run(out: Path, mismatch: Callable[[RunConfig], str], error: type[Exception] = PlanError):
    """A plan's run directory as its tables take it: (its manifest, or None; why it failed, or "").

    A run whose last attempt stopped with an error (its marker says which) or whose manifest names another model
    than the entry's (`mismatch` says why) is failed: no row is ever built from it. `error`: raised, one line, for
    an unreadable manifest."""
    try:
        marker = json.loads((out / MARKER).read_text(encoding="utf-8"))
    except FileNotFoundError:
        marker = {}
    except (ValueError, OSError):
        marker = {"error": f"{out / MARKER} is unreadable"}
    if marker.get("error"):  # even with a manifest: a model that failed to load after the run directory was made
        return None, str(marker["error"])
    if not (out / "manifest.json").exists():
        return None, ""
    try:
        config = read_manifest(out)
    except RunDirError as e:
        raise error(str(e)) from None
    if why := mismatch(config):
        return None, f"{out} holds a run of another model: {why}"
    return config, ""
