"""Prompts are declarations: one versioned TOML file per strategy, loaded by name."""

from __future__ import annotations

import tomllib
from functools import cache
from importlib.resources import files

from eval.schema import Question


@cache
def load_prompts(strategy: str) -> dict[str, str]:
    return tomllib.loads(files(__package__).joinpath(f"{strategy}.toml").read_text(encoding="utf-8"))


def render_question(question: Question) -> str:
    options = "\n".join(f"{letter}. {text}" for letter, text in question.options.items())
    return f"题目：{question.stem}\n选项：\n{options}"
