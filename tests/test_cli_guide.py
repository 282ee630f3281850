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
            shown = formatter._format_action(action)  # as --help shows it
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


@pytest.mark.parametrize("flag", ["--graph", "--model", "--format"])
def test_list_says_what_there_is_to_choose_from_and_runs_nothing(flag, capsys, tmp_path, monkeypatch):
    """`--graph list` as lm-evaluation-harness's `--tasks list`: every choice, one line each, exit 0, nothing run."""
    from eval import agentic
    from eval.data.formats import REGISTRY
    from eval.models import PACKAGED_MODELS
    from graphs import STRATEGIES

    monkeypatch.chdir(tmp_path)
    assert agentic.main([flag, "list"]) == 0
    out = capsys.readouterr().out
    names = {"--graph": STRATEGIES, "--model": PACKAGED_MODELS, "--format": [f.name for f in REGISTRY]}[flag]
    starts = {line.split()[0] for line in out.splitlines() if line.startswith("  ") and line.strip()}
    assert set(names) <= starts, out
    assert not (tmp_path / "runs").exists()
    if flag == "--graph":
        assert "--critique-tokens" in out and "zh-plain" in out  # a strategy's options, a prompt file's variants
    if flag == "--model":
        assert "smollm2-135m" in out and "installed" in out


def test_progress_off_a_terminal_is_log_lines_with_count_and_eta(capsys, monkeypatch):
    import json

    from eval.core import log as logsetup

    clock = iter([0.0, 10.0, 31.0, 40.0])  # the start, then each update
    monkeypatch.setattr(logsetup.time, "monotonic", lambda: next(clock))
    logsetup.configure()
    with logsetup.progress(3, "evaluating", unit="pred") as bar:  # stderr is a capture here, not a terminal
        for _ in range(3):
            bar.update()
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    # at most one line every 30 s (none after 10 s), and one at the end
    assert [(e["event"], e["done"], e["of"], e["eta"]) for e in lines] == [
        ("progress", 2, 3, "00:15"),
        ("progress", 3, 3, "00:00"),
    ]


def test_progress_on_a_terminal_is_a_bar_with_log_lines_above_it(monkeypatch):
    """On a terminal (a pty): a tqdm bar with count and ETA; a line logged meanwhile is written whole, the bar drawn
    again below it."""
    import io
    import os
    import pty
    import select

    import structlog

    from eval.core import log as logsetup

    master, slave = pty.openpty()
    terminal = io.TextIOWrapper(os.fdopen(slave, "wb", buffering=0), encoding="utf-8", write_through=True)
    monkeypatch.setattr("sys.stderr", terminal)
    logsetup.configure()
    with logsetup.progress(2, "evaluating", unit="pred") as bar:
        assert bar.smoothing == 0  # the ETA from the whole run's rate: it does not jump between slow and fast items
        bar.update()
        structlog.get_logger().warning("something.happened", detail="x")
        bar.update()
    terminal.flush()
    shown = b""
    while select.select([master], [], [], 0.5)[0]:  # a pty hands over what was written in pieces
        shown += os.read(master, 1 << 16)
    shown = shown.decode()
    os.close(master)
    terminal.close()
    assert "evaluating" in shown and "2/2" in shown and "<" in shown  # count, and elapsed<remaining
    line = next(part for part in shown.replace("\r", "\n").split("\n") if "something.happened" in part)
    assert "evaluating" not in line and "detail" in line  # the log line whole, not drawn over by the bar


def _dir_of(err: str) -> str:
    return next(line for line in err.splitlines() if line.startswith("predictions: ")).split()[1].rsplit("/", 1)[0]


