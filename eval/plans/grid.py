"""The ablation grid (TOML): its keys (`Grid`), its cells in a stable order (`Cell`, `cells`) and the baseline cell
every other cell of its model is compared with.

eval.plans.specs builds each cell's RunSpec, eval.plans.campaign runs them, and eval.results.ablation reads the cells'
run directories into the table's typed rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from agents.prompts import load_prompts
from eval.plans.plan import Plan, PlanError, duplicate, load_plan, model_key, model_name, run_names
from graphs import STRATEGIES, GraphSpec, UnknownGraph, option_fields

SAMPLING_GRAPHS = {"sc"}  # graphs whose cells are also crossed with `samples`
MATCHED_CONTROL = "sc"  # the compute-matched control: this graph with k matched to a chain's calls or tokens
_SC = GraphSpec.parse(MATCHED_CONTROL).strategy.options


class GridError(PlanError):
    """The grid cannot be run; the message says what to change."""


class Grid(Plan):
    noun = "grid"
    crossed = frozenset({"samples", "sample_temperature"})  # sc cells are crossed with the grid's own `samples`

    models: list[str] = Field(
        default_factory=lambda: [_default_model()], min_length=1, description="GGUF paths or packaged model names"
    )
    graphs: list[str] = Field(min_length=1, description="strategies (NAME+rag retrieves first)")
    variants: list[str] = Field(
        default_factory=list, description="prompt variants, for the graphs whose prompt file has them"
    )
    retrieval: list[bool] = Field(
        default_factory=lambda: [False], min_length=1, description="true adds a NAME+rag cell beside every cell"
    )
    circular: list[bool] | list[str] = Field(
        default_factory=lambda: [False],
        min_length=1,
        description="true adds a NAME[circular] cell beside every cell (every rotation of the options asked, right "
        'only when right under all); graph names (["single"]) add one beside those graphs only',
    )
    critics: list[str] = Field(
        default_factory=list,
        description="other models as critic (GGUF paths, packaged names or endpoints): a cell each for strategies "
        "with a critic, beside their self-critique cell",
    )
    vary: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="strategy options crossed, a cell per value for the strategies that have the option (e.g. "
        "medprompt's parts: {knn_examples = [0, 5], shuffles = [1, 5]})",
    )
    samples: list[int] = Field(
        default_factory=lambda: [_SC.model_fields["samples"].default],
        min_length=1,
        description="sc's k, one cell each",
    )
    sample_temperature: float = Field(
        default=_SC.model_fields["sample_temperature"].default, ge=0.0, description="sc's sampling temperature"
    )
    baseline: str = Field("single", description="the cell every other cell of its model is compared with")

    def model_dirs(self) -> dict[str, str]:
        """Each model's directory in the ablation's: its name, and where two share one, a hash of its path too."""
        return dict(zip(self.models, run_names([(model_name(m), m) for m in self.models]), strict=True))


def _default_model() -> str:
    from eval.models import DEFAULT_MODEL

    return DEFAULT_MODEL


@dataclass(frozen=True)
class Cell:
    graph: str  # registry name, with +rag when it retrieves
    variant: str = ""  # prompt variant; "" for a graph whose prompts have none
    samples: int | None = None  # sampling graphs only
    circular: bool = False  # every rotation of the options asked; scored right only when right under all of them
    critic: str = ""  # --critic-model; "" = the drafter's own model
    options: tuple[tuple[str, Any], ...] = ()  # the grid's `vary` values this cell takes
    critic_name: str = field(default="", compare=False)  # the critic in labels: as the grid names its models

    @property
    def base(self) -> str:
        return GraphSpec.parse(self.graph).strategy.name

    @property
    def rag(self) -> bool:
        return GraphSpec.parse(self.graph).rag

    @property
    def label(self) -> str:
        options = [o for o in (self.variant, f"k={self.samples}" if self.samples else "", *self._flags("=")) if o]
        options += [f"{k}={v}" for k, v in self.options]
        return f"{self.graph}[{','.join(options)}]" if options else self.graph

    @property
    def slug(self) -> str:
        """Its run directory's name: the label without brackets, e.g. sc+rag_zh_k3."""
        return "_".join(
            p
            for p in (
                self.graph, self.variant, f"k{self.samples}" if self.samples else "", *self._flags("-"),
                *(re.sub(r"[^\w.+-]", "_", f"{k}-{v}") for k, v in self.options),
            )
            if p
        )  # fmt: skip

    def _flags(self, equals: str) -> tuple[str, str]:
        return "circular" if self.circular else "", f"critic{equals}{self.critic_name}" if self.critic else ""

    def settings(self, grid: Grid) -> dict:
        """What this cell sets beyond the grid's shared flags: its prompt variant and its strategy's options."""
        settings: dict = {}
        if self.variant:
            settings["prompt_variant"] = self.variant
        if self.samples:
            settings |= {"samples": self.samples, "sample_temperature": grid.sample_temperature}
        if self.circular:
            settings["circular"] = True
        if self.critic:
            settings["critic_model"] = self.critic
        return settings | dict(self.options)


