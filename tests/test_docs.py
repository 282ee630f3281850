"""The documentation cannot drift from the code.

- The reference pages (docs/reference/*.md) are what `python -m eval.docs` generates from the parsers and models now.
- Every command shown in a ```bash block of README.md and docs/ runs, scaled down to the tiny model: `--model
  smollm2-135m`, `--limit 2`, short token budgets; grids and leaderboards written from the page likewise. Each page's
  commands run in order in a scratch directory, in-process, after the page's files (code blocks with `title="NAME"`)
  are written there. Installing (`python3 -m venv`, `pip install`, activating) is what this environment already is,
  and the suite does not run itself; a command that needs what a test machine lacks is marked `# needs: WHAT` in the
  docs (on its line, or on a line of its own for the rest of its block) and skipped with that reason.
- The README's test command is what .ci/run runs, verbatim; the architecture page names every layer of the contract.
"""

from __future__ import annotations

import importlib
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from eval import docs

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
TINY = "smollm2-135m"
TEST_MODELS = {TINY, "qwen2.5-coder-0.5b"}  # installed with the test extra
BUDGETS = {"--draft-tokens": "16", "--critique-tokens": "16"}
NEEDS = re.compile(r"#\s*needs:\s*(.+)$")
FENCE = re.compile(r"^```(\w*)(.*)$")


@dataclass
class Command:
    where: str  # page:line
    text: str  # as shown (continuations joined)
    needs: str = ""  # why it cannot run here ("" = it runs)


@dataclass
class Page:
    path: Path
    files: dict[str, str] = field(default_factory=dict)  # title -> content
    commands: list[Command] = field(default_factory=list)


def read_page(path: Path) -> Page:
    page = Page(path)
    lines = path.read_text(encoding="utf-8").split("\n")
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        lang, info, start = fence[1], fence[2], i + 1
        end = next(j for j in range(start, len(lines)) if lines[j].startswith("```"))
        body = lines[start:end]
        if title := re.search(r'title="([^"]+)"', info):
            page.files[title[1]] = "\n".join(body) + "\n"
        if lang == "bash":
            page.commands += _commands(path, start, body)
        i = end + 1
    return page


def _commands(path: Path, start: int, body: list[str]) -> list[Command]:
    found, needs, text, first = [], "", "", 0
    for n, line in enumerate(body, start=start + 1):
        if not text and line.lstrip().startswith("#"):
            if m := NEEDS.search(line):
                needs = m[1].strip()  # for the rest of the block
            continue
        first = first or n
        if line.endswith("\\"):
            text += line[:-1] + " "
            continue
        text += line
        if text.strip():
            m = NEEDS.search(text)
            where = f"{path.relative_to(ROOT)}:{first}"
            found.append(Command(where, text.strip(), needs or (m[1].strip() if m else "")))
        text, first = "", 0
    return found


PAGES_READ = [read_page(p) for p in PAGES]
ALL = [c for p in PAGES_READ for c in p.commands]


# -- scaling a command down ---------------------------------------------------------------------------------


def _set(argv: list[str], flag: str, value: str) -> list[str]:
    if flag in argv:
        argv = list(argv)
        argv[argv.index(flag) + 1] = value
        return argv
    return [*argv, flag, value]


def scaled(module: str, argv: list[str]) -> list[str]:
    if module in ("eval.agentic", "eval.bench"):
        argv = _set(argv, "--model", TINY)
        for flag, value in BUDGETS.items():
            argv = _set(argv, flag, value)
    if module == "eval.agentic":
        argv = _set(argv, "--limit", "2")
    if module == "eval.bench":  # one question: its per-option scoring alone evaluates each prompt five times
        argv = _set(argv, "--questions", "1")
    return argv


def scaled_plan(text: str) -> str:
    """A grid or leaderboard as the page shows it, on the tiny model and 2 questions with short budgets (its
    top-level keys are rewritten at the top, where TOML wants them)."""
    plan = tomllib.loads(text)
    if "graphs" not in plan and "models" not in plan:
        return text  # not a plan
    top = {"limit": "2"}
    if "graphs" in plan:  # a grid: every cell on the tiny model
        top["models"] = f'["{TINY}"]'
    elif all(isinstance(m, str) for m in plan["models"]):  # a leaderboard: distinct installed models
        kept = dict.fromkeys(m if m in TEST_MODELS else TINY for m in plan["models"])
        top["models"] = "[" + ", ".join(f'"{m}"' for m in kept) + "]"
    options = plan.get("options", {}) | {k.removeprefix("--").replace("-", "_"): int(v) for k, v in BUDGETS.items()}
    top["options"] = "{" + ", ".join(f"{k} = {v!r}" for k, v in options.items()) + "}"
    rest = [line for line in text.split("\n") if not re.match(rf"^({'|'.join(top)})\s*=", line)]
    return "\n".join([f"{k} = {v}" for k, v in top.items()] + rest)