def test_default_run_directory_is_per_model_name_and_config_and_the_same_command_resumes(capsys, monkeypatch, tmp_path):
    """The README trap: re-running a command with one option changed (--circular, --prompt-variant, --retriever;
    here the cheapest, --seed) was refused, since the default directory ignored it. Now another directory, named from
    the model name given; the same command resumes its own; options that do not change results (--n-threads) keep it;
    an earlier run given as --out still resumes."""
    import json

    from eval import agentic

    monkeypatch.chdir(tmp_path)
    command = ["--graph", "single", "--baseline", "none", "--model", "smollm2-135m", "--limit", "1"]
    assert agentic.main(command) == 0
    err = capsys.readouterr().err
    first = _dir_of(err)
    assert first.startswith("runs/smollm2-135m-single-") and len(first.rsplit("-", 1)[1]) == 8, first
    progress = [
        e for line in err.splitlines() if line.startswith("{") and (e := json.loads(line))["event"] == "progress"
    ]
    assert progress and progress[-1]["done"] == progress[-1]["of"] == 1  # plain lines: stderr is not a terminal

    assert agentic.main([*command, "--seed", "1"]) == 0  # was: refused (a different config on the same --out)
    other = _dir_of(capsys.readouterr().err)
    assert other != first and other.startswith("runs/smollm2-135m-single-")

    predictions = tmp_path / first / "predictions.jsonl"
    made = predictions.read_text()
    assert agentic.main([*command, "--n-threads", "1"]) == 0  # the same command, up to scheduling: resumed
    assert _dir_of(capsys.readouterr().err) == first and predictions.read_text() == made

    # a run made before (named the old way) resumes when given as --out
    (tmp_path / first).rename(tmp_path / "runs" / "single-SmolLM2-135M-Instruct.Q4_1")
    assert agentic.main([*command, "--out", "runs/single-SmolLM2-135M-Instruct.Q4_1"]) == 0
    assert (tmp_path / "runs" / "single-SmolLM2-135M-Instruct.Q4_1" / "predictions.jsonl").read_text() == made
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == sorted(
        ["single-SmolLM2-135M-Instruct.Q4_1", other.split("/")[1]]
    )


def test_config_hash_separates_what_a_resume_refuses_and_only_that():
    from eval.core.schema import Engine, RunConfig
    from eval.core.store import config_hash

    base = RunConfig(graphs=["single"], model="m.gguf", model_sha256="0", data="d", data_sha256="1", question_ids=["q"])
    same = [
        base.model_copy(update={"key_sha256": "fixed"}),  # a corrected key re-grades the same run
        base.model_copy(update={"engine": Engine(name="llama-server")}),  # recorded, not compared
    ]
    other = [
        base.model_copy(update={"circular": True}),
        base.model_copy(update={"prompt_variant": "en"}),
        base.model_copy(update={"retrieval": "bm25 k=4"}),
        base.model_copy(update={"options": {"sc": {"samples": 3}}}),
    ]
    assert {config_hash(c) for c in [base, *same]} == {config_hash(base)}
    assert len({config_hash(c) for c in [base, *other]}) == 1 + len(other)


def test_run_config_file_sets_what_flags_do_and_flags_override_it(tmp_path):
    from eval import agentic

    config = tmp_path / "run.toml"
    config.write_text(
        'graph = "cot"\nlimit = 3\ncircular = true\nprompt_variant = "en"\nmap = ["stem=题目"]\ndata = "bank.csv"\n',
        encoding="utf-8",
    )
    spec, _ = agentic.parse_args(["--config", str(config), "--limit", "5", "--seed", "2"])
    assert (spec.graph, spec.limit, spec.seed, spec.circular, spec.prompt_variant) == ("cot", 5, 2, True, "en")
    assert spec.map == ["stem=题目"] and str(spec.data) == "bank.csv"
    assert "circular" in spec.model_fields_set  # set by the file, not a default: a switch not given keeps it


@pytest.mark.parametrize(
    "text, said",
    [
        ('prompt_varient = "en"\n', "run.toml: unknown key 'prompt_varient': did you mean 'prompt_variant'?"),
        ('limit = "all"\n', "run.toml: limit: Input should be a valid integer"),
        ("graph = cot\n", "run.toml: not valid TOML: Invalid value (at line 1, column 9)"),
    ],
)
def test_a_bad_run_config_file_is_one_line_naming_it(text, said, tmp_path, capsys):
    from eval import agentic

    (tmp_path / "run.toml").write_text(text, encoding="utf-8")
    assert agentic.main(["--config", str(tmp_path / "run.toml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and said in err and err.startswith("error: "), err


def test_ctrl_c_says_what_is_kept_and_how_to_resume(capsys):
    from eval.core.errors import interrupted

    assert interrupted("runs/x", "finished cells and predictions") == 130
    assert capsys.readouterr().err == (
        "\ninterrupted: finished cells and predictions are kept; run the same command again to resume (runs/x)\n"
    )
