"""python -m eval: the programs, one line each.

Each program's flags: python -m PROGRAM --help. What a run can choose from: python -m eval.agentic --graph list,
--model list, --format list.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import pkgutil
import re
import sys
from pathlib import Path

from eval.core.flags import HelpFormatter

PACKAGES = ("eval", "retrieval")  # where the programs are


def _runs_as_main(tree: ast.Module) -> bool:
    """Whether a module has an `if __name__ == "__main__":` block."""
    return any(
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Compare)
        and isinstance(node.test.left, ast.Name)
        and node.test.left.id == "__name__"
        for node in tree.body
    )


def _what(docstring: str) -> str:
    """What a program does, from its docstring's opening "python -m NAME ARGS: what it does. More.": its first
    sentence."""
    first = " ".join(docstring.split("\n\n")[0].split())
    if first.startswith("python -m ") and ": " in first:
        first = first.split(": ", 1)[1]
    return re.split(r"(?<=[^.])\.(?:\s|$)", first)[0].rstrip(".")


def programs() -> dict[str, str]:
    """Every `python -m` program of PACKAGES (a module with a __main__ block, or a package with a __main__.py) ->
    what it does. Read from the source, so listing them imports none (llama.cpp, chromadb load slowly)."""
    found = {}
    for package in PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        root = Path(next(iter(spec.submodule_search_locations)))
        for module in pkgutil.iter_modules([str(root)]):
            if module.name.startswith("_"):
                continue
            source = root / module.name / "__main__.py" if module.ispkg else root / f"{module.name}.py"
            if not source.is_file():
                continue
            tree = ast.parse(source.read_text(encoding="utf-8"))
            if module.ispkg or _runs_as_main(tree):
                found[f"{package}.{module.name}"] = _what(ast.get_docstring(tree) or "")
    return dict(sorted(found.items()))


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="python -m eval", description=__doc__, formatter_class=HelpFormatter).parse_args(argv)
    listed = programs()
    width = max(map(len, listed))
    print("Programs (python -m PROGRAM --help for its flags):\n")
    for name, what in listed.items():
        print(f"  {name:<{width}}  {what}")
    print("\nWhat a run can choose from: python -m eval.agentic --graph list, --model list, --format list")
    return 0


if __name__ == "__main__":
    sys.exit(main())
