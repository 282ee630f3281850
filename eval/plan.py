"""What a set of evaluator runs shares (the questions, the seed, the strategy options, extra flags), as the
ablation grid and the leaderboard declare it in TOML, and the evaluator flags that say it.

Each of their runs is an ordinary `python -m eval.agentic` run, so a plan's shared settings are the evaluator's flags
with the same names; this module turns them into those flags once for both.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from eval.schema import Level, Question, Specialty
from graphs import option_fields

MARKER = "cell.json"  # in each run directory of a plan: the flags it ran with, and whether it finished
# Flags a plan sets for every run itself; `extra_args` may not repeat them.
RESERVED = {
    "--graph", "--baseline", "--model", "--limit", "--specialty", "--level", "--seed", "--data", "--format",
    "--answers", "--map", "--mapping", "--out", "--fresh", "--retrieval", "--shuffle-options", "--circular",
    "--critic-model", "--multi",
}  # fmt: skip


class PlanError(Exception):
    """The plan cannot be run; the message says what to change."""


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")
    noun: ClassVar[str] = "plan"  # what the messages call it
    crossed: ClassVar[frozenset[str]] = frozenset()  # options the plan crosses itself, so `options` may not set them

    limit: int = Field(default=28, ge=0)
    specialty: list[Specialty] = Field(default_factory=list)
    level: list[Level] = Field(default_factory=list)
    seed: int = 0
    data: str = ""  # "" = the bundled questions
    format: str = "auto"
    answers: str = ""
    mapping: str = ""
    map: dict[str, str] = Field(default_factory=dict)
    multi: Literal["include", "skip"] = "include"  # multi-answer questions, as the evaluator's --multi
    # Strategy options shared by every run whose strategy has them (e.g. rounds = 2, draft_tokens = 256).
    options: dict[str, Any] = Field(default_factory=dict)
    extra_args: list[str] = Field(default_factory=list)
    bootstrap_resamples: int = Field(default=2000, ge=100)
    bootstrap_seed: int = 0

    def shared_argv(self) -> list[str]:
        """The evaluator's flags for what every run of the plan shares (not --graph, --model or --out)."""
        argv = ["--limit", str(self.limit), "--seed", str(self.seed)]
        for s in self.specialty:
            argv += ["--specialty", s]
        for lv in self.level:
            argv += ["--level", lv]
        if self.data:
            argv += ["--data", self.data]
        argv += ["--format", self.format, "--multi", self.multi]
        if self.answers:
            argv += ["--answers", self.answers]
        if self.mapping:
            argv += ["--mapping", self.mapping]
        for ours, theirs in self.map.items():
            argv += ["--map", f"{ours}={theirs}"]
        for option, value in self.options.items():
            argv += [f"--{option.replace('_', '-')}", str(value)]
        return argv

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
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise error(f"{path}: {where}: {first['msg']}") from None
    fields = option_fields()
    if unknown := sorted(set(plan.options) - set(fields) | set(plan.options) & kind.crossed):
        raise error(
            f"{path}: options.{unknown[0]} is not a strategy option the {kind.noun} may set; "
            f"choose from: {', '.join(sorted(set(fields) - kind.crossed))}"
        )
    for arg in plan.extra_args:
        if arg.split("=", 1)[0] in RESERVED:
            flag = arg.split("=", 1)[0]
            raise error(f"{path}: extra_args may not set {flag}; the {kind.noun} sets it (use its own key)")
    return plan
