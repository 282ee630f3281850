"""cot and sc: parsing, voting, ties, unparsed drafts, seeds; prompt variants as data; one real-model check."""

import json

import pytest
from fakes import FakeBackend, run_config
from hypothesis import given
from hypothesis import strategies as st

from agents.nodes.sample import sample_seeds
from agents.nodes.vote import majority, tally
from agents.prompts import UnknownVariant, load_prompts
from eval.core.schema import RunConfig
from eval.run.runner import predict
from graphs import STRATEGIES, GraphSpec, build_graph

CONFIG = run_config("sc")


class RecordingBackend(FakeBackend):
    """FakeBackend that also records the sampling arguments of each chat call."""

    def __init__(self, replies=(), **kw):
        super().__init__(replies, **kw)
        self.sampling: list[tuple[float, int | None]] = []

    def chat(self, messages, *, max_tokens, temperature=0.0, seed=None, **kw):
        self.sampling.append((temperature, seed))
        return super().chat(messages, max_tokens=max_tokens, temperature=temperature, seed=seed, **kw)


def config(**fields) -> RunConfig:
    """CONFIG with cot's and sc's options (draft_tokens; samples, sample_temperature) and any run-level field."""
    options = {k: fields.pop(k) for k in ("samples", "sample_temperature", "draft_tokens") if k in fields}
    cot = {k: v for k, v in options.items() if k == "draft_tokens"}
    return CONFIG.model_copy(update={**fields, "options": {"sc": options, "cot": cot}})


# -- cot ---------------------------------------------------------------------------------------


def test_cot_is_one_greedy_generation_with_the_letter_parsed_from_it(question):
    backend = RecordingBackend(replies=["下壁导联ST段抬高，提示右冠状动脉闭塞……\n答案：B"])
    prediction = predict("cot", build_graph("cot", backend, config()), question)
    assert [s.node for s in prediction.trace] == ["reason"] and backend.sampling == [(0.0, None)]
    assert (prediction.answer, prediction.correct, prediction.parse_status, prediction.answer_method) == (
        "B",
        True,
        "ok",
        "regex",
    )
    assert prediction.model_calls == 1 and prediction.draft_answer is None
    step = prediction.trace[0]
    assert step.output.startswith("分析：")  # primed with the variant's prefix
    assert question.stem in step.messages[-1].content and "答案：只写一个选项字母" in step.messages[-1].content


def test_cot_without_a_letter_is_unparsed_and_wrong(question):
    prediction = predict(
        "cot", build_graph("cot", FakeBackend(replies=["考虑心肌梗死可能性大，但需进一步检查。"]), config()), question
    )
    assert (prediction.answer, prediction.correct, prediction.parse_status) == (None, False, "unparsed")


def test_cot_and_sc_read_answers_given_as_option_text_or_in_final_phrasing(question):
    # Neither names a letter after "答案": the text of option C, and "故选C" / a final bare line.
    cot = predict("cot", build_graph("cot", FakeBackend(replies=["……\n答案：主动脉夹层"]), config()), question)
    assert (cot.answer, cot.parse_status) == ("C", "ok")
    replies = ["……故选C。", "……\n**答案**：C", "……\n\nB"]
    sc = predict("sc", build_graph("sc", FakeBackend(replies=replies), config(samples=3)), question)
    assert (sc.answer, sc.draft_answer, sc.parse_status) == ("C", "C", "ok")


def test_cot_variants_change_language_and_persona(question):
    seen = {}
    for variant in ("zh", "zh-plain", "en", "en-plain"):
        backend = FakeBackend(replies=["Answer: B"])
        prediction = predict("cot", build_graph("cot", backend, config(prompt_variant=variant)), question)
        assert prediction.answer == "B"
        seen[variant] = prediction.trace[0].messages
    assert seen["en"][0].content.startswith("You are an experienced clinician")
    assert "Answer: one option letter only" in seen["en"][1].content
    assert "临床医师" in seen["zh"][0].content and "临床医师" not in seen["zh-plain"][0].content
    assert "clinician" not in seen["en-plain"][0].content
    assert question.stem in seen["en"][1].content  # the question itself stays in Chinese


# -- sc ----------------------------------------------------------------------------------------


def test_sc_samples_k_drafts_with_distinct_seeds_then_votes(question):
    replies = ["……答案：C", "……答案：B", "……答案：B", "没有结论", "……答案：C。再想想，答案：B"]
    backend = RecordingBackend(replies=replies)
    prediction = predict("sc", build_graph("sc", backend, config(samples=5, sample_temperature=0.8, seed=3)), question)
    assert [s.node for s in prediction.trace] == ["sample"] * 5 and prediction.model_calls == 5
    temperatures, seeds = zip(*backend.sampling, strict=True)
    assert set(temperatures) == {0.8}
    assert list(seeds) == sample_seeds(3, 5) and len(set(seeds)) == 5
    # Every draft answers the same prompt (so all but the first reuse the cached prompt).
    assert all(s.messages == prediction.trace[0].messages for s in prediction.trace)
    # B 3 (the last mention in a draft wins), C 1, one unparsed: B.
    assert (prediction.answer, prediction.answer_method, prediction.parse_status, prediction.correct) == (
        "B",
        "regex",
        "ok",
        True,
    )
    assert prediction.draft_answer == "C"  # the first draft, to show what voting changed


def test_sc_k_comes_from_the_run_config(question):
    backend = RecordingBackend(replies=["答案：A"] * 3)
    prediction = predict("sc", build_graph("sc", backend, config(samples=3)), question)
    assert len(backend.sampling) == 3 and prediction.answer == "A"
    assert STRATEGIES["sc"].options().samples == 5


