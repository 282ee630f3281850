"""The ablation's table as Markdown, CSV and JSON (DIR/ablation.md, .csv, .json), from eval.results.ablation's typed
rows; the HTML page (python -m eval.html_report DIR) draws the same rows."""

from __future__ import annotations

import csv
import json
import math
import textwrap
from collections.abc import Callable
from pathlib import Path

from eval.core.schema import BUDGET_WARNING, Comparison, GraphSummary
from eval.plans.grid import MATCHED_CONTROL
from eval.render.fmt import accuracy_text, diff_text, finding, p_value, pct
from eval.results.ablation import ABLATION, MATCHED_BASES, Ablation, Row
from eval.results.analysis import key_text

COLUMNS = [
    "model", "cell", "graph", "variant", "language", "persona", "retrieval", "samples", "circular", "consistent",
    "critic", "multi_n", "multi_exact", "multi_partial", "status",
    "n", "correct", "accuracy", "ci_low", "ci_high", "unparsed", "truncated", "at_budget", "errors",
    "calls_per_q", "prompt_tokens_per_q", "evaluated_tokens_per_q", "completion_tokens_per_q",
    "reasoning_tokens_per_q", "tokens_per_q",
    "seconds_per_q",
    "baseline", "diff", "diff_ci_low", "diff_ci_high", "mcnemar_p", "holm_p", "right_to_wrong", "wrong_to_right",
    *(f"matched_{b}_{k}" for b in MATCHED_BASES for k in (
        "cell", "found", "accuracy", "n", "diff", "diff_ci_low", "diff_ci_high", "mcnemar_p", "holm_p",
        "right_to_wrong", "wrong_to_right",
    )),
    "first_to_final_n", "first_to_final_unparsed", "first_to_final_cut", "first_to_final_changed",
    "first_to_final_right_to_wrong", "first_to_final_wrong_to_right", "letter_chi2", "letter_p", "letter_note",
    "run_dir",
]  # fmt: skip


def _paired(c: Comparison | None, prefix: str = "") -> dict:
    if c is None:
        return {}
    return {
        prefix + "n": c.n,
        prefix + "diff": c.difference,
        prefix + "diff_ci_low": c.diff_ci_low,
        prefix + "diff_ci_high": c.diff_ci_high,
        prefix + "mcnemar_p": c.mcnemar_p,
        prefix + "holm_p": c.holm_p,
        prefix + "right_to_wrong": c.right_to_wrong,
        prefix + "wrong_to_right": c.wrong_to_right,
    }


def flat(row: Row) -> dict:
    """A row as the CSV and JSON have it: COLUMNS, the absent ones left out."""
    found = row.model_dump(include={"model", "cell", "graph", "variant", "language", "persona", "retrieval",
                                    "samples", "circular", "critic", "status", "run_dir"})  # fmt: skip
    for basis, m in row.matched.items():
        found[f"matched_{basis}_cell"] = m.cell
        if m.comparison:
            found |= {f"matched_{basis}_found": True, f"matched_{basis}_accuracy": m.accuracy}
            found |= _paired(m.comparison, f"matched_{basis}_")
    if not (s := row.summary):
        return found
    found |= {
        "consistent": row.consistent,
        "n": s.overall.total,
        "correct": s.overall.correct,
        "accuracy": s.overall.accuracy,
        "ci_low": s.overall.ci_low,
        "ci_high": s.overall.ci_high,
        "unparsed": s.unparsed,
        "truncated": s.truncated,
        "at_budget": row.at_budget,
        "errors": s.errors,
        "calls_per_q": s.calls_per_q,
        "prompt_tokens_per_q": s.prompt_tokens_per_q,
        "evaluated_tokens_per_q": s.prompt_tokens_evaluated_per_q,
        "completion_tokens_per_q": s.completion_tokens_per_q,
        "reasoning_tokens_per_q": s.reasoning_tokens_per_q,
        "tokens_per_q": s.prompt_tokens_evaluated_per_q + s.completion_tokens_per_q,
        "seconds_per_q": s.seconds_per_q,
        "letter_chi2": row.letter_chi2,
        "letter_p": row.letter_p,
        "letter_note": row.letter_note,
    }
    if multi := row.multi:
        found |= {"multi_n": multi.exact.total, "multi_exact": multi.exact.accuracy, "multi_partial": multi.partial}
    if row.versus:  # n stays the cell's own: the comparison's may be fewer, the questions both answered
        found |= {"baseline": row.baseline} | {k: v for k, v in _paired(row.versus).items() if k != "n"}
    if f := s.draft_to_final:
        found |= {f"first_to_final_{k}": v for k, v in f.model_dump(exclude={"first"}).items()}
    return found