# -- the grid -------------------------------------------------------------------------------


def load_grid(path: Path) -> Grid:
    grid = load_plan(path, Grid, GridError)
    names = {n for g in grid.graphs for n in (g, g.removesuffix("+rag"))}
    if typos := [c for c in grid.circular if isinstance(c, str) and c not in names]:
        raise GridError(f"{path}: circular names {typos[0]!r}, which is not in graphs ({', '.join(grid.graphs)})")
    if empty := [k for k, values in grid.vary.items() if not values]:
        raise GridError(f"{path}: vary.{empty[0]} lists no values")
    fields = option_fields()
    if bad := sorted(set(grid.vary) - set(fields) | set(grid.vary) & (Grid.crossed | set(grid.options))):
        why = "is set by `options` too" if bad[0] in grid.options else "is not a strategy option the grid may vary"
        raise GridError(f"{path}: vary.{bad[0]} {why}; choose from: {', '.join(sorted(set(fields) - Grid.crossed))}")
    for key in ("models", "critics"):  # the same model twice would be two rows of one run
        if twice := duplicate(getattr(grid, key), model_key):
            same = (
                f"{twice[0]!r} is listed twice"
                if twice[0] == twice[1]
                else f"{twice[0]!r} and {twice[1]!r} are one model"
            )
            raise GridError(f"{path}: {key}: {same}; list it once")
    return grid


def cells(grid: Grid) -> list[Cell]:
    """The grid's cells in a stable order: graph, then retrieval, then variant, then k, then circular, then critic."""
    found: list[Cell] = []
    for name in grid.graphs:
        try:
            spec = GraphSpec.parse(name)
        except UnknownGraph as e:
            raise GridError(str(e)) from None
        base = spec.strategy.name
        names = [name] if spec.rag else [GraphSpec(spec.strategy, r).name for r in grid.retrieval]
        prompts = load_prompts(spec.strategy.prompt_file)
        if variants := prompts.get("variants"):
            wanted = grid.variants or [prompts["default_variant"]]
            if missing := [v for v in wanted if v not in variants]:
                raise GridError(
                    f"graph {base!r} has no prompt variant {missing[0]!r}; its variants: {', '.join(variants)}"
                )
        else:
            wanted = [""]
        ks: list[int | None] = list(grid.samples) if base in SAMPLING_GRAPHS else [None]
        critics = ["", *grid.critics] if "critic" in spec.strategy.roles else [""]
        critic_names = dict(zip(grid.critics, run_names([(model_name(c), c) for c in grid.critics]), strict=True))
        varied = _varied(grid, spec.strategy)
        flags = [c for c in grid.circular if isinstance(c, bool)]  # none where it names graphs
        circulars = (
            flags if flags else [False, True]
            if {name, base} & set(grid.circular) else [False]
        )  # fmt: skip
        for graph in names:
            for variant in wanted:
                for k in ks:
                    for circular in circulars:
                        for critic in critics:
                            for options in varied:
                                cell = Cell(graph, variant, k, circular, critic, options, critic_names.get(critic, ""))
                                if cell not in found:
                                    found.append(cell)
    strategies = [GraphSpec.parse(name).strategy for name in grid.graphs]
    # A key no graph of the grid uses would cross nothing, silently: refused, naming the graphs that have it.
    for option in grid.vary:
        if not any(option in s.options.model_fields for s in strategies):
            has = [name for name, s in STRATEGIES.items() if option in s.options.model_fields]
            raise GridError(
                f"vary.{option}: no graph of this grid has it ({', '.join(grid.graphs)}); it is an option of "
                f"{', '.join(has)}: add one of them to `graphs`"
            )
    if grid.critics and not any("critic" in s.roles for s in strategies):
        with_critic = [name for name, s in STRATEGIES.items() if "critic" in s.roles]
        raise GridError(
            f"critics: no graph of this grid has a critic ({', '.join(grid.graphs)}); graphs with one: "
            f"{', '.join(with_critic)}"
        )
    return found


def _varied(grid: Grid, strategy) -> list[tuple[tuple[str, Any], ...]]:
    """Every combination of the grid's `vary` values for the options this strategy has (one empty one if none)."""
    names = [n for n in grid.vary if n in strategy.options.model_fields]
    for name in names:
        for value in grid.vary[name]:
            try:
                strategy.options.model_validate({name: value})
            except ValidationError as e:
                raise GridError(f"vary.{name} = {value!r}: {e.errors()[0]['msg']}") from None
    return [tuple(zip(names, values, strict=True)) for values in product(*(grid.vary[n] for n in names))]


def baseline_cell(grid: Grid, all_cells: list[Cell]) -> Cell:
    """The cell named by `baseline`: a label, or a graph name that only one cell has."""
    matches = [c for c in all_cells if c.label == grid.baseline] or [c for c in all_cells if c.graph == grid.baseline]
    if len(matches) != 1:
        labels = ", ".join(c.label for c in all_cells)
        why = "matches several cells" if matches else "is not a cell of this grid"
        raise GridError(f"baseline {grid.baseline!r} {why}; choose one of: {labels}")
    return matches[0]
