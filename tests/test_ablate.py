"""Ablation grids: cells, the results table and its statistics (reference values), and one real tiny grid."""

import csv
import json
import math
import subprocess
from pathlib import Path

import pytest
from conftest import TINY, run_main

from eval.api import RunSpec
from eval.core.flags import parse
from eval.core.schema import Message, Prediction, RunConfig, TraceStep
from eval.core.stats import holm, paired_bootstrap_diff, paired_counts
from eval.core.store import RunStore
from eval.data import BUNDLED, load_questions, select
from eval.plans.grid import Cell, GridError, cells, load_grid
from eval.plans.specs import grid_specs, spec_argv
from eval.render.ablation_table import flat, render_markdown, render_terminal, write_outputs
from eval.results.ablation import analyse
from eval.results.analysis import answer_key, key_text

# -- statistics against reference values -------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "adjusted"),
    [
        ([0.01, 0.02, 0.03, 0.04, 0.05], [0.05, 0.08, 0.09, 0.09, 0.09]),  # R: p.adjust(c(.01,.02,.03,.04,.05), "holm")
        (
            [0.01, 0.04, 0.03, 0.005],
            [0.03, 0.06, 0.06, 0.02],
        ),  # statsmodels multipletests(method="holm"), input order kept
        ([0.5, 0.9], [1.0, 1.0]),  # capped at 1
        ([], []),
    ],
)
def test_holm_matches_reference_values(p, adjusted):
    assert holm(p) == pytest.approx(adjusted)


def test_paired_counts_are_the_flips():
    c = paired_counts([True, True, False, False, True], [True, False, True, False, False])
    assert (c.both_right, c.right_to_wrong, c.wrong_to_right, c.both_wrong, c.n) == (1, 2, 1, 1, 5)
    assert c.difference == pytest.approx(-0.2)


def exact_bootstrap_quantile(n: int, minus: int, plus: int, q: float) -> float:
    """The q-quantile of the exact bootstrap distribution of the mean paired difference.

    Resampling n questions draws (X-, X+, X0) ~ Multinomial(n; minus/n, plus/n, rest/n); the mean is (X+ - X-)/n.
    """
    pm, pp = minus / n, plus / n
    p0 = 1 - pm - pp
    mass: dict[int, float] = {}
    for i in range(n + 1):
        for j in range(n + 1 - i):
            ways = math.comb(n, i) * math.comb(n - i, j)
            mass[j - i] = mass.get(j - i, 0.0) + ways * pm**i * pp**j * p0 ** (n - i - j)
    cumulative = 0.0
    for s in sorted(mass):
        cumulative += mass[s]
        if cumulative >= q:
            return s / n
    return max(mass) / n


def test_paired_bootstrap_matches_the_exact_bootstrap_distribution():
    n, minus, plus = 30, 4, 9
    baseline = [True] * minus + [False] * plus + [True] * 10 + [False] * 7
    other = [False] * minus + [True] * plus + [True] * 10 + [False] * 7
    diff, low, high = paired_bootstrap_diff(baseline, other, resamples=4000, seed=1)
    assert diff == pytest.approx((plus - minus) / n)
    assert low == pytest.approx(exact_bootstrap_quantile(n, minus, plus, 0.025), abs=1 / n + 1e-9)
    assert high == pytest.approx(exact_bootstrap_quantile(n, minus, plus, 0.975), abs=1 / n + 1e-9)
    assert low < diff < high


def test_paired_bootstrap_is_seeded_and_degenerate_cases_are_exact():
    a = [i % 3 == 0 for i in range(60)]
    b = [i % 2 == 0 for i in range(60)]
    assert paired_bootstrap_diff(a, b, seed=7) == paired_bootstrap_diff(a, b, seed=7)
    assert paired_bootstrap_diff(a, a) == (0.0, 0.0, 0.0)  # identical outcomes: no uncertainty in the difference
    assert paired_bootstrap_diff([], []) == (0.0, -1.0, 1.0)
    assert paired_bootstrap_diff([False], [True]) == (1.0, 1.0, 1.0)  # one question: every resample is it
    with pytest.raises(ValueError):
        paired_bootstrap_diff([True], [True, False])


# -- the grid ----------------------------------------------------------------------------------


