"""Reasoning models: thinking kept apart from the answer, outputs cut at their budget, thinking chat templates."""

from __future__ import annotations

import pytest

from agents.backends.base import reasoned
from agents.reasoning import opens_block, split_reasoning
from eval.render.report_md import render_markdown
from eval.results.report import summarize
from eval.run.runner import predict
from graphs import build_graph
from tests.fakes import FakeBackend, run_config

# A DeepSeek-R1-distill-style template: every reply starts inside <think>.
OPENS_THINK = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n{% endif %}"
)
# A Qwen3-style template: the model thinks unless enable_thinking=false, which writes an empty closed block.
SWITCHED_THINK = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}{% endif %}"
)
PLAIN = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.mark.parametrize(
    ("text", "opened", "answer", "reasoning", "finished"),
    [
        ("<think>先分析……答案是B？</think>\n答案：C", False, "答案：C", "先分析……答案是B？", True),
        ("<think>\n首先分析……答案应该是C。不过再想想，", False, "", "首先分析……答案应该是C。不过再想想，", False),
        ("首先分析……答案应该是B。</think>\n\n答案：C", False, "答案：C", "首先分析……答案应该是B。", True),
        ("首先分析……答案应该是B。", True, "", "首先分析……答案应该是B。", False),
        ("答案：D", False, "答案：D", "", True),
        ("◁think▷选A？◁/think▷答案：B", False, "答案：B", "选A？", True),
        ("[THINK]maybe A[/THINK]Answer: D", False, "Answer: D", "maybe A", True),
        ("<|begin_of_thought|>A?<|end_of_thought|><|begin_of_solution|>答案：E<|end_of_solution|>", False,
         "答案：E", "A?", True),
        ("<think>a</think>中间<think>b</think>答案：C", False, "中间\n答案：C", "a\n\nb", True),
    ],
)  # fmt: skip
def test_split_reasoning(text, opened, answer, reasoning, finished):
    split = split_reasoning(text, opened=opened)
    assert (split.answer, split.reasoning, split.finished) == (answer, reasoning, finished)


def test_a_prompt_that_ends_inside_a_block():
    assert opens_block("<|im_start|>assistant\n<think>\n") == "<think>"
    assert opens_block("<|im_start|>assistant\n<think>\n\n</think>\n\n") is None
    assert opens_block("<|im_start|>assistant\n") is None


def test_thinking_that_ends_with_nothing_after_it_did_not_finish():
    assert not reasoned("分析：<think>答案是C</think>", finish_reason="stop", prefix="分析：")["reasoning_finished"]
    assert reasoned("分析：<think>x</think>答案：C", finish_reason="stop", prefix="分析：")["reasoning_finished"]
    # A server's separate reasoning field is the thinking; the content is the answer.
    fields = reasoned("答案：C", finish_reason="stop", reasoning="先想想")
    assert (fields["text"], fields["reasoning"], fields["reasoning_finished"]) == ("答案：C", "先想想", True)


def _predict(graph: str, backend, question, **options):
    return predict(graph, build_graph(graph, backend, run_config(graph, **options)), question)


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        (("首先分析……患者胸痛向背部放射，考虑", "length"), "truncated"),  # cut at the budget before an answer
        ("<think>首先分析……答案应该是C。不过再想想，", "truncated"),  # the thinking never ended
        ("<think>答案应该是C。</think>", "truncated"),  # thought, then said nothing
        ("这道题我不确定。", "unparsed"),  # ended, naming no option
        ("<think>也许是B</think>\n答案：C", "ok"),
    ],
)
def test_an_output_cut_short_is_truncated_not_unparsed(question, reply, status):
    p = _predict("cot", FakeBackend([reply]), question)
    assert p.parse_status == status
    assert p.answer == ("C" if status == "ok" else None)
    assert not p.correct


def test_an_answer_stated_before_the_budget_ran_out_stands_and_the_cut_is_counted(question):
    # Plain text (no thinking) that stated its answer before it was cut: the answer is read, the cut is recorded.
    p = _predict("cot", FakeBackend([("分析：……答案：C。另外需要注意", "length")]), question)
    assert (p.answer, p.parse_status, p.trace[0].finish_reason) == ("C", "ok", "length")


def test_the_thinking_is_kept_in_the_trace_and_never_read_for_the_answer(question):
    p = _predict("cot", FakeBackend(["<think>答案是B</think>\n答案：C"]), question)
    step = p.trace[0]
    assert (step.output, step.reasoning, step.finish_reason) == ("分析：\n\n答案：C", "答案是B", "stop")
    assert p.answer == "C"


def test_a_draft_cut_at_its_budget_is_told_apart_in_the_flip_table(question):
    cut = _predict("reflect", FakeBackend([("分析：胸痛……考虑", "length"), "审核意见：同意。建议答案：B"]), question)
    silent = _predict("reflect", FakeBackend(["分析：胸痛，无法判断。", "审核意见：建议答案：B"]), question)
    assert (cut.draft_cut, silent.draft_cut) == (True, False)
    single = _predict("single", FakeBackend(), question)
    summary = summarize(
        "m", "d", ["reflect", "single"], "single", [question], [cut, single.model_copy(update={"graph": "single"})]
    )
    flips = summary.graphs[0].draft_to_final
    assert (flips.unparsed, flips.cut) == (1, 1)
    markdown = render_markdown(summary)
    assert "| draft cut at its token budget | 1 |" in markdown
    assert "| draft named no option | 0 |" in markdown
    # Per node, the outputs at the budget; the draft's 1 of 1 is flagged.
    assert "| reflect | draft | 1 | 1 (100%) ⚠ |" in markdown
    assert "| reflect | critique | 1 | 0 (0%) |" in markdown
    assert "raise --draft-tokens for reflect draft (a reasoning model's thinking has its own" in markdown
    assert summary.graphs[0].budget["draft"].hit == 1