def first_to_final_cell(row: Row) -> str:
    if not row.summary or not (f := row.summary.draft_to_final):
        return "–"
    return f"{f.changed} ({f.right_to_wrong} / {f.wrong_to_right}); {f.unparsed}" + (
        f" ({f.cut} cut at the budget)" if f.cut else ""
    )


def matched_cell(row: Row, basis: str) -> str:
    m = row.matched.get(basis)
    if not m or not m.cell:
        return "–"
    return f"{m.cell}: {pct(m.accuracy)}" if m.comparison else f"{m.cell} (not in grid)"


def _holm(c: Comparison | None) -> str:
    return p_value(c.holm_p if c else None)


def render_markdown(ablation: Ablation) -> str:
    g = ablation.grid
    base = ablation.baseline.label
    header = [
        "model", "cell", "accuracy [95% CI] (correct/n)", f"Δ vs {base}, points [95% bootstrap CI]", "McNemar p",
        "Holm p",
        "flips r→w / w→r", "sc at equal calls", "Δ vs it [95% CI]", "Holm p (calls)", "sc at equal generated tokens",
        "Δ vs it [95% CI]", "Holm p (tokens)", "unparsed", "truncated", "errors", "at the token budget",
        "first → final: changed (r→w / w→r); first unparsed", "letters vs uniform, χ² p", "calls/q", "tok/q", "s/q",
    ]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in ablation.rows:
        if not (s := r.summary):
            lines.append(f"| {r.model} | {r.cell} | {r.status} |" + " – |" * (len(header) - 3))
            continue
        v = r.versus
        cells_ = [
            r.model, r.cell if v else f"**{r.cell}**", accuracy_text(s.overall),
            diff_text(v) if v else "baseline", p_value(v.mcnemar_p if v else None), _holm(v),
            f"{v.right_to_wrong} / {v.wrong_to_right}" if v else "–",
            *(x for b in MATCHED_BASES for x in (
                matched_cell(r, b), diff_text(r.matched[b].comparison),
                _holm(r.matched[b].comparison),
            )),
            s.unparsed, s.truncated, s.errors, r.at_budget, first_to_final_cell(r), r.letters,
            f"{s.calls_per_q:.1f}", f"{s.prompt_tokens_evaluated_per_q + s.completion_tokens_per_q:.0f}",
            f"{s.seconds_per_q:.2f}",
        ]  # fmt: skip
        lines.append("| " + " | ".join(str(c) for c in cells_) + " |")
    n = len(ablation.questions)
    scope = (
        f"{n} questions"
        + (f", specialty {', '.join(g.specialty)}" if g.specialty else "")
        + (f", level {', '.join(g.level)}" if g.level else "")
    )
    parts = [
        f"# Ablation: {', '.join(g.graphs)} × variants {', '.join(g.variants) or 'default'} × retrieval "
        f"{'/'.join('on' if r else 'off' for r in g.retrieval)} × {len(g.models)} model(s)",
        f"{scope}, the same for every cell; seed {g.seed}; "
        f"{MATCHED_CONTROL}: k ∈ {{{', '.join(map(str, g.samples))}}} at temperature {g.sample_temperature}.",
        key_text(ablation.key),
        "\n".join(lines),
        "Accuracy with Wilson 95% intervals; unparsed and truncated answers (no option named: the output was cut at "
        "its token budget, or its thinking never ended) count as wrong, errors are left out. At the token budget: "
        f"per node, its outputs that stopped at their budget (⚠: more than {100 * BUDGET_WARNING:.0f}%, raise that "
        f"node's --*-tokens). Δ: paired "
        f"difference in accuracy points against {base} of the same model, with a paired percentile bootstrap 95% "
        f"interval ({g.bootstrap_resamples} resamples of the questions, seed {g.bootstrap_seed}); McNemar: exact "
        "two-sided test on the flips; Holm: adjusted for every comparison against the baseline in this grid (and, "
        "separately, for each kind of compute-matched comparison). Compute-matched sc: self-consistency (same "
        "model, retrieval and prompt variant) with k = the cell's model calls per question, and with k = the cell's "
        "generated tokens per question over sc's generated tokens per sample (measured on the grid's sc cells); "
        "Δ = cell minus it. "
        "First → final: of the chain's first proposals (reflect's draft, sc's first sample) that named an option, "
        "how many the final answer changed, and of those right→wrong / wrong→right; then the first proposals that "
        "named no option, counted in neither (and of those, the ones cut at their token budget). Letters: χ² test "
        "of the answered letters against a uniform guess over "
        "the options shown (a small p: some positions are favoured, or the key is unbalanced and the cell is "
        "accurate); no p where a letter's expected count is below 5, where the option shuffle of "
        "`python -m eval.position_bias` measures position bias instead. "
        "tok/q: prompt tokens actually evaluated plus generated tokens, per question.",
    ]
    if any(r.circular for r in ablation.rows):
        parts.append(
            "Circular cells ask every question under every rotation of its options (OpenCompass's CircularEval): "
            "their accuracy is circular accuracy (right under every rotation), Δ is paired with the baseline's "
            "standard accuracy on the same questions, their costs sum the rotations, and `consistent` in the CSV is "
            "the share of questions whose chosen option was the same under every rotation."
        )
    parts += [f"Note: {note}" for note in ablation.notes]
    return "\n\n".join(parts) + "\n"