def write_grid(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "grid.toml"
    path.write_text(text, encoding="utf-8")
    return path


def spec_of(grid, cell: Cell) -> RunSpec:
    """The spec the grid gives `cell` (as run_ablation runs it)."""
    return next(spec for _, c, spec in grid_specs(grid, Path("out")) if c == cell)


def test_cells_cross_graph_variant_retrieval_and_k(tmp_path):
    grid = load_grid(
        write_grid(
            tmp_path,
            'graphs = ["single", "cot", "sc", "reflect+rag"]\nvariants = ["zh", "en"]\n'
            "retrieval = [false, true]\nsamples = [3, 5]\n",
        )
    )
    labels = [c.label for c in cells(grid)]
    assert labels == [
        "single", "single+rag",
        "cot[zh]", "cot[en]", "cot+rag[zh]", "cot+rag[en]",
        "sc[zh,k=3]", "sc[zh,k=5]", "sc[en,k=3]", "sc[en,k=5]",
        "sc+rag[zh,k=3]", "sc+rag[zh,k=5]", "sc+rag[en,k=3]", "sc+rag[en,k=5]",
        "reflect+rag",
    ]  # fmt: skip
    sc = Cell("sc+rag", "en", 3)
    assert sc.slug == "sc+rag_en_k3" and sc.settings(grid) == {
        "prompt_variant": "en",
        "samples": 3,
        "sample_temperature": 0.7,
    }
    assert Cell("single").settings(grid) == {}


def test_circular_and_critic_cells(tmp_path):
    grid = load_grid(
        write_grid(
            tmp_path, 'graphs = ["single", "reflect"]\ncircular = [false, true]\ncritics = ["models/big.gguf"]\n'
        )
    )
    labels = [c.label for c in cells(grid)]
    # Only reflect has a critic; every graph is crossed with circular.
    assert labels == [
        "single", "single[circular]",
        "reflect", "reflect[critic=big]", "reflect[circular]", "reflect[circular,critic=big]",
    ]  # fmt: skip
    only_single = load_grid(write_grid(tmp_path, 'graphs = ["single", "reflect"]\ncircular = ["single"]\n'))
    assert [c.label for c in cells(only_single)] == ["single", "single[circular]", "reflect"]
    with pytest.raises(GridError, match="circular names 'singel', which is not in graphs"):
        load_grid(write_grid(tmp_path, 'graphs = ["single"]\ncircular = ["singel"]\n'))
    with pytest.raises(GridError, match=r"vary\.shuffles lists no values"):
        load_grid(write_grid(tmp_path, 'graphs = ["medprompt"]\nvary = {shuffles = []}\n'))
    cell = cells(grid)[-1]
    assert cell.slug == "reflect_circular_critic-big"
    assert cell.settings(grid) == {"circular": True, "critic_model": "models/big.gguf"}
    spec = spec_of(grid, cell)
    assert spec.circular and spec.critic_model == "models/big.gguf"
    with pytest.raises(GridError, match="may not set --circular"):
        grid_specs(load_grid(write_grid(tmp_path, 'graphs = ["single"]\nextra_args = ["--circular"]\n')), tmp_path)


def test_vary_crosses_strategy_options_for_the_strategies_that_have_them(tmp_path):
    grid = load_grid(
        write_grid(
            tmp_path,
            'graphs = ["single", "medprompt"]\nvary = {knn_examples = [0, 5], example_reasoning = ["self-cot", '
            '"answer-only"]}\noptions = {pool = "pool.jsonl"}\n',
        )
    )
    labels = [c.label for c in cells(grid)]
    assert labels == [
        "single",
        "medprompt[zh,knn_examples=0,example_reasoning=self-cot]",
        "medprompt[zh,knn_examples=0,example_reasoning=answer-only]",
        "medprompt[zh,knn_examples=5,example_reasoning=self-cot]",
        "medprompt[zh,knn_examples=5,example_reasoning=answer-only]",
    ]
    cell = cells(grid)[-1]
    assert cell.slug == "medprompt_zh_knn_examples-5_example_reasoning-answer-only"
    assert cell.settings(grid) == {"prompt_variant": "zh", "knn_examples": 5, "example_reasoning": "answer-only"}
    spec = spec_of(grid, cell)
    assert (spec.knn_examples, spec.example_reasoning, spec.pool) == (5, "answer-only", "pool.jsonl")
    for text, message in [
        ('graphs = ["sc"]\nvary = {samples = [1]}', "vary.samples is not a strategy option the grid may vary"),
        ('graphs = ["sc"]\nvary = {nope = [1]}', "vary.nope is not a strategy option"),
        ('graphs = ["medprompt"]\nvary = {shuffles = [0]}', "vary.shuffles = 0: Input should be greater than"),
        ('graphs = ["reflect"]\nvary = {rounds = [1, 2]}\noptions = {rounds = 2}', "vary.rounds is set by"),
    ]:
        with pytest.raises(GridError, match=message):
            cells(load_grid(write_grid(tmp_path, text)))


def test_a_grid_key_no_graph_uses_and_a_model_not_installed_are_refused_before_any_cell(tmp_path):
    for text, message in [
        ('graphs = ["single", "reflect"]\nvary = {shuffles = [1, 5]}', r"vary.shuffles: no graph .* medprompt"),
        ('graphs = ["single", "cot"]\ncritics = ["smollm2-135m"]', r"critics: no graph of this grid has a critic"),
    ]:
        with pytest.raises(GridError, match=message):
            cells(load_grid(write_grid(tmp_path, text)))
    grid = write_grid(tmp_path, f'models = ["{tmp_path / "gone.gguf"}"]\ngraphs = ["single", "cot"]\n')
    result = run_main("eval.ablate", grid, "--out", tmp_path / "ab")
    assert result.returncode == 2 and "gone.gguf" in result.stderr and "install it or remove it" in result.stderr
    assert [p.name for p in (tmp_path / "ab").iterdir()] == ["grid.toml"]  # refused before the first cell


def test_a_circular_cell_scores_right_under_every_rotation(tmp_path):
    """single[circular]: right under every rotation on questions 0-5, right in the original order only on 6-9
    (position A after that), wrong on the rest; compared, paired, with single's standard accuracy (right on 0-9)."""
    from eval.core.shuffle import rotations

    out = make_ablation(tmp_path)
    asked = [r for q in QUESTIONS for r in rotations(q)]
    config = RunConfig(
        graphs=["single"], model="m.gguf", model_sha256="", data=str(BUNDLED), data_sha256="",
        question_ids=[r.id for r in asked], circular=True,
    )  # fmt: skip
    store = RunStore(out / "m" / "single_circular", config)
    for i, q in enumerate(QUESTIONS):
        for r, turned in enumerate(rotations(q)):
            right = i < 6 or (i < 10 and r == 0)
            answer = turned.answer if right else next(x for x in turned.letters if x != turned.answer)
            store.append(
                Prediction(
                    question_id=turned.id, graph="single", answer=answer, gold=turned.answer, correct=right,
                    parse_status="ok", answer_method="next_token", model_calls=1, prompt_tokens=100,
                )
            )  # fmt: skip
    store.close()
    grid = load_grid(write_grid(tmp_path, SYNTHETIC + "circular = [false, true]\n"))
    ablation = analyse(grid, out)
    rows = {r.cell: flat(r) for r in ablation.rows}
    circular = rows["single[circular]"]
    assert (circular["n"], circular["correct"], circular["consistent"]) == (20, 6, 0.3)
    assert (circular["right_to_wrong"], circular["wrong_to_right"]) == (4, 0)
    assert circular["diff"] == pytest.approx(-0.2)
    # Costs sum the rotations: five-option questions, one call each.
    assert circular["calls_per_q"] == pytest.approx(sum(len(q.options) for q in QUESTIONS) / 20)
    assert "Circular cells ask every question under every rotation" in render_markdown(ablation)
    # Its compute-matched control is circular too, matched per question asked: one call per rotation, so k=1.
    assert circular["matched_calls_cell"] == "sc[zh,k=1,circular]"


def test_grid_options_reach_every_cell_as_flags(tmp_path):
    grid = load_grid(
        write_grid(tmp_path, 'graphs = ["reflect", "single"]\noptions = {rounds = 2, draft_tokens = 64}\n')
    )
    spec = spec_of(grid, Cell("reflect"))
    assert (spec.rounds, spec.draft_tokens) == (2, 64)
    argv = spec_argv(spec)  # as --dry-run shows it: flags that give the same spec back
    assert argv[argv.index("--rounds") + 1] == "2" and argv[argv.index("--draft-tokens") + 1] == "64"
    assert parse(RunSpec, argv, prog="test", error=ValueError) == spec.model_copy(update={"out": None})


def test_extra_args_may_not_set_what_any_cell_sets(tmp_path):
    """The refused flags are what the grid sets for its cells (a cell's prompt variant, a varied option), named with
    the grid's file; flags it does not set pass into every cell's spec, parsed once."""
    path = write_grid(tmp_path, 'graphs = ["cot"]\nvariants = ["zh", "en"]\nextra_args = ["--prompt-variant", "en"]\n')
    with pytest.raises(GridError) as refused:
        grid_specs(load_grid(path), tmp_path)
    assert str(refused.value) == f"{path}: extra_args may not set --prompt-variant; the grid sets it (use its own key)"
    path = write_grid(tmp_path, 'graphs = ["reflect"]\nvary = {rounds = [1, 2]}\nextra_args = ["--rounds=3"]\n')
    with pytest.raises(GridError, match=r"grid.toml: extra_args may not set --rounds"):
        grid_specs(load_grid(path), tmp_path)
    path = write_grid(tmp_path, 'graphs = ["reflect"]\nextra_args = ["--n-ctx", "1024", "--rounds", "3"]\n')
    (_, _, spec), *_ = grid_specs(load_grid(path), tmp_path)
    assert (spec.n_ctx, spec.rounds, spec.graph, spec.baseline) == (1024, 3, "reflect", "none")
    with pytest.raises(GridError, match=r"grid.toml: extra_args: argument --n-ctx: invalid int value: 'x'"):
        grid_specs(load_grid(write_grid(tmp_path, 'graphs = ["single"]\nextra_args = ["--n-ctx", "x"]\n')), tmp_path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('graphs = ["nope"]', "unknown graph 'nope'"),
        ('graphs = ["cot"]\nvariants = ["fr"]', "no prompt variant 'fr'"),
        ('graphs = ["reflect"]\noptions = {nope = 1}', "options.nope is not a strategy option the grid may set"),
        ('graphs = ["sc"]\noptions = {samples = 3}', "options.samples is not a strategy option the grid may set"),
        ('graphs = ["cot"]\nextra_args = ["--limit", "3"]', "may not set --limit"),
        ('graphs = ["cot"]\nextra_args = ["--out=x"]', "may not set --out"),
        ('graphs = ["cot"]\nlimt = 3', "limt"),
        ("graphs = [", "not valid TOML"),
    ],
)
def test_grid_errors_are_one_clear_line(tmp_path, text, message):
    with pytest.raises(GridError, match=message):
        grid_specs(load_grid(write_grid(tmp_path, text)), tmp_path)