def test_the_budget_warning_names_the_flag_of_each_node():
    from eval.render.report_md import budget_flag

    assert budget_flag("cot", "reason") == "--draft-tokens"  # cot's reasoning has no flag of its own
    assert budget_flag("reflect+rag", "critique") == "--critique-tokens"
    assert budget_flag("reflect", "revise") == budget_flag("sc", "sample") == "--draft-tokens"
    assert budget_flag("single", "answer") == budget_flag("no-such-graph", "draft") == ""


# -- a real model (SmolLM2-135M) in-process --------------------------------------------------------------------


def test_in_process_generation_says_why_it_stopped(tiny_backend):
    from eval.core.schema import Message

    messages = [Message(role="user", content="Describe the heart in detail.")]
    cut = tiny_backend.chat(messages, max_tokens=5)
    assert (cut.finish_reason, cut.completion_tokens) == ("length", 5)
    stopped = tiny_backend.chat([Message(role="user", content="Say hi.")], max_tokens=200, stop=["\n", "."])
    assert stopped.finish_reason == "stop" and stopped.completion_tokens < 200


def test_a_template_that_opens_a_thinking_block_is_scored_after_an_empty_closed_one(tiny_model, question):
    from agents.backends.llamacpp import LlamaCppBackend
    from agents.backends.template import template_thinking
    from agents.messages import question_messages

    backend = LlamaCppBackend(tiny_model, n_ctx=2048, chat_template=OPENS_THINK)
    messages = question_messages("你是医师。", question, "请回答。")

    def prompt(**kwargs) -> str:
        tokens, _ = backend._tokens(messages, "答案：", **kwargs)
        return backend.llm.detokenize(tokens).decode()

    assert prompt().endswith("assistant\n<think>\n答案：")  # generation thinks first
    assert prompt(thinking=False).endswith("assistant\n<think>\n\n</think>\n\n答案：")  # scoring does not
    assert backend.thinking == template_thinking(OPENS_THINK) != ""
    # SmolLM2 rarely closes a block it did not open: a budget-bound reply stays inside its thinking, never read.
    reply = backend.chat(messages, max_tokens=24, assistant_prefix="分析：")
    assert (reply.text, reply.reasoning_finished, reply.finish_reason) == ("", False, "length")
    assert reply.reasoning and 0 < reply.reasoning_tokens <= 24


def test_a_template_with_a_thinking_switch_is_scored_in_its_no_thinking_form(tiny_model, question):
    from agents.backends.template import ChatTemplate

    plain, switched = (ChatTemplate(t, bos_token="", eos_token="", eos_id=0) for t in (PLAIN, SWITCHED_THINK))
    from eval.core.schema import Message

    messages = [Message(role="user", content="?")]
    assert plain.thinking == "" and switched.thinking != ""
    assert switched.render(messages, "答案：", thinking=False).prompt.endswith(
        "assistant\n<think>\n\n</think>\n\n答案："
    )
    assert switched.render(messages, "答案：").prompt.endswith("assistant\n答案：")
    assert plain.render(messages, "答案：", thinking=False).prompt.endswith("assistant\n答案：")


def test_the_manifest_records_how_a_thinking_template_is_scored(tiny_model, question, tmp_path):
    from agents.backends.llamacpp import LlamaCppBackend
    from eval.api import RunSpec, evaluate
    from eval.core.schema import RunConfig

    backend = LlamaCppBackend(tiny_model, n_ctx=2048, chat_template=OPENS_THINK)
    spec = RunSpec(graph="cot", baseline="single", out=tmp_path / "run", draft_tokens=16)
    result = evaluate(spec, questions=[question], backend=backend)
    config = RunConfig.model_validate_json((result.out / "manifest.json").read_text())
    assert "opens <think>" in config.thinking
    cot = next(g for g in result.summary.graphs if g.graph == "cot")
    # Its 16 tokens of thinking never ended: truncated, not unparsed, and its thinking tokens counted.
    assert (cot.truncated, cot.unparsed, cot.budget["reason"].hit) == (1, 0, 1)
    assert cot.reasoning_tokens_per_q > 0
    assert "truncated" in result.markdown


def test_a_thinking_budget_ends_the_thinking_and_leaves_the_answer_its_own_budget(tiny_model, question):
    from agents.backends.llamacpp import LlamaCppBackend
    from agents.messages import question_messages

    messages = question_messages("你是医师。", question, "请回答。")
    unbounded = LlamaCppBackend(tiny_model, n_ctx=2048, chat_template=OPENS_THINK)
    bounded = LlamaCppBackend(tiny_model, n_ctx=2048, chat_template=OPENS_THINK, thinking_tokens=12)
    # Without a thinking budget SmolLM2 thinks to the end of the reply's budget: no answer can follow.
    lost = unbounded.chat(messages, max_tokens=10, assistant_prefix="分析：")
    assert (lost.text, lost.reasoning_finished) == ("", False)
    # With one, the block is closed after 12 tokens and the answer gets its own 10.
    kept = bounded.chat(messages, max_tokens=10, assistant_prefix="分析：")
    assert kept.reasoning.startswith("分析：") and kept.text
    assert 12 < kept.completion_tokens <= 22 + 8  # the closing tag is the model's prompt, not its tokens
    assert kept.reasoning_finished or kept.finish_reason == "length"
