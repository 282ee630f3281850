"""A reasoning model's thinking, kept apart from its answer: only the answer is ever parsed for a letter."""

from __future__ import annotations

import re
from dataclasses import dataclass

# (open, close) tags of the thinking blocks reasoning models write: DeepSeek-R1 and Qwen3 (<think>), Claude-style
# prompts (<thinking>), Kimi (◁think▷), Magistral ([THINK]), Seed-OSS (<seed:think>), Sky-T1/OpenThoughts
# (<|begin_of_thought|>), and plain <reasoning> blocks.
TAGS = (
    ("<think>", "</think>"),
    ("<thinking>", "</thinking>"),
    ("<reasoning>", "</reasoning>"),
    ("<seed:think>", "</seed:think>"),
    ("◁think▷", "◁/think▷"),
    ("[THINK]", "[/THINK]"),
    ("<|begin_of_thought|>", "<|end_of_thought|>"),
)
_OPEN = re.compile("|".join(re.escape(o) for o, _ in TAGS), re.IGNORECASE)
_CLOSE = re.compile("|".join(re.escape(c) for _, c in TAGS), re.IGNORECASE)
_BLOCK = re.compile(
    "|".join(rf"{re.escape(o)}(?P<b{i}>.*?){re.escape(c)}" for i, (o, c) in enumerate(TAGS)),
    re.IGNORECASE | re.DOTALL,
)
# Answer wrappers some of them write around the final answer (OpenThoughts' solution block).
_SOLUTION = re.compile(r"<\|(?:begin|end)_of_solution\|>")


@dataclass(frozen=True)
class Reasoned:
    answer: str  # the text outside any thinking block: the only part an answer is read from
    reasoning: str  # the thinking, blocks joined
    finished: bool  # False when a thinking block was still open where the text ends (cut off mid-thought)


def opens_block(prompt: str) -> str | None:
    """The open tag a rendered prompt ends with (a chat template that starts the reply in a thinking block), or
    None."""
    tag = unclosed(prompt)
    return tag if tag is not None and prompt.rstrip().endswith(tag) else None


def unclosed(text: str) -> str | None:
    """The open tag of a thinking block still open where `text` ends, or None."""
    last_open = max((m for m in _OPEN.finditer(text)), key=lambda m: m.start(), default=None)
    return None if last_open is None or _CLOSE.search(text, last_open.end()) else last_open.group(0)


def close_tag(open_tag: str) -> str:
    return next(c for o, c in TAGS if o.lower() == open_tag.lower())


def split_reasoning(text: str, *, opened: bool = False) -> Reasoned:
    """Split a reply into its answer and its thinking.

    Closed blocks are thinking wherever they stand. A close tag without its open tag ends thinking that started
    before the reply (the chat template opened the block, as DeepSeek-R1's distills do): everything before it is
    thinking. An open tag never closed is unfinished thinking to the end of the text. `opened`: the prompt ended
    inside a block, so the reply starts in thinking even when it is cut off before any tag.
    """
    reasoning = [next(g for g in m.groups() if g is not None) for m in _BLOCK.finditer(text)]
    rest = _BLOCK.sub("\n", text)
    finished = True
    if (stray := max(_CLOSE.finditer(rest), key=lambda m: m.start(), default=None)) is not None:
        reasoning.insert(0, rest[: stray.start()])
        rest = rest[stray.end() :]
    elif opened and not reasoning:
        reasoning, rest, finished = [rest], "", False
    if (unclosed := _OPEN.search(rest)) is not None:
        reasoning.append(rest[unclosed.end() :])
        rest, finished = rest[: unclosed.start()], False
    return Reasoned(
        answer=_SOLUTION.sub("", rest).strip(),
        reasoning="\n\n".join(r.strip() for r in reasoning if r.strip()),
        finished=finished,
    )