def run_program(module: str, argv: list[str]) -> int:
    program = importlib.import_module(module)
    if not hasattr(program, "main"):
        program = importlib.import_module(f"{module}.__main__")
    try:
        return program.main(argv) or 0
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 1


def run_command(command: Command) -> None:
    """Each `&&` step in turn: installing and the suite are skipped (see the module's docstring), programs run."""
    tokens = shlex.split(command.text, comments=True)
    steps, step = [], []
    for t in [*tokens, "&&"]:
        if t == "&&":
            steps.append(step)
            step = []
        else:
            step.append(t)
    for step in steps:
        while step and re.fullmatch(r"[A-Z_]+=.*", step[0]):
            step = step[1:]  # VAR=value before a program: nothing the in-process run needs
        if not step or step[0] in (".", "source") or "pip" in Path(step[0]).name or step[1:3] == ["-m", "venv"]:
            continue
        if not re.fullmatch(r"(\.venv/bin/)?python3?", step[0]) or step[1] != "-m":
            pytest.fail(f"{command.where}: cannot run {step[0]!r}: run a python -m program, or mark it # needs: …")
        module, argv = step[2], step[3:]
        if module == "pytest":
            continue  # the suite itself: .ci/run runs it
        code = run_program(module, scaled(module, argv))
        assert code == 0, f"{command.where}: exit status {code}: {command.text}\nscaled: {scaled(module, argv)}"


# -- the tests ----------------------------------------------------------------------------------------------


def test_reference_pages_are_generated_from_the_code_as_it_is():
    stale = docs.stale()
    assert not stale, f"stale reference pages {[str(p) for p in stale]}: run python -m eval.docs"


@pytest.mark.parametrize("page", [p for p in PAGES_READ if any(not c.needs for c in p.commands)],
                         ids=lambda p: str(p.path.relative_to(ROOT)))  # fmt: skip
def test_every_command_on_the_page_runs(page: Page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, content in page.files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(scaled_plan(content) if name.endswith(".toml") else content, encoding="utf-8")
    for command in page.commands:
        if not command.needs:
            run_command(command)


@pytest.mark.parametrize("command", [c for c in ALL if c.needs], ids=lambda c: c.where)
def test_marked_commands_say_what_they_need(command: Command):
    pytest.skip(f"{command.where} needs {command.needs}")


def test_the_readme_test_command_is_what_ci_runs():
    readme = read_page(ROOT / "README.md")
    (test_command,) = [c.text for c in readme.commands if c.text.endswith("-m pytest")]
    assert test_command in (ROOT / ".ci/run").read_text(encoding="utf-8").split("\n")


def test_the_architecture_page_names_every_layer():
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    page = (ROOT / "docs/architecture.md").read_text(encoding="utf-8")
    named = {
        m.strip()
        for c in contracts["contracts"]
        if not c.get("containers")  # a package's inner layers are named by the package
        for layer in c["layers"]
        for m in layer.split("|")
    }
    assert not (missing := sorted(m for m in named if f"`{m}`" not in page)), f"docs/architecture.md lacks {missing}"


def test_marks_and_scaling():
    """The parsing and scaling the tests above rely on, on a page written for it."""
    page = Page(Path("x.md"), commands=_commands(ROOT / "x.md", 0, [
        "python -m eval.agentic --graph cot \\", "    --limit 0   # all of them", "# needs: a GPU",
        "python -m eval.agentic --n-gpu-layers -1",
    ]))  # fmt: skip
    assert [(c.text, c.needs) for c in page.commands] == [
        ("python -m eval.agentic --graph cot      --limit 0   # all of them", ""),
        ("python -m eval.agentic --n-gpu-layers -1", "a GPU"),
    ]
    assert scaled("eval.agentic", ["--graph", "cot", "--limit", "0"]) == [
        "--graph", "cot", "--limit", "2", "--model", TINY, "--draft-tokens", "16", "--critique-tokens", "16",
    ]  # fmt: skip
    board = tomllib.loads(scaled_plan('models = ["a.gguf", "smollm2-135m", "qwen2.5-coder-0.5b"]\nlimit = 28\n'))
    assert board["models"] == [TINY, "qwen2.5-coder-0.5b"] and board["limit"] == 2
    grid = tomllib.loads(scaled_plan('graphs = ["single"]\noptions = {rounds = 2}\n'))
    assert grid["models"] == [TINY] and grid["options"] == {"rounds": 2, "draft_tokens": 16, "critique_tokens": 16}
