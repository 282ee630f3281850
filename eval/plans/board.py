"""The leaderboard (TOML): its models (`Entry`, with the `Facts` models are compared by) and its strategies (`Board`).

eval.plans.specs builds the RunSpec of each (model, strategy), eval.plans.campaign runs them, and eval.results.board
reads their run directories into the leaderboard's statistics.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from agents.backends import BACKENDS, backend_fields
from eval.core.schema import Prediction, RunConfig
from eval.plans.plan import Plan, PlanError, duplicate, load_plan, model_key, model_name, other_model, run_names
from graphs import GraphSpec, UnknownGraph


class BoardError(PlanError):
    """The leaderboard cannot be run or read; the message says what to change."""


class Facts(BaseModel):
    """What models are compared by: read from a GGUF file's header, or declared for a model behind an endpoint."""

    model_config = ConfigDict(extra="forbid")

    architecture: str = Field("", description="e.g. llama, qwen2, deepseek2")
    total_params: float | None = Field(None, gt=0, description="parameters, e.g. 671e9")
    active_params: float | None = Field(None, gt=0, description="per token; a dense model's are its total")
    n_experts: int = Field(0, ge=0, description="experts per MoE layer; 0 or 1 = dense")
    n_experts_used: int = Field(0, ge=0, description="experts used per token")
    quantization: str = Field("", description="e.g. Q4_K_M")
    file_size: int | None = Field(None, description="bytes")
    source: str = Field("declared", description='"gguf": read from the file; "declared": the leaderboard says so')
    # A hosted model's price, both or neither (always declared): the leaderboard then gives its cost per question and
    # per correct answer.
    usd_per_million_input: float | None = Field(
        None, ge=0, description="US dollars per million prompt tokens (every prompt token sent, no cache discount)"
    )
    usd_per_million_output: float | None = Field(
        None, ge=0, description="US dollars per million generated tokens, thinking included"
    )

    @model_validator(mode="after")
    def _dense_active_is_total(self) -> Facts:
        if self.active_params is None and self.total_params is not None and self.n_experts <= 1:
            self.active_params = self.total_params
        return self

    @model_validator(mode="after")
    def _both_prices(self) -> Facts:
        if (self.usd_per_million_input is None) != (self.usd_per_million_output is None):
            raise ValueError("declare both usd_per_million_input and usd_per_million_output, or neither")
        return self

    @property
    def priced(self) -> bool:
        return self.usd_per_million_input is not None

    def cost(self, p: Prediction) -> float:
        """What a prediction cost in US dollars at the declared prices: every prompt token sent at the input price
        (what an API bills; a provider's discount on prompt tokens it had cached is not applied, nor is the local
        prompt cache's saving), every generated token, thinking included, at the output price."""
        usd_in, usd_out = self.usd_per_million_input, self.usd_per_million_output
        assert usd_in is not None and usd_out is not None  # called where `priced`: both are declared or neither
        return (p.prompt_tokens * usd_in + p.completion_tokens * usd_out) / 1e6

    @property
    def is_moe(self) -> bool:
        return self.n_experts > 1

    @property
    def experts(self) -> str:
        return f"{self.n_experts_used} of {self.n_experts}" if self.is_moe else "dense"


class _Entry(BaseModel):
    """One model of the leaderboard: a GGUF (`model`), or a model behind an endpoint, given by the endpoint options of
    a registered backend (agents/backends: the first of them, set, selects it), which Entry adds as keys."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("", description="its label (default: the packaged name, the file's stem, or the model served)")
    model: str = Field(
        "", description="GGUF path or packaged name; with an endpoint, optionally the GGUF the server serves"
    )
    facts: Facts | None = Field(
        None, description="declared facts; for a GGUF, those given replace what its header says"
    )
    args: list[str] = Field(
        default_factory=list, description='evaluator flags for this model only, e.g. ["--n-gpu-layers", "-1"]'
    )

    if TYPE_CHECKING:  # the endpoint keys Entry adds, as a type checker sees them: pydantic validates them

        def __getattr__(self, name: str) -> Any: ...

    def endpoint(self) -> tuple[str, dict[str, str]]:
        """The backend whose endpoint this entry's keys give, with those keys; ("", {}) for a GGUF run in-process."""
        for kind, backend in BACKENDS.items():
            if backend.endpoint and getattr(self, backend.endpoint[0]):
                return kind, {key: getattr(self, key) for key in backend.endpoint}
        return "", {}

    @property
    def served(self) -> str:
        """What names the model behind the endpoint ("" for a GGUF, or where the endpoint says not)."""
        kind, keys = self.endpoint()
        return keys.get(BACKENDS[kind].served, "") if kind else ""

    @model_validator(mode="after")
    def _has_a_model(self) -> _Entry:
        if not (self.model or self.endpoint()[0]):
            first = " or ".join(f"`{b.endpoint[0]}`" for b in BACKENDS.values() if b.endpoint)
            raise ValueError(f"a model needs `model` (a GGUF path or packaged name) or an endpoint ({first})")
        return self

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if self.model:
            return model_name(self.model)
        return self.served or next(iter(self.endpoint()[1].values()))

    def mismatch(self, config: RunConfig) -> str:
        """Why a run's manifest is not of this entry's model ("" when it is)."""
        served = (self.served or None) if self.endpoint()[0] else None
        return other_model(config, self.model, served)


