"""One graded-run reader and one comparison: report.md, the leaderboard, the ablation table, the HTML page and
position_bias read a run alike and compare alike (eval.results.graded, eval.results.analysis.compare_family)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.core.schema import Prediction, RunConfig
from eval.core.shuffle import rotations
from eval.core.stats import holm, mcnemar_exact
from eval.core.store import RunStore
from eval.data import BUNDLED, load_for_config, load_questions, questions_sha256, select
from eval.results.analysis import Pairing, compare_family, paired
from eval.results.graded import read_graded
from eval.results.report import summarize_run

QUESTIONS = select(load_questions(BUNDLED), limit=12)


def write_run(out: Path, graphs: dict[str, list[bool]], *, circular: bool = False, model: str = "m.gguf") -> None:
    """graphs: per graph, whether each question is answered right (under --circular: rotation 0 as given, the other
    rotations right only on even questions)."""
    asked = [r for q in QUESTIONS for r in (rotations(q) if circular else [q])]
    config = RunConfig(
        graphs=list(graphs), model=model, model_sha256="", data=str(BUNDLED), data_sha256="",
        question_ids=[q.id for q in asked], circular=circular,
    )  # fmt: skip
    config.data_sha256 = questions_sha256(load_for_config(config).questions)
    store = RunStore(out, config)
    for graph, right in graphs.items():
        for i, q in enumerate(QUESTIONS):
            for r, turned in enumerate(rotations(q) if circular else [q]):
                ok = right[i] and (r == 0 or i % 2 == 0)
                answer = turned.answer if ok else next(x for x in turned.letters if x != turned.answer)
                store.append(
                    Prediction(question_id=turned.id, graph=graph, answer=answer, gold=turned.answer, correct=ok,
                               parse_status="ok", answer_method="next_token", model_calls=1, seconds=0.5)
                )  # fmt: skip
    store.close()


@pytest.mark.parametrize("circular", [False, True])
def test_report_and_leaderboard_read_one_run_alike(tmp_path, circular):
    """The same two run directories read by the leaderboard and by report.md's summary: the same accuracy, and the
    leaderboard's strategy gain is report.md's paired comparison, to the bit."""
    from eval.plans.board import load_board
    from eval.results.board import analyse

    spec = tmp_path / "board.toml"
    spec.write_text(
        f'models = ["m.gguf"]\nstrategies = ["single", "cot"]\nlimit = 12\ncircular = {str(circular).lower()}\n',
        encoding="utf-8",
    )
    board = load_board(spec)
    outcomes = {"single": [i < 6 for i in range(12)], "cot": [i % 3 != 0 for i in range(12)]}
    for strategy, right in outcomes.items():
        write_run(board.run_dir(tmp_path / "out", board.models[0], strategy), {strategy: right}, circular=circular)
    lb = analyse(board, tmp_path / "out")

    graded = {s: read_graded(board.run_dir(tmp_path / "out", board.models[0], s)) for s in outcomes}
    for row in lb.rows:
        summary = summarize_run("m", "d", graded[row.strategy], None)
        # The leaderboard counts circular accuracy under --circular; report.md puts it in its circular table.
        headline = summary.circular[0].circular if circular else summary.graphs[0].overall
        assert row.overall == headline
    (gain,) = lb.gains
    single, cot = (graded[s].counted(s) for s in ("single", "cot"))
    (expected,) = compare_family([Pairing("cot", "single", cot, single)])
    assert gain.comparison == expected
    right = sum(outcomes["single"][i] and (not circular or i % 2 == 0) for i in range(12))
    assert lb.rows[0].overall.correct == right


def test_compare_family_is_paired_with_exact_mcnemar_and_holm_over_the_family():
    base = {q.id: _prediction(q.id, i < 6) for i, q in enumerate(QUESTIONS)}
    chains = {
        "a": {q.id: _prediction(q.id, i < 10) for i, q in enumerate(QUESTIONS)},
        "b": {q.id: _prediction(q.id, i % 2 == 0) for i, q in enumerate(QUESTIONS)},
    }
    found = compare_family(Pairing(g, "base", chain, base) for g, chain in chains.items())
    for c, (g, chain) in zip(found, chains.items(), strict=True):
        one = paired(g, "base", chain, base)
        assert c.model_dump(exclude={"holm_p"}) == one.model_dump(exclude={"holm_p"})
        assert c.mcnemar_p == pytest.approx(mcnemar_exact(c.right_to_wrong, c.wrong_to_right))
    assert [c.holm_p for c in found] == pytest.approx(holm([c.mcnemar_p for c in found]))
    assert found[0].wrong_to_right == 4 and found[0].right_to_wrong == 0


def _prediction(qid: str, correct: bool) -> Prediction:
    return Prediction(question_id=qid, graph="g", answer="A" if correct else "B", gold="A", correct=correct,
                      parse_status="ok", answer_method="next_token")  # fmt: skip


def test_read_graded_grades_by_the_current_key_and_collapses_rotations(tmp_path):
    write_run(tmp_path / "run", {"single": [True] * 12}, circular=True)
    run = read_graded(tmp_path / "run")
    assert list(run.questions) == [q.id for q in QUESTIONS] and not run.changed
    # Original order: all right; under every rotation only the even questions.
    assert all(p.correct for p in run.graphs["single"].original.values())
    assert [p.correct for p in run.counted("single").values()] == [i % 2 == 0 for i in range(12)]
    assert len(run.graphs["single"].rotations) == sum(len(q.options) for q in QUESTIONS)

    # Another key for the first question: its original-order answer is now wrong, nothing is re-run.
    first = QUESTIONS[0]
    other = next(x for x in first.letters if x != first.answer)
    key = {q.id: q for q in QUESTIONS} | {first.id: first.model_copy(update={"answer": other})}
    regraded = read_graded(tmp_path / "run", key)
    assert not regraded.graphs["single"].original[first.id].correct
    assert regraded.graphs["single"].original[first.id].gold == other


def test_an_ablation_cell_counts_its_own_questions_beside_a_shorter_comparison(tmp_path):
    """The baseline cell failed on one question (an error): the other cell's accuracy is still over all 20 of its
    questions, and only its comparison with the baseline is over the 19 both answered. Before, the table's n was
    the comparison's, so it showed the cell's correct answers out of 19."""
    from test_ablate import QUESTIONS as GRID_QUESTIONS
    from test_ablate import write_cell, write_grid

    from eval.plans.grid import load_grid
    from eval.render.ablation_table import flat, render_markdown
    from eval.results.ablation import analyse

    out = tmp_path / "ablation"
    write_cell(out / "m" / "single", "single", [i < 10 for i in range(20)], 1)
    write_cell(out / "m" / "cot_zh", "cot", [True] * 20, 1, prompt_variant="zh")
    predictions = out / "m" / "single" / "predictions.jsonl"
    lines = predictions.read_text(encoding="utf-8").splitlines()
    failed = json.loads(lines[-1]) | {"parse_status": "error", "error": "boom", "answer": None, "correct": False}
    predictions.write_text("\n".join([*lines[:-1], json.dumps(failed)]) + "\n", encoding="utf-8")
    grid = load_grid(write_grid(tmp_path, 'models = ["m.gguf"]\ngraphs = ["single", "cot"]\nlimit = 20\n'))
    ablation = analyse(grid, out)
    cot = next(r for r in ablation.rows if r.cell == "cot[zh]")
    assert (cot.summary.overall.correct, cot.summary.overall.total) == (20, len(GRID_QUESTIONS))
    assert cot.versus.n == 19 and flat(cot)["n"] == 20
    markdown = render_markdown(ablation)
    assert "| m.gguf | cot[zh] | 100.0% [83.9%–100.0%] (20/20) |" in markdown