def test_unknown_baseline_lists_the_cells(tmp_path):
    result = run_main("eval.ablate", write_grid(tmp_path, 'graphs = ["cot", "sc"]\nbaseline = "single"\n'), "--dry-run")
    assert (
        result.returncode == 2
        and "baseline 'single' is not a cell of this grid; choose one of: cot[zh], sc[zh,k=5]" in result.stderr
    )
    assert "Traceback" not in result.stderr


# -- the table from synthetic cells (exact expected numbers) ------------------------------------

QUESTIONS = select(load_questions(BUNDLED), limit=20)
SYNTHETIC = """models = ["m.gguf"]
graphs = ["single", "cot", "reflect", "sc"]
samples = [3]
limit = 20
"""


def write_cell(
    out: Path,
    graph: str,
    correct: list[bool],
    calls: int,
    drafts: dict[int, str | None] | None = None,
    tokens: int = 10,
    cut: tuple[int, ...] = (),
    thinking: int = 0,
    **settings,
) -> None:
    """drafts: question index -> the first proposal ("right", "wrong", "other wrong" or None: named no option);
    the others' first proposal is their final answer. tokens: generated tokens per model call, `thinking` of them
    a reasoning model's. cut: the questions whose first output stopped at its token budget (the others' stopped by
    themselves): a draft that named no option, or in a graph without drafts the answer itself (truncated, wrong)."""
    config = RunConfig(
        graphs=[graph], model="m.gguf", model_sha256="", data=str(BUNDLED), data_sha256="",
        question_ids=[q.id for q in QUESTIONS], **settings,
    )  # fmt: skip
    store = RunStore(out, config)
    drafts = drafts or {}
    for i, (q, ok) in enumerate(zip(QUESTIONS, correct, strict=True)):
        wrong = [letter for letter in q.letters if letter != q.answer]
        truncated = i in cut and graph not in ("reflect", "sc")
        answer = None if truncated else q.answer if ok else wrong[0]
        first = (
            {"right": q.answer, "wrong": wrong[0], "other wrong": wrong[1], None: None}[drafts[i]]
            if i in drafts
            else answer
        )
        node = {"single": "answer", "cot": "reason", "reflect": "draft", "sc": "sample"}[graph]
        trace = [
            TraceStep(
                node=node,
                messages=[Message(role="user", content=q.stem)],
                output=f"答案：{answer}",
                prompt_tokens=100,
                completion_tokens=tokens,
                reasoning_tokens=thinking,
                seconds=0.5,
                finish_reason="length" if i in cut and call == 0 else "stop",
            )
            for call in range(calls)
        ]
        store.append(
            Prediction(
                question_id=q.id,
                graph=graph,
                answer=answer,
                gold=q.answer,
                correct=ok,
                parse_status="truncated" if truncated else "ok",
                answer_method="none" if truncated else "regex",
                draft_answer=first if graph in ("reflect", "sc") else None,
                draft_cut=i in cut and not truncated,
                trace=trace,
                prompt_tokens=100 * calls,
                completion_tokens=tokens * calls,
                reasoning_tokens=thinking * calls,
                seconds=0.5 * calls,
                model_calls=calls,
            )
        )
    store.close()