def entry_model() -> type[_Entry]:
    """Entry as the backend registry stands: every registered backend's endpoint options as keys."""
    options = backend_fields()
    keys: dict[str, Any] = {
        name: (str, Field("", description=options[name].description))
        for backend in BACKENDS.values()
        for name in backend.endpoint
    }
    doc = "One model of the leaderboard: a GGUF (`model`), or a model behind an endpoint (its backend's keys)."
    return create_model("Entry", __base__=_Entry, __doc__=doc, **keys)


if TYPE_CHECKING:
    Entry = _Entry  # a type checker cannot see a model built at import time; its declared part is checked
else:
    Entry = entry_model()


class Board(Plan):
    """python -m eval.leaderboard SPEC.toml: every key but `models` optional.

    models = ["smollm2-135m", "qwen2.5-coder-0.5b"]      # or tables: [[models]] name / model / base_url / facts
    strategies = ["single", "reflect"]                   # default ["single"]
    baseline = "single"                                  # what the other strategies are compared with, per model
    circular = false                                     # true: every run asks every rotation of the options, and
                                                         # every statistic is circular accuracy (right under all)
    data = "PATH", limit = 0 (all), specialty, level, seed, format, answers, mapping, map, options, extra_args
    """

    noun = "leaderboard"

    models: list[Entry] = Field(
        min_length=1, description="packaged names or GGUF paths, or [[models]] tables (below); TOML does not mix both"
    )
    strategies: list[str] = Field(
        default_factory=lambda: ["single"], min_length=1, description="any registered strategy"
    )
    baseline: str = Field("single", description="the strategy the others are compared with, per model")
    limit: int = Field(  # a leaderboard is on every question unless it says otherwise
        default=0, ge=0, description="questions, stratified over specialty x level; 0 = all"
    )
    circular: bool = Field(
        False,
        description="every run asks every rotation of the options, and every statistic is circular accuracy (right "
        "under all of them)",
    )

    @model_validator(mode="before")
    @classmethod
    def _names_are_models(cls, data):
        if isinstance(data, dict) and isinstance(data.get("models"), list):
            data = {**data, "models": [{"model": m} if isinstance(m, str) else m for m in data["models"]]}
        return data

    @model_validator(mode="after")
    def _valid(self) -> Board:
        if dupes := sorted({s for s in self.strategies if self.strategies.count(s) > 1}):
            raise ValueError(f"strategy {dupes[0]!r} is listed twice")
        for s in self.strategies:
            try:
                GraphSpec.parse(s)
            except UnknownGraph as e:
                raise ValueError(str(e)) from None
        if len(self.strategies) > 1 and self.baseline not in self.strategies:
            raise ValueError(f"baseline {self.baseline!r} is not one of the strategies {self.strategies}")
        labels = [m.label for m in self.models]  # what every table tells the models apart by
        if dupes := sorted({s for s in labels if labels.count(s) > 1}):
            raise ValueError(f"two models are both called {dupes[0]!r}; give them distinct `name`s")
        if twice := duplicate(
            self.models, lambda m: (m.model and model_key(m.model), tuple(m.endpoint()[1].items()), tuple(m.args))
        ):
            raise ValueError(f"{twice[0].label} and {twice[1].label} are one model with the same flags; list it once")
        return self

    def run_dir(self, out: Path, entry: Entry, strategy: str) -> Path:
        """OUT/MODEL/STRATEGY, a directory no other entry shares (a hash of the label beside a name two share)."""
        return out / run_names([(m.label, m.label) for m in self.models])[self.models.index(entry)] / strategy


def load_board(path: Path) -> Board:
    return load_plan(path, Board, BoardError)
