"""The RunSpec of every run of a plan (an ablation grid's cells, a leaderboard's model x strategy runs).

A run's spec is what the plan sets itself (its shared keys, the cell's or the entry's own) plus the evaluator flags
its TOML adds (`extra_args`, a leaderboard entry's `args`), parsed once into RunSpec fields. Those flags may not set
what the plan sets: the refused fields are those the plan's own part of any of its runs holds, so a new key of a plan
is refused there without a list of flags to keep.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agents.backends import BACKENDS
from eval.api import RunSpec
from eval.core.flags import flag_of, parse, problem
from eval.plans.board import Board, BoardError, Entry
from eval.plans.grid import Cell, Grid, GridError, cells
from eval.plans.plan import Plan, PlanError

Fields = dict[str, Any]


def planned(plan: Plan) -> Fields:
    """What a plan sets for every run beyond its shared keys: each run is one strategy (the plan compares them), its
    graph names its retrieval (NAME+rag), and it resumes (never --fresh)."""
    return {"baseline": "none", "retrieval": False, "fresh": False, **plan.shared()}


def given(args: list[str], where: str, error: type[Exception] = PlanError) -> Fields:
    """Evaluator flags from a plan's TOML as the RunSpec fields they set, in the order written (then those a rule set:
    --base-url's backend); a bad one is one `error` naming `where`."""
    spec = parse(RunSpec, args, prog=where, error=error)
    flags = [a.split("=", 1)[0] for a in args]

    def written(name: str) -> tuple[int, str]:
        flag = flag_of(name)
        return (flags.index(flag) if flag in flags else len(flags), name)

    return {name: getattr(spec, name) for name in sorted(spec.model_fields_set, key=written)}


def refuse(extra: Fields, taken: set[str], why: str, error: type[Exception]) -> None:
    """One `error` for the first field of `extra` in `taken` (as its flag): `why` says where it came from."""
    if clash := [name for name in extra if name in taken]:
        raise error(why.format(flag=flag_of(clash[0])))


def build(own: Fields, *extra: Fields, where: str, error: type[Exception] = PlanError) -> RunSpec:
    """The spec of one run: `extra` flags (later ones win) under what the plan sets itself (`own`)."""
    fields: Fields = {}
    for more in extra:
        fields |= more
    try:
        return RunSpec(**(fields | own))
    except ValidationError as e:  # a rule over the plan's and the flags' fields together
        at, what = problem(e)
        raise error(f"{where}: {'--' + at.replace('_', '-') + ': ' if at else ''}{what}") from None


def _stated(spec: RunSpec) -> list[str]:
    """The fields that say `spec` (not where it runs): its strategy, and every field that differs from its default."""
    return [
        name
        for name, field in RunSpec.model_fields.items()
        if name == "graph" or (name != "out" and getattr(spec, name) != field.get_default(call_default_factory=True))
    ]


def spec_argv(spec: RunSpec) -> list[str]:
    """The evaluator flags that give `spec`, without --out. A field that is off, empty or None has no flag: it is at
    its default (no RunSpec switch defaults to on)."""
    argv: list[str] = []
    for name in _stated(spec):
        flag, value = flag_of(name), getattr(spec, name)
        if isinstance(value, bool):
            argv += [flag] if value else []
        elif value is not None:
            argv += [a for v in (value if isinstance(value, list) else [value]) for a in (flag, str(v))]
    return argv


def command(spec: RunSpec) -> str:
    """The equivalent command line of one run."""
    return shlex.join(["python", "-m", "eval.agentic", *spec_argv(spec), "--out", str(spec.out)])


def recorded(spec: RunSpec) -> Fields:
    """What a run's marker records of its spec: the fields that state it, not where it is."""
    return spec.model_dump(mode="json", include=set(_stated(spec)))


# -- the ablation grid ------------------------------------------------------------------------


def cell_fields(grid: Grid, model: str, cell: Cell) -> Fields:
    """What the grid sets for one (model, cell): its graph, model, prompt variant, circular and critic always (a
    cell without them is a cell without them), and the cell's strategy options."""
    own = {"graph": cell.graph, "model": model, "prompt_variant": cell.variant, "circular": cell.circular}
    return own | {"critic_model": cell.critic or None} | cell.settings(grid)


def grid_specs(grid: Grid, out: Path) -> list[tuple[str, Cell, RunSpec]]:
    """Every (model, cell) of the grid with its run's spec, in the order they run. The grid's extra_args may not set
    what it sets for any cell: one GridError naming the grid's file and the flag."""
    extra = given(grid.extra_args, f"{grid.source}: extra_args", GridError)
    dirs = grid.model_dirs()
    runs = [
        (m, c, planned(grid) | cell_fields(grid, m, c) | {"out": out / dirs[m] / c.slug})
        for m in grid.models
        for c in cells(grid)
    ]
    why = f"{grid.source}: extra_args may not set {{flag}}; the grid sets it (use its own key)"
    refuse(extra, {name for *_, own in runs for name in own}, why, GridError)
    return [(m, c, build(own, extra, where=f"{grid.source}: {m} · {c.label}", error=GridError)) for m, c, own in runs]


# -- the leaderboard --------------------------------------------------------------------------


def entry_keys() -> set[str]:
    """The fields an entry says with its own keys: its model, and which backend and where (each backend's endpoint
    options, from the registry)."""
    return {"model", "backend"} | {name for b in BACKENDS.values() for name in b.endpoint}


def entry_fields(entry: Entry) -> Fields:
    """What an entry sets: its model, and for a model behind an endpoint, the backend whose endpoint its keys give
    (the registered backend whose first endpoint option the entry has) and those keys."""
    own: Fields = {"model": entry.model or None}
    kind, keys = entry.endpoint()
    if kind:
        own["backend"] = kind
        own |= {name: value or None for name, value in keys.items()}
    return own


def board_specs(board: Board, out: Path) -> list[tuple[Entry, str, RunSpec]]:
    """Every (model, strategy) of the leaderboard with its run's spec, in the order they run. Its extra_args may not
    set what it sets for any run, nor an entry's args that or the entry's own keys: one BoardError naming the file."""
    extra = given(board.extra_args, f"{board.source}: extra_args", BoardError)
    runs = [
        (e, s, planned(board) | {"graph": s, "circular": board.circular, "out": board.run_dir(out, e, s)}
         | entry_fields(e))
        for s in board.strategies
        for e in board.models
    ]  # fmt: skip
    taken = {name for *_, own in runs for name in own}
    refuse(extra, taken, f"{board.source}: extra_args may not set {{flag}}; the leaderboard sets it", BoardError)
    args = {}
    for e in board.models:  # an entry's own flags may not change what every run shares, nor which model it is
        args[e.label] = given(e.args, f"{board.source}: {e.label}: args", BoardError)
        why = f"{board.source}: {e.label}: args may not set {{flag}}; use the leaderboard's keys"
        refuse(args[e.label], taken | entry_keys(), why, BoardError)
    return [
        (e, s, build(own, extra, args[e.label], where=f"{board.source}: {e.label} · {s}", error=BoardError))
        for e, s, own in runs
    ]
