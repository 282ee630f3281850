"""What a strategy declares, in its own file: its options, how its graph is built, and what it records.

The evaluator's flags, the run's manifest and the ablation grid's keys are generated from `options`, so a new
strategy with a new option touches only its own files and one line of the registry (graphs/__init__.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agents.backends.base import Backend
from agents.nodes.retrieve import Retrieval
from agents.prompts import load_prompts
from eval.core.flags import flag_of
from eval.core.schema import Question


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Budgets(NoOptions):
    """A strategy that generates text: its reasoning budget (shared by every strategy that has one)."""

    draft_tokens: int = Field(512, ge=1, description="token budget of a draft (reasoning before the answer)")


# Model roles a strategy may give to another model than the drafter's (--critic-model, --extract-model).
ROLES = ("critic", "extract")


@dataclass(frozen=True)
class Build:
    """What a strategy's build() gets: the backend, its options, its prompts (in the run's variant)."""

    backend: Backend
    options: Any  # the strategy's own options model
    prompts: dict
    seed: int  # the run's seed, for strategies that sample
    retrieval: Retrieval | None = None
    roles: Mapping[str, Backend] = field(default_factory=dict)  # role -> its model, where not the drafter's
    evaluated: tuple[Question, ...] = ()  # the run's questions (a worked-example pool must not offer them)
    model_id: str = ""  # the drafter's identity (its sha256 where known), for what a strategy caches per model

    def backend_for(self, role: str) -> Backend:
        """The model that plays `role` (one of ROLES the strategy declares): its own, or the drafter's."""
        return self.roles.get(role, self.backend)


@dataclass(frozen=True)
class Strategy:
    name: str
    description: str
    build: Callable[[Build], Any]  # -> a compiled LangGraph graph over graphs.state.ChainState
    options: type[BaseModel] = NoOptions
    prompts: str = ""  # its prompt file in agents/prompts (default: its name)
    # What the chain's first proposal (Prediction.draft_answer) is called, e.g. "draft"; "" when it has none.
    first_proposal: str = ""
    extras: tuple[str, ...] = ()  # graph-state keys recorded in Prediction.extras (e.g. sc's votes)
    roles: tuple[str, ...] = ()  # of ROLES, those its build() asks Build.backend_for
    # Files the strategy reads, by what they are (e.g. medprompt's pool): their content hashes go in the manifest,
    # so a changed file is another run. Also where a strategy refuses options it cannot run with (raise DataError)
    # before anything is loaded or written.
    files: Callable[[Any], dict[str, str]] = lambda o: {}
    # Tokens the chain's conversation can grow by (generated text it sends back), for the context-window check;
    # by default every `*_tokens` budget once.
    generated_tokens: Callable[[Any], int] = lambda o: sum(v for k, v in o if k.endswith("_tokens"))
    # The option that bounds a node's generated output where it is not draft_tokens (reports name its flag).
    budgets: Mapping[str, str] = field(default_factory=dict)

    def budget_flag(self, node: str) -> str:
        """The flag that sets `node`'s token budget ("" where none of the strategy's options does)."""
        option = self.budgets.get(node, "draft_tokens")
        return flag_of(option) if option in self.options.model_fields else ""

    @property
    def prompt_file(self) -> str:
        return self.prompts or self.name

    def load_prompts(self, variant: str = "") -> dict:
        """Its prompts in `variant`, or in the file's default_variant, or the file as is when it has no variants."""
        prompts = load_prompts(self.prompt_file)
        chosen = variant or prompts.get("default_variant")
        return load_prompts(self.prompt_file, chosen) if chosen and "variants" in prompts else prompts
