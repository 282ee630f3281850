"""vote_node: the majority letter over the sampled drafts. No model call, so no trace step."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence


def majority(votes: Sequence[str | None]) -> str | None:
    """The most frequent letter; drafts that named none (None) do not vote; None when no draft named one.

    Ties go to the tied letter drawn first. The drafts are exchangeable (same prompt, independent seeds), so
    given the counts every order of them is equally likely and this picks uniformly at random among the tied
    letters, reproducibly and without another model call. Breaking ties alphabetically would favour A, a
    position bias of our own making; with k=2 and two different letters it is simply the first draft.
    """
    counts = Counter(v for v in votes if v is not None)
    if not counts:
        return None
    top = max(counts.values())
    return next(v for v in votes if v is not None and counts[v] == top)


def tally(votes: Sequence[str | None]) -> dict[str, int]:
    """Votes per letter, most first (ties in first-drawn order), and the unparsed drafts under "unparsed"."""
    counts = Counter(v for v in votes if v is not None)
    order = {v: i for i, v in reversed(list(enumerate(votes)))}
    result = {v: counts[v] for v in sorted(counts, key=lambda v: (-counts[v], order[v]))}
    if unparsed := sum(v is None for v in votes):
        result["unparsed"] = unparsed
    return result


def vote_node(state: dict) -> dict:
    return {"answer": majority(state["votes"]), "answer_method": "regex"}
