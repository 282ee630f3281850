"""The strategy registry: `--graph NAME` looks strategies up here. A new strategy is its own files plus one line.

Any strategy can be preceded by guideline retrieval: `NAME+rag` (or `--retrieval` on the CLI), a GraphSpec.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import Any

from graphs.strategy import Build, Strategy

# One line per strategy, in the order --help and reports list them: graphs/NAME.py declares STRATEGY.
REGISTERED = (
    "single",
    "reflect",
    "cot",
    "sc",
    "panel",
    "medprompt",
    "pride",
)
STRATEGIES: dict[str, Strategy] = {s.name: s for s in (import_module(f"graphs.{m}").STRATEGY for m in REGISTERED)}
RAG_SUFFIX = "+rag"


class UnknownGraph(Exception):
    pass


@dataclass(frozen=True)
class GraphSpec:
    """One graph of a run: a strategy, and whether guideline retrieval precedes it."""

    strategy: Strategy
    rag: bool = False

    @property
    def name(self) -> str:
        return self.strategy.name + (RAG_SUFFIX if self.rag else "")

    @classmethod
    def parse(cls, name: str) -> GraphSpec:
        """'reflect+rag' -> GraphSpec(reflect, rag=True)."""
        base, rag = (name[: -len(RAG_SUFFIX)], True) if name.endswith(RAG_SUFFIX) else (name, False)
        if base not in STRATEGIES:
            choices = ", ".join(f"{g}, {g}{RAG_SUFFIX}" for g in STRATEGIES)
            raise UnknownGraph(f"unknown graph {name!r}; choose one of: {choices}")
        return cls(STRATEGIES[base], rag)

    def build(self, backend, options: Any, *, variant: str, seed: int, retrieval=None, **context):
        """The compiled graph; `options` is the strategy's options model; `context`: Build's other fields (roles,
        evaluated, model_id)."""
        prompts = self.strategy.load_prompts(variant)
        roles = {r: m for r, m in context.pop("roles", {}).items() if r in self.strategy.roles}
        rag = retrieval if self.rag else None
        return self.strategy.build(Build(backend, options, prompts, seed, rag, roles=roles, **context))


def options_of(strategy: Strategy, values: Any) -> dict[str, Any]:
    """The strategy's options, validated, taken from `values` (any object with those attributes, e.g. a RunSpec)."""
    return strategy.options(**{k: getattr(values, k) for k in strategy.options.model_fields}).model_dump()


def build_graph(name: str, backend, config: Any, retrieval=None, roles=None, evaluated=()):
    """A run's graph by name, built with the options, prompt variant and seed its RunConfig records; `roles`: other
    models by role; `evaluated`: the run's questions."""
    spec = GraphSpec.parse(name)
    options = spec.strategy.options(**config.options.get(spec.strategy.name, {}))
    return spec.build(
        backend,
        options,
        variant=config.prompt_variant,
        seed=config.seed,
        retrieval=retrieval,
        roles=roles or {},
        evaluated=tuple(evaluated),
        model_id=config.model_sha256 or config.model,
    )


def option_fields() -> dict[str, Any]:
    """Every strategy option by name (FieldInfo); strategies that share a name must declare it alike."""
    fields: dict[str, Any] = {}
    for strategy in STRATEGIES.values():
        for name, field in strategy.options.model_fields.items():
            if name in fields and (fields[name].annotation, fields[name].default) != (field.annotation, field.default):
                raise TypeError(f"strategy option {name!r} is declared differently by two strategies")
            fields.setdefault(name, field)
    return fields