def make_ablation(root: Path) -> Path:
    """An ablation directory with four finished cells whose outcomes are chosen, not generated."""
    out = root / "ablation"
    cells_dir = out / "m"
    write_cell(cells_dir / "single", "single", [i < 10 for i in range(20)], 1)
    # cot thinks (4 of its 10 tokens); its outputs on questions 1 and 2 were cut at the budget before they named an
    # option.
    write_cell(cells_dir / "cot_zh", "cot", [i >= 5 for i in range(20)], 1, prompt_variant="zh", cut=(1, 2), thinking=4)
    # reflect's drafts: two name no option (the first cut at its budget), two wrong ones it corrects, one right one
    # it spoils, one wrong it swaps.
    drafts = {0: None, 1: None, 2: "wrong", 3: "wrong", 15: "right", 16: "other wrong"}
    # reflect generates 21 tokens per question (7 a call), sc 10 a sample: sc with k=2 matches it in tokens.
    write_cell(cells_dir / "reflect", "reflect", [i < 14 for i in range(20)], 3, drafts, tokens=7, cut=(0,))
    write_cell(cells_dir / "sc_zh_k3", "sc", [i % 2 == 0 for i in range(20)], 3, prompt_variant="zh", samples=3)
    grid = load_grid(write_grid(root, SYNTHETIC))
    write_outputs(analyse(grid, out))
    return out