def render_terminal(ablation: Ablation, width: int = 100) -> str:
    """The table as a terminal shows it: the columns that matter most, as many as fit `width` (the least important
    dropped first), then each cell's comparison with the baseline in one sentence. ablation.md and ablation.csv keep
    every column."""
    base = ablation.baseline.label
    several = len({r.model for r in ablation.rows}) > 1
    named: list[tuple[str, Callable[[Row], str]]] = [("model", lambda r: r.model)] if several else []
    named.append(("cell", lambda r: r.cell))
    # After the names, the most important first; a row without results shows its status instead.
    columns: list[tuple[str, Callable[[Row, GraphSummary], str]]] = [
        ("accuracy (correct/n)", lambda r, s: f"{pct(s.overall.accuracy)} ({s.overall.correct}/{s.overall.total})"),
        (f"Δ vs {base} [95% CI]", lambda r, s: diff_text(r.versus) if r.versus else "baseline"),
        ("Holm p", lambda r, s: _holm(r.versus)),
        *((f"Δ vs sc at equal {b}", lambda r, s, b=b: diff_text(r.matched[b].comparison)) for b in MATCHED_BASES),
        ("unparsed+cut", lambda r, s: str(s.unparsed + s.truncated)),
        ("calls/q", lambda r, s: f"{s.calls_per_q:.1f}"),
        ("s/q", lambda r, s: f"{s.seconds_per_q:.2f}"),
    ]
    rows = [[h for h, _ in named] + [h for h, _ in columns]]
    for r in ablation.rows:
        values = [get(r, r.summary) for _, get in columns] if r.summary else [r.status] + [""] * (len(columns) - 1)
        rows.append([get(r) for _, get in named] + values)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    keep = len(widths)
    while keep > len(named) + 1 and sum(widths[:keep]) + 2 * (keep - 1) > width:
        keep -= 1
    lines = ["  ".join(c.ljust(w) for c, w in zip(row[:keep], widths, strict=False)).rstrip() for row in rows]
    lines.append("")
    for r in ablation.rows:
        if r.versus:
            lines.append(textwrap.fill((f"{r.model} · " if several else "") + finding(r.versus), width))
    lines += [textwrap.fill(f"Note: {note}", width) for note in ablation.notes]
    if keep < len(widths):
        lines.append(f"({len(widths) - keep} columns left out to fit; ablation.md and ablation.csv have every column)")
    return "\n".join(lines)


def _json_safe(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value


def write_outputs(ablation: Ablation) -> dict[str, Path]:
    out = ablation.out
    paths = {ext: out / f"{ABLATION}.{ext}" for ext in ("md", "csv", "json")}
    paths["md"].write_text(render_markdown(ablation), encoding="utf-8")
    rows = [flat(r) for r in ablation.rows]
    with open(paths["csv"], "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    document = {
        "grid": ablation.grid.model_dump(),
        "baseline": ablation.baseline.label,
        "question_ids": list(ablation.questions),
        "notes": ablation.notes,
        "rows": [{k: _json_safe(r.get(k)) for k in COLUMNS} for r in rows],
    }
    paths["json"].write_text(json.dumps(document, ensure_ascii=False, indent=1), encoding="utf-8")
    return paths
