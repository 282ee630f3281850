"""Command-line flags generated from a pydantic model: one typed declaration, one flag per field.

A field `top_k: int = 4` with a description becomes `--top-k N` with that help; `bool` becomes a switch,
`list[X]` a repeatable flag, a `Literal` its choices. `json_schema_extra` may name a `metavar` and a `group`
(an argparse argument group). argparse has no such bridge, and the few libraries that do (typer, pydantic-settings'
CLI) would each replace argparse in every program for this one use.

Every option's help says its default (HelpFormatter, for every program's parser): a generated flag's default is the
field's, written into its help, because the flag's own argparse default is None ("not given", so a config file's value
can stand under it).
"""

from __future__ import annotations

import argparse
import copy
import difflib
import tomllib
import types
from pathlib import Path
from typing import Any, Literal, NoReturn, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(the type inside, whether it is a list), with `X | None` reduced to X."""
    if get_origin(annotation) in (Union, types.UnionType):
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    if get_origin(annotation) is list:
        return get_args(annotation)[0], True
    return annotation, False


def shown(default: Any) -> str:
    """A default as help shows it: "none" for no value."""
    return "none" if default in (None, "", [], ()) else str(default)


def with_default(help: str | None, default: Any) -> str:
    """`help` ending with the default, unless its own words already say it (e.g. "default: all cores")."""
    help = help or ""
    if "default" in help.lower():
        return help
    # argparse %-formats help strings
    return f"{help} (default: {shown(default).replace('%', '%%')})".lstrip()


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The programs' help: descriptions as written, and every option that takes a value saying its default (switches
    are off unless given; positionals have none)."""

    def _format_action(self, action: argparse.Action) -> str:
        if not action.help and self._says_default(action):  # argparse shows no help line for an option without help
            action = copy.copy(action)
            action.help = with_default("", action.default)
        return super()._format_action(action)

    def _get_help_string(self, action: argparse.Action) -> str:
        help = action.help or ""
        return with_default(help, action.default) if self._says_default(action) else help

    @staticmethod
    def _says_default(action: argparse.Action) -> bool:
        return bool(action.option_strings) and action.nargs != 0 and action.default is not argparse.SUPPRESS


def flag_of(name: str) -> str:
    """The command-line flag of a field: draft_tokens -> --draft-tokens."""
    return "--" + name.replace("_", "-")


def add_flags(parser: argparse.ArgumentParser, model: type[BaseModel]) -> None:
    groups: dict[str, argparse._ArgumentGroup] = {}
    for name, field in model.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        target: argparse.ArgumentParser | argparse._ArgumentGroup = parser
        if group := extra.get("group"):
            target = groups.setdefault(str(group), parser.add_argument_group(str(group)))
        flag = flag_of(name)
        kind, many = _unwrap(field.annotation)
        if kind is bool:  # None unless given, like every flag, so from_args tells "not given" from "off"
            target.add_argument(flag, action="store_true", default=None, dest=name, help=field.description)
            continue
        kwargs: dict[str, Any] = {
            "dest": name,
            "help": with_default(field.description, field.get_default(call_default_factory=True)),
        }
        if get_origin(kind) is Literal:
            kwargs["choices"] = list(get_args(kind))
            kind = type(kwargs["choices"][0])
        kwargs["type"] = Path if kind is Path else kind
        if many:
            kwargs["action"] = "append"
        if metavar := extra.get("metavar"):
            kwargs["metavar"] = metavar
        target.add_argument(flag, default=None, **kwargs)


class ConfigError(ValueError):
    """A config file that cannot be used, said in one line naming the file."""


def read_config(path: Path, model: type[BaseModel]) -> dict[str, Any]:
    """A config file's settings: TOML whose keys are the model's fields (the flags' names with _ for -), checked on
    their own so that a problem names the file; the flags given with it override them (from_args' `base`)."""
    try:
        settings = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{path}: {e.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    for key in settings:
        if key not in model.model_fields:
            close = difflib.get_close_matches(key.replace("-", "_"), model.model_fields, n=1)
            raise ConfigError(
                f"{path}: unknown key {key!r}: "
                + (
                    f"did you mean {close[0]!r}?"
                    if close
                    else f"the keys are the flags' names ({', '.join(model.model_fields)})"
                )
            )
    try:
        model(**settings)
    except ValidationError as e:
        where, what = problem(e)
        raise ConfigError(f"{path}: {where + ': ' if where else ''}{what}") from None
    return settings


def from_args(
    parser: argparse.ArgumentParser,
    model: type[BaseModel],
    args: argparse.Namespace,
    base: dict[str, Any] | None = None,
) -> Any:
    """The model from parsed flags over `base` (a config file's settings); what neither sets keeps the model's
    default. A bad value is parser.error."""
    given = (base or {}) | {
        name: value for name in model.model_fields if (value := getattr(args, name, None)) is not None
    }
    try:
        return model(**given)
    except ValidationError as e:
        where, what = problem(e)
        # a rule over several flags (no field) names them in its message
        parser.error(f"--{where.split('.')[0].replace('_', '-')}: {what}" if where else what)


def problem(e: ValidationError) -> tuple[str, str]:
    """A validation error's first problem as one line's parts: where (the field's dotted path; "" for a rule over
    several fields) and what (a validator's own message as it wrote it)."""
    error = e.errors()[0]
    what = str(error["ctx"]["error"]) if error["type"] == "value_error" else error["msg"]
    return ".".join(str(p) for p in error["loc"]), what


def parse(model: type[BaseModel], argv: list[str], *, prog: str, error: type[Exception]) -> Any:
    """Flags given outside a command line (a grid's cell, its extra_args): a bad one raises `error`, never exits."""

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> NoReturn:
            raise error(f"{prog}: {message}")

    parser = Parser(prog=prog, add_help=False)
    add_flags(parser, model)
    return from_args(parser, model, parser.parse_args(argv))