def test_table_from_known_outcomes(tmp_path):
    out = make_ablation(tmp_path)
    ablation = analyse(load_grid(tmp_path / "grid.toml"), out)
    rows = {r.cell: flat(r) for r in ablation.rows}
    assert list(rows) == ["single", "cot[zh]", "reflect", "sc[zh,k=3]"]
    assert rows["single"].get("diff") is None and rows["single"]["accuracy"] == 0.5

    cot = rows["cot[zh]"]
    assert (cot["n"], cot["right_to_wrong"], cot["wrong_to_right"]) == (20, 5, 10)
    assert cot["diff"] == pytest.approx(0.25) and cot["diff_ci_low"] < 0.25 < cot["diff_ci_high"]
    # McNemar (scipy.stats.binomtest(min(b, c), b + c).pvalue): cot 5/10 flips, reflect 0/4, sc 5/5.
    comparisons = ("cot[zh]", "reflect", "sc[zh,k=3]")
    assert [rows[c]["mcnemar_p"] for c in comparisons] == pytest.approx([0.3017578125, 0.125, 1.0])
    # Holm by hand: 0.125 x 3 = 0.375, 0.302 x 2 = 0.604, 1 x 1 = 1.
    assert [rows[c]["holm_p"] for c in comparisons] == pytest.approx([0.603515625, 0.375, 1.0])

    # Compute-matched: reflect makes 3 model calls per question, so its control is sc with k=3.
    reflect = rows["reflect"]
    assert (
        reflect["calls_per_q"] == 3.0
        and reflect["matched_calls_cell"] == "sc[zh,k=3]"
        and reflect["matched_calls_found"]
    )
    assert reflect["matched_calls_accuracy"] == 0.5
    # Against sc (right on even i): 3 right -> wrong (14, 16, 18), 7 wrong -> right (odd i < 14); alone in its family.
    assert (reflect["matched_calls_right_to_wrong"], reflect["matched_calls_wrong_to_right"]) == (3, 7)
    assert reflect["matched_calls_diff"] == pytest.approx(0.2) and reflect["matched_calls_holm_p"] == pytest.approx(
        0.34375
    )
    # Drafts: 2 named no option; of the 18 others, 4 changed: 1 right -> wrong, 2 wrong -> right, 1 wrong -> wrong.
    flips = {
        k: reflect[f"first_to_final_{k}"] for k in ("n", "unparsed", "changed", "right_to_wrong", "wrong_to_right")
    }
    assert flips == {"n": 20, "unparsed": 2, "changed": 4, "right_to_wrong": 1, "wrong_to_right": 2}
    assert reflect["first_to_final_cut"] == 1  # of the 2, one draft was cut at its budget, one named no option
    # Truncated answers apart from unparsed ones; per node, the outputs at the budget (⚠ above 5%: 1/60 is not).
    assert (cot["unparsed"], cot["truncated"], cot["correct"]) == (0, 2, 15)
    assert (cot["at_budget"], reflect["at_budget"], rows["single"]["at_budget"]) == (
        "reason 2/20 ⚠",
        "draft 1/60",
        "answer 0/20",
    )
    assert (cot["reasoning_tokens_per_q"], reflect["reasoning_tokens_per_q"]) == (4.0, 0.0)
    # 20 five-option questions expect 4 answers per letter, too few for the chi-square test.
    assert reflect["letter_p"] is None and reflect["letter_note"] == "expected count < 5"
    assert cot["matched_calls_cell"] == "sc[zh,k=1]" and not cot.get("matched_calls_found")
    # At equal generated tokens: reflect's 21 per question over sc's 10 per sample -> k=2, which the grid lacks; cot's
    # 10 -> k=1.
    assert reflect["matched_tokens_cell"] == "sc[zh,k=2]" and not reflect.get("matched_tokens_found")
    assert cot["matched_tokens_cell"] == "sc[zh,k=1]"
    assert any("sc[zh,k=1], sc[zh,k=2] to the grid" in note for note in ablation.notes)
    assert rows["sc[zh,k=3]"]["matched_calls_cell"] == ""  # sc is the control, not matched against itself
    # Nor is the baseline: single against sc at one call is sc[zh,k=1]'s own row against single.
    assert (rows["single"]["matched_calls_cell"], rows["single"]["matched_tokens_cell"]) == ("", "")

    markdown = (out / "ablation.md").read_text(encoding="utf-8")
    lines = [line.strip("|").split(" | ") for line in markdown.splitlines() if line.startswith("| ")]
    table = {
        line[1]: dict(zip([h.strip() for h in lines[0]], [c.strip() for c in line], strict=True)) for line in lines[1:]
    }
    assert list(table) == ["**single**", "cot[zh]", "reflect", "sc[zh,k=3]"]
    md_cot, md_reflect = table["cot[zh]"], table["reflect"]
    assert md_cot["accuracy [95% CI] (correct/n)"] == "75.0% [53.1%–88.8%] (15/20)"  # Wilson, as in test_stats
    assert md_cot["Δ vs single, points [95% bootstrap CI]"].startswith("+25.0 [")
    assert (md_cot["McNemar p"], md_cot["Holm p"], md_cot["flips r→w / w→r"]) == ("0.302", "0.604", "5 / 10")
    assert (md_reflect["sc at equal calls"], md_reflect["Holm p (calls)"]) == ("sc[zh,k=3]: 50.0%", "0.344")
    assert md_reflect["first → final: changed (r→w / w→r); first unparsed"] == "4 (1 / 2); 2 (1 cut at the budget)"
    assert (md_cot["unparsed"], md_cot["truncated"], md_cot["at the token budget"]) == ("0", "2", "reason 2/20 ⚠")
    assert (md_reflect["truncated"], md_reflect["at the token budget"]) == ("0", "draft 1/60")
    assert md_cot["first → final: changed (r→w / w→r); first unparsed"] == "–"
    assert md_reflect["letters vs uniform, χ² p"] == "–, too few answers; see python -m eval.position_bias"
    with open(out / "ablation.csv", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    assert [r["cell"] for r in table] == list(rows) and float(table[1]["diff"]) == pytest.approx(0.25)
    assert [(r["truncated"], r["at_budget"], r["first_to_final_cut"]) for r in table[1:3]] == [
        ("2", "reason 2/20 ⚠", ""),
        ("0", "draft 1/60", "1"),
    ]
    assert table[1]["reasoning_tokens_per_q"] == "4.0"
    document = json.loads((out / "ablation.json").read_text(encoding="utf-8"))
    assert document["baseline"] == "single" and len(document["question_ids"]) == 20 and len(document["rows"]) == 4
    # The key's letters and the best constant letter, so an accuracy can be read against them.
    key = answer_key(QUESTIONS)
    assert key_text(key) in markdown and sum(key.letters.values()) == 20 and key.best_constant_accuracy <= 0.3


def test_the_token_matched_control_is_measured_from_the_grids_sc_cells(tmp_path):
    """reflect: 3 calls but 21 generated tokens per question; sc: 10 tokens a sample. With sc at k=2 and k=3 in the
    grid, reflect's control at equal calls is k=3 and at equal tokens k=2, each compared and Holm-adjusted apart."""
    out = make_ablation(tmp_path)
    write_cell(out / "m" / "sc_zh_k2", "sc", [i < 12 for i in range(20)], 2, prompt_variant="zh", samples=2)
    ablation = analyse(load_grid(write_grid(tmp_path, SYNTHETIC.replace("[3]", "[2, 3]"))), out)
    reflect = next(flat(r) for r in ablation.rows if r.cell == "reflect")
    assert (reflect["matched_calls_cell"], reflect["matched_tokens_cell"]) == ("sc[zh,k=3]", "sc[zh,k=2]")
    assert reflect["matched_tokens_found"] and reflect["matched_tokens_accuracy"] == 0.6
    # reflect right on i < 14, sc k=2 on i < 12: two wrong -> right, none the other way.
    assert (reflect["matched_tokens_right_to_wrong"], reflect["matched_tokens_wrong_to_right"]) == (0, 2)
    assert reflect["matched_tokens_diff"] == pytest.approx(0.1) and reflect["matched_tokens_mcnemar_p"] == 0.5
    # Its family: reflect vs sc k=2 (p 0.5) and cot vs... nothing (k=1 is missing), so Holm leaves it at 0.5.
    assert reflect["matched_tokens_holm_p"] == 0.5 and reflect["matched_calls_holm_p"] == pytest.approx(0.34375)
    markdown = render_markdown(ablation)
    assert "| sc at equal generated tokens |" in markdown and "sc[zh,k=2]: 60.0%" in markdown


def test_terminal_view_fits_the_width_and_says_each_comparison(tmp_path):
    """The table printed to a terminal: the columns that matter most within its width, then one plain sentence per
    comparison with the baseline; the files keep every column."""
    out = make_ablation(tmp_path)
    ablation = analyse(load_grid(tmp_path / "grid.toml"), out)
    wide, narrow = render_terminal(ablation, 200), render_terminal(ablation, 60)
    table = narrow.split("\n\n")[0].splitlines()
    assert all(len(line) <= 60 for line in table) and table[0].split()[:2] == ["cell", "accuracy"]
    assert "columns left out to fit" in narrow and "columns left out" not in wide
    assert "Δ vs sc at equal calls" in wide.splitlines()[0]
    # cot 5 right -> wrong, 10 wrong -> right on 20 questions; Holm over three comparisons leaves it at p = 0.604.
    assert (
        "cot[zh] − single: +25.0 points [" in wide
        and "McNemar p = 0.302 (Holm-adjusted 0.604): no evidence of a difference; 20 questions (15 answered right "
        "by only one of the two) detect"
        in " ".join(wide.split())
    )


def test_a_corrected_answer_key_regrades_every_cell(tmp_path):
    """The grid's data now says question 0's answer is what single answered wrongly; no cell is re-run."""
    out = make_ablation(tmp_path)
    fixed = []
    for q in load_questions(BUNDLED):
        if q.id == QUESTIONS[0].id:
            q = q.model_copy(update={"answer": next(letter for letter in q.letters if letter != q.answer)})
        fixed.append(q.model_dump_json())
    (tmp_path / "fixed.jsonl").write_text("\n".join(fixed) + "\n", encoding="utf-8")
    grid = load_grid(write_grid(tmp_path, SYNTHETIC + f'data = "{tmp_path / "fixed.jsonl"}"\n'))
    rows = {r.cell: flat(r) for r in analyse(grid, out).rows}
    # single was right on questions 0-9, cot answered that same wrong letter on 0-4: question 0 flips both.
    assert (rows["single"]["correct"], rows["cot[zh]"]["correct"]) == (9, 16)
    assert (rows["cot[zh]"]["right_to_wrong"], rows["cot[zh]"]["wrong_to_right"]) == (4, 11)


# -- a real tiny grid --------------------------------------------------------------------------

TINY_GRID = f"""models = ["{TINY}"]
graphs = ["cot", "sc"]
variants = ["zh"]
samples = [1]
baseline = "cot"
sample_temperature = 0.9
limit = 2
extra_args = ["--n-ctx", "2048", "--draft-tokens", "8"]
"""


def ablate(*args: str) -> subprocess.CompletedProcess:
    return run_main("eval.ablate", *args)


def test_tiny_grid_end_to_end_and_reuse(tmp_path):
    grid = write_grid(tmp_path, TINY_GRID)
    out = tmp_path / "ablation"
    result = ablate(str(grid), "--out", str(out))
    assert result.returncode == 0, result.stderr
    cell_dirs = {c: out / TINY / c for c in ("cot_zh", "sc_zh_k1")}
    manifests = {c: json.loads((d / "manifest.json").read_text()) for c, d in cell_dirs.items()}
    ids = manifests["cot_zh"]["question_ids"]
    assert len(ids) == 2 and all(m["question_ids"] == ids for m in manifests.values()), (
        "every cell on the same questions"
    )
    sc = manifests["sc_zh_k1"]["options"]["sc"]
    assert (sc["samples"], sc["sample_temperature"], sc["draft_tokens"]) == (1, 0.9, 8)
    # cot has no sampling options: its cell records only its own (the grid's extra_args set its budget).
    assert manifests["cot_zh"]["prompt_variant"] == "zh"
    assert manifests["cot_zh"]["options"] == {"cot": {"draft_tokens": 8}}
    for c, d in cell_dirs.items():
        predictions = [json.loads(line) for line in (d / "predictions.jsonl").read_text().splitlines()]
        assert sorted(p["question_id"] for p in predictions) == sorted(ids)
        assert all(p["graph"] == manifests[c]["graphs"][0] for p in predictions)  # --baseline none: one graph per cell
    rows = {r["cell"]: r for r in json.loads((out / "ablation.json").read_text())["rows"]}
    assert list(rows) == ["cot[zh]", "sc[zh,k=1]"]
    # cot makes one model call per question, as sc with k=1 (sampled instead of greedy); cot is the baseline, so that
    # comparison is sc's own row, not a compute-matched control of cot's.
    assert rows["cot[zh]"]["matched_calls_cell"] == "" and not rows["cot[zh]"].get("matched_calls_found")
    assert (
        rows["sc[zh,k=1]"]["calls_per_q"] == 1.0
        and rows["sc[zh,k=1]"]["baseline"] == "cot[zh]"
        and rows["sc[zh,k=1]"]["n"] == 2
    )
    assert "\nsc[zh,k=1] " in result.stdout and "sc[zh,k=1] − cot[zh]: " in result.stdout
    assert (out / "ablation.csv").exists()

    before = {c: (d / "predictions.jsonl").read_bytes() for c, d in cell_dirs.items()}
    again = ablate(str(grid), "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("finished earlier: reused") == 2
    assert {c: (d / "predictions.jsonl").read_bytes() for c, d in cell_dirs.items()} == before


def test_run_ablation_returns_the_table_and_resumes_a_cell_marked_by_older_code(tmp_path):
    """The Python API: run_ablation runs the grid in-process and returns its typed rows. A cell whose marker an older
    version wrote (its flags as "argv") is not reused blindly: the evaluator's resume takes it (nothing asked again),
    and its marker then records the spec, so the next call reuses it."""
    from eval.plans.campaign import run_ablation
    from eval.plans.plan import MARKER

    grid = load_grid(
        write_grid(
            tmp_path,
            f'models = ["{TINY}"]\ngraphs = ["single", "cot"]\nvariants = ["zh"]\nlimit = 2\n'
            'extra_args = ["--n-ctx", "1024", "--draft-tokens", "8"]\n',
        )
    )
    out = tmp_path / "ablation"
    lines: list[str] = []
    ablation = run_ablation(grid, out, progress=lines.append)
    assert [(r.model, r.cell, r.status, r.summary.overall.total) for r in ablation.rows] == [
        (TINY, "single", "done", 2),
        (TINY, "cot[zh]", "done", 2),
    ]
    assert json.loads((out / "ablation.json").read_text())["rows"][1]["cell"] == "cot[zh]"
    cot = out / TINY / "cot_zh"
    marker = json.loads((cot / MARKER).read_text())
    assert marker["complete"] and marker["spec"]["prompt_variant"] == "zh" and marker["spec"]["n_ctx"] == 1024
    assert "out" not in marker["spec"] and "argv" not in marker

    predictions = (cot / "predictions.jsonl").read_bytes()
    old = ["--graph", "cot", "--baseline", "none", "--model", TINY, "--limit", "2", "--prompt-variant", "zh"]
    (cot / MARKER).write_text(json.dumps({"argv": old, "settings": {"prompt_variant": "zh"}, "complete": True}))
    lines.clear()
    again = run_ablation(grid, out, progress=lines.append)
    assert lines.count("    finished earlier: reused") == 1, lines  # single's; cot's went to the evaluator's resume
    assert (cot / "predictions.jsonl").read_bytes() == predictions  # resumed: nothing asked again
    assert json.loads((cot / MARKER).read_text()) == marker
    assert [r.summary.overall.total for r in again.rows] == [2, 2]
    lines.clear()
    run_ablation(grid, out, progress=lines.append)
    assert lines.count("    finished earlier: reused") == 2


# -- each model its own cells, each row its own model's run -----------------------------------


def test_two_models_with_one_file_name_each_get_their_own_cells_and_rows(tmp_path, monkeypatch):
    """a/m.gguf is SmolLM2, b/m.gguf Qwen 0.5B: one file name, two models. Each gets its own cell directory and its
    row its own run's numbers; a cell whose directory holds another model's run is failed in every table."""
    import shutil

    from eval.ablate import main
    from eval.html_report import main as html_report
    from eval.models import resolve_model

    monkeypatch.chdir(tmp_path)  # the grid's paths are relative, as on a command line
    for folder, model in (("a", TINY), ("b", "qwen2.5-coder-0.5b")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "m.gguf").symlink_to(resolve_model(model))
    grid = write_grid(
        tmp_path,
        'models = ["a/m.gguf", "b/m.gguf"]\ngraphs = ["single"]\nlimit = 2\nextra_args = ["--n-ctx", "1024"]\n',
    )
    out = tmp_path / "ablation"
    assert main([str(grid), "--out", str(out)]) == 0
    rows = json.loads((out / "ablation.json").read_text(encoding="utf-8"))["rows"]
    assert [r["model"] for r in rows] == ["a/m.gguf", "b/m.gguf"] and all(r["status"] == "done" for r in rows)
    runs = [Path(r["run_dir"]) for r in rows]
    assert runs[0] != runs[1] and all(d.parent.name.startswith("m-") for d in runs)
    manifests = [json.loads((d / "manifest.json").read_text(encoding="utf-8")) for d in runs]
    assert [m["model"] for m in manifests] == ["a/m.gguf", "b/m.gguf"]
    assert manifests[0]["model_sha256"] != manifests[1]["model_sha256"]
    for row, run in zip(rows, runs, strict=True):  # the row's numbers are its own run's
        made = [json.loads(line) for line in (run / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
        assert (row["n"], row["correct"]) == (2, sum(p["correct"] for p in made))
        assert row["prompt_tokens_per_q"] == pytest.approx(sum(p["prompt_tokens"] for p in made) / 2)
    # Two tokenizers: the same prompts are not the same number of tokens, so the rows are not one run twice.
    assert rows[0]["prompt_tokens_per_q"] != rows[1]["prompt_tokens_per_q"]

    # Qwen's cell directory now holds SmolLM2's run (as after a grid edited on the same --out): never its numbers.
    shutil.rmtree(runs[1])
    shutil.copytree(runs[0], runs[1])
    assert main([str(grid), "--out", str(out), "--no-run"]) == 1
    qwen = json.loads((out / "ablation.json").read_text(encoding="utf-8"))["rows"][1]
    assert qwen["status"] == "failed" and qwen.get("n") is None
    markdown = (out / "ablation.md").read_text(encoding="utf-8")
    assert "| b/m.gguf | single | failed |" in markdown
    assert f"Note: b/m.gguf · single failed: {runs[1]} holds a run of another model: its manifest names a/m.gguf" in (
        markdown
    )
    assert html_report([str(out)]) == 0
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "b/m.gguf · single</td><td>failed</td>" in page and "holds a run of another model" in page

    # The same path, another file: a/m.gguf is now Qwen, and SmolLM2's run (made as a/m.gguf) is not its run.
    (tmp_path / "a" / "m.gguf").unlink()
    (tmp_path / "a" / "m.gguf").symlink_to(resolve_model("qwen2.5-coder-0.5b"))
    alone = tmp_path / "alone"
    shutil.copytree(runs[0], alone / "m" / "single")
    grid = write_grid(tmp_path, 'models = ["a/m.gguf"]\ngraphs = ["single"]\nlimit = 2\n')
    assert main([str(grid), "--out", str(alone), "--no-run"]) == 1
    assert "| a/m.gguf | single | failed |" in (alone / "ablation.md").read_text(encoding="utf-8")
    assert "holds a run of another model: its manifest's model has sha256 " in (alone / "ablation.md").read_text(
        encoding="utf-8"
    )


@pytest.mark.parametrize(
    ("models", "message"),
    [
        ('["smollm2-135m", "smollm2-135m"]', "models: 'smollm2-135m' is listed twice; list it once"),
        ('["a/m.gguf", "./a/m.gguf"]', "models: 'a/m.gguf' and './a/m.gguf' are one model; list it once"),
    ],
)
def test_a_model_listed_twice_is_refused_in_one_line(tmp_path, capsys, models, message):
    from eval.ablate import main

    assert main([str(write_grid(tmp_path, f'models = {models}\ngraphs = ["single"]\n')), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {tmp_path / 'grid.toml'}: {message}\n"


def test_critics_with_one_file_name_get_their_own_cells(tmp_path):
    grid = load_grid(write_grid(tmp_path, 'graphs = ["reflect"]\ncritics = ["a/c.gguf", "b/c.gguf"]\n'))
    critics = [c for c in cells(grid) if c.critic]
    assert len({c.label for c in critics}) == len({c.slug for c in critics}) == 2
    assert all(c.label.startswith("reflect[critic=c-") for c in critics)
