"""A CLI that guides (issue 27, item 3): defaults in every help, the programs listed, what a run can choose from,
a progress display, a default run directory per config, and a run config file."""

from __future__ import annotations

import argparse
import importlib
from unittest import mock

import pytest

from eval.__main__ import main as list_programs
from eval.__main__ import programs


class _Parsed(Exception):
    def __init__(self, parser: argparse.ArgumentParser):
        self.parser = parser


def _parsers(module: str) -> list[argparse.ArgumentParser]:
    """The parser a program's main() builds (caught where it parses), and its subcommands' parsers."""

    def catch(self, *args, **kwargs):
        raise _Parsed(self)

    program = importlib.import_module(module)
    if not hasattr(program, "main"):  # a package run with -m: its __main__
        program = importlib.import_module(f"{module}.__main__")
    with mock.patch.object(argparse.ArgumentParser, "parse_args", catch), pytest.raises(_Parsed) as caught:
        program.main([])
    parsers = [caught.value.parser]
    for action in parsers[0]._actions:
        if isinstance(action, argparse._SubParsersAction):
            parsers += action.choices.values()
    return parsers


def test_python_m_eval_lists_every_program_with_what_it_does(capsys):
    assert list_programs([]) == 0
    out = capsys.readouterr().out
    for name in ("eval.agentic", "eval.ablate", "eval.leaderboard", "eval.data", "eval.models", "retrieval.ingest"):
        line = next(line for line in out.splitlines() if line.strip().startswith(name + " "))
        assert len(line.split(name, 1)[1].strip()) > 20, line  # what it does, in words
    assert "eval.api" not in out and "eval.core" not in out  # modules, not programs
    assert "run a chain and the single-shot baseline" in out


@pytest.mark.parametrize("program", sorted(programs()))
def test_every_option_of_every_program_says_its_default(program):
    """Every option that takes a value says its default in --help (or that it has none): switches are off unless
    given, positionals are required."""
    for parser in _parsers(program):
        formatter = parser._get_formatter()
        for action in parser._actions:
            if not action.option_strings or action.nargs == 0:
                continue
            shown = formatter._expand_help(action)
            assert "default" in shown.lower(), f"{parser.prog} {action.option_strings[-1]}: {shown!r}"


def test_generated_flags_show_the_model_default(capsys):
    from eval import agentic

    with pytest.raises(SystemExit):
        agentic.main(["--help"])
    help = " ".join(capsys.readouterr().out.split())
    for flag, default in [
        ("--baseline BASELINE", "single"),
        ("--n-ctx N_CTX", "4096"),
        ("--top-k TOP_K", "4"),
        ("--context-tokens CONTEXT_TOKENS", "1024"),
        ("--draft-tokens DRAFT_TOKENS", "512"),
        ("--samples SAMPLES", "5"),
        ("--knn-examples KNN_EXAMPLES", "5"),
        ("--calibration CALIBRATION", "8"),
        ("--answers ANSWERS", "none"),
    ]:
        entry = help.split(f" {flag} ", 1)[1].split(" --", 1)[0]
        assert f"(default: {default})" in entry, (flag, entry)
