"""Prompts are declarations: one versioned TOML file per strategy, loaded by name."""

from __future__ import annotations

import tomllib
from functools import cache
from importlib.resources import files

from eval.schema import Question


class UnknownVariant(ValueError):
    pass


@cache
def load_prompts(strategy: str, variant: str | None = None) -> dict:
    """The strategy's prompt file: its top-level keys, or, given `variant`, those overlaid with its
    `[variants.VARIANT]` table; the version then reads "VERSION/VARIANT" and `variant` names the table.

    A file with `uses = "OTHER"` takes OTHER's prompts and variants, keeping its own version.
    """
    prompts = tomllib.loads(files(__package__).joinpath(f"{strategy}.toml").read_text(encoding="utf-8"))
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


def render_question(question: Question) -> str:
    options = "\n".join(f"{letter}. {text}" for letter, text in question.options.items())
    return f"题目：{question.stem}\n选项：\n{options}"
