"""Prompts are declarations: one versioned TOML file per strategy, loaded by name."""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from functools import cache
from importlib.resources import files

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from eval.core.schema import Question, RetrievedPassage


class UnknownVariant(ValueError):
    pass


class PromptError(ValueError):
    """A prompt file does not match PromptFile; the message names the file."""


class PromptFile(BaseModel):
    """The schema every prompt file is checked against on load: a version, prompt texts (strings, or a list of
    tables such as panel's roles), and optionally variants, each setting the same prompts."""

    model_config = ConfigDict(extra="allow")

    version: str = Field(min_length=1)
    uses: str | None = None
    default_variant: str | None = None
    # language and persona describe a variant (reports show them); the rest are its prompts.
    variants: dict[str, dict[str, str | bool]] = Field(default_factory=dict)
    # What a multi-answer (多选) question sees instead: prompt texts, or per variant a table of them.
    multi: dict[str, str | dict[str, str]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _texts(self) -> PromptFile:
        for key, value in (self.model_extra or {}).items():
            if not isinstance(value, str) and not (
                isinstance(value, list)
                and all(isinstance(t, dict) and all(isinstance(v, str) for v in t.values()) for t in value)
            ):
                raise ValueError(f"{key}: a prompt is a string (or a list of tables of strings), got {value!r}")
        if self.variants and self.default_variant not in self.variants:
            raise ValueError(
                f"default_variant {self.default_variant!r} is not one of the variants {list(self.variants)}"
            )
        keys = {name: set(table) for name, table in self.variants.items()}
        if len({frozenset(k) for k in keys.values()}) > 1:  # a run may pick any of them: each sets the same prompts
            raise ValueError(f"the variants set different keys: {keys}")
        return self


@cache
def load_prompts(strategy: str, variant: str | None = None) -> dict:
    """The strategy's prompt file: its top-level keys, or, given `variant`, those overlaid with its
    `[variants.VARIANT]` table; the version then reads "VERSION/VARIANT" and `variant` names the table.

    A file with `uses = "OTHER"` takes OTHER's prompts and variants, keeping its own version.
    """
    path = files(__package__).joinpath(f"{strategy}.toml")
    prompts = tomllib.loads(path.read_text(encoding="utf-8"))
    try:
        PromptFile.model_validate(prompts)
    except ValidationError as e:
        error = e.errors()[0]
        raise PromptError(f"agents/prompts/{strategy}.toml: {error['msg']}") from None
    if uses := prompts.pop("uses", None):  # another strategy's prompts by reference; this file's keys win
        prompts = {**load_prompts(uses), **prompts}
    if variant is None:
        return prompts
    variants = prompts.get("variants", {})
    if variant not in variants:
        raise UnknownVariant(
            f"{strategy} has no prompt variant {variant!r}; choose one of: {', '.join(variants) or '(none)'}"
        )
    merged = {key: value for key, value in prompts.items() if key != "variants"}
    merged.update(variants[variant], variant=variant, version=f"{prompts['version']}/{variant}")
    return merged


def prompts_for(prompts: dict, question: Question) -> dict:
    """The prompts a question sees: a multi-answer question's overrides (the file's [multi] table, or its
    [multi.VARIANT] table for the run's variant) over the rest."""
    if not question.multi or not (multi := prompts.get("multi")):
        return prompts
    variant = prompts.get("variant") or prompts.get("default_variant")
    overrides = multi.get(variant, {}) if variant and isinstance(multi.get(variant), dict) else multi
    return prompts | {k: v for k, v in overrides.items() if isinstance(v, str)}


def render_question(question: Question) -> str:
    layout = load_prompts("question")
    options = "\n".join(layout["option"].format(letter=letter, text=text) for letter, text in question.options.items())
    return layout["question"].format(stem=question.stem, options=options)


def render_passages(passages: Sequence[RetrievedPassage]) -> str:
    """Retrieved passages as the prompt shows them, before the question ("" when there are none)."""
    if not passages:
        return ""
    layout = load_prompts("question")
    numbered = "".join(
        layout["passage"].format(number=i, title=p.title, text=p.text) for i, p in enumerate(passages, start=1)
    )
    return layout["passages"].format(passages=numbered)