def test_sc_tie_goes_to_the_letter_drawn_first(question):
    backend = FakeBackend(replies=["答案：D", "答案：B", "答案：B", "答案：D"])
    assert predict("sc", build_graph("sc", backend, config(samples=4)), question).answer == "D"


def test_sc_unparsed_drafts_do_not_vote_and_none_parsed_is_unparsed(question):
    one = predict(
        "sc", build_graph("sc", FakeBackend(replies=["不确定", "不确定", "答案：E"]), config(samples=3)), question
    )
    assert (one.answer, one.parse_status, one.draft_answer) == ("E", "ok", None)
    none = predict("sc", build_graph("sc", FakeBackend(replies=["不确定"] * 3), config(samples=3)), question)
    assert (none.answer, none.parse_status, none.correct, none.model_calls) == (None, "unparsed", False, 3)


def test_majority_and_tally():
    assert majority([]) is None and majority([None, None]) is None
    assert majority(["A", "B", "B"]) == "B"
    assert majority([None, "C", "A", "A", "C"]) == "C"  # tie C/A: C was drawn first
    assert tally(["A", None, "B", "B", None]) == {"B": 2, "A": 1, "unparsed": 2}


@given(st.lists(st.sampled_from(["A", "B", "C", "D", "E", None]), max_size=12))
def test_majority_is_a_most_voted_letter_and_the_first_drawn_among_ties(votes):
    winner = majority(votes)
    letters = [v for v in votes if v is not None]
    if not letters:
        assert winner is None
        return
    top = max(letters.count(v) for v in letters)
    assert letters.count(winner) == top
    tied = [v for v in letters if letters.count(v) == top]
    assert winner == tied[0]


def test_seeds_are_distinct_within_a_question_and_across_run_seeds():
    assert sample_seeds(0, 5) == [0, 1, 2, 3, 4]
    assert not set(sample_seeds(0, 1000)) & set(sample_seeds(1, 1000))
    with pytest.raises(ValueError):
        sample_seeds(0, 1001)


def test_a_failing_sample_is_an_error_not_a_vote(question):
    class Broken(FakeBackend):
        def chat(self, *a, **k):
            raise RuntimeError("context full")

    prediction = predict("sc", build_graph("sc", Broken(), config(samples=3)), question)
    assert prediction.parse_status == "error" and "context full" in prediction.error


# -- prompts as data ---------------------------------------------------------------------------


def test_registry_has_the_new_strategies():
    assert {"cot", "sc"} <= set(STRATEGIES)
    assert GraphSpec.parse("sc+rag").strategy is STRATEGIES["sc"]


def test_prompt_variants_load_by_name_and_version_with_the_variant():
    base = load_prompts("cot")
    assert set(base["variants"]) == {"zh", "zh-plain", "en", "en-plain"} and base["default_variant"] == "zh"
    en = load_prompts("cot", "en")
    assert (
        en["version"] == f"{base['version']}/en"
        and en["variant"] == "en"
        and en["language"] == "en"
        and en["persona"] is True
    )
    assert "variants" not in en and {"system", "instruction", "prefix"} <= set(en)
    assert load_prompts("single")["version"] == "single-zh-2"  # strategies without variants: unchanged
    with pytest.raises(UnknownVariant, match="zh, zh-plain, en, en-plain"):
        load_prompts("cot", "fr")


def test_sc_samples_exactly_cots_prompts():
    # sc with k=1 at temperature 0 must be cot; compute-matched comparisons rely on it.
    assert load_prompts("sc")["variants"] == load_prompts("cot")["variants"]
    assert load_prompts("sc")["default_variant"] == load_prompts("cot")["default_variant"]
    assert load_prompts("sc")["version"] != load_prompts("cot")["version"]


def test_a_manifest_from_before_strategy_options_reads_but_does_not_resume(tmp_path):
    from eval.core.store import RunDirError, RunStore

    flat = {"samples": 3, "sample_temperature": 0.7, "draft_tokens": 384, "critique_tokens": 256, "rounds": 1}
    old = CONFIG.model_dump(exclude={"options", "version"}) | flat
    assert RunConfig.model_validate(old).version == 1  # the reports still read it
    (tmp_path / "manifest.json").write_text(json.dumps(old), encoding="utf-8")
    with pytest.raises(RunDirError, match=r"made by an earlier version of the evaluator .* --fresh"):
        RunStore(tmp_path, CONFIG)


# -- the real tiny model -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def one_thread_backend(tiny_model):
    from agents.backends.llamacpp import LlamaCppBackend

    return LlamaCppBackend(tiny_model, n_ctx=2048, n_threads=1)


def test_real_model_sc_with_one_greedy_sample_is_cot_and_seeds_matter(one_thread_backend, question):
    greedy = config(samples=1, sample_temperature=0.0, draft_tokens=12)
    cot = predict("cot", build_graph("cot", one_thread_backend, greedy), question)
    sc = predict("sc", build_graph("sc", one_thread_backend, greedy), question)
    assert sc.trace[0].output == cot.trace[0].output and sc.answer == cot.answer
    assert sc.trace[0].prompt_tokens_evaluated < cot.trace[0].prompt_tokens  # same prompt: served from the KV cache

    hot = config(samples=3, sample_temperature=1.5, draft_tokens=12, seed=0)
    first = predict("sc", build_graph("sc", one_thread_backend, hot), question)
    again = predict("sc", build_graph("sc", one_thread_backend, hot), question)
    outputs = [s.output for s in first.trace]
    assert outputs == [s.output for s in again.trace], "seeded sampling must be reproducible"
    assert len(set(outputs)) > 1, "distinct seeds must give distinct drafts"
