"""The in-process backend on the real tiny GGUF: scoring, prefix reuse, determinism, limits."""

import math

import pytest

from agents.backends.base import BackendError
from agents.messages import follow_up, question_messages


def test_next_token_scores_are_log_probabilities(tiny_backend, question):
    messages = question_messages("你是医生。", question, "请直接给出答案字母。")
    result = tiny_backend.score_next(messages, question.letters, assistant_prefix="答案：")
    assert set(result.scores) == set("ABCDE")
    assert all(math.isfinite(v) and v < 0 for v in result.scores.values())
    assert sum(math.exp(v) for v in result.scores.values()) <= 1.0 + 1e-6
    assert result.text == max(result.scores, key=result.scores.get)


def test_shared_prefix_is_not_evaluated_twice(tiny_backend, question):
    messages = question_messages("你是医生。", question, "请分析。")
    first = tiny_backend.chat(messages, max_tokens=8)
    longer = follow_up(messages, first.text, "请给出答案。")
    second = tiny_backend.score_next(longer, question.letters, assistant_prefix="答案：")
    assert second.prompt_tokens > first.prompt_tokens
    assert second.prompt_tokens_evaluated < second.prompt_tokens - first.prompt_tokens // 2


def test_scores_do_not_depend_on_what_was_cached(tiny_backend, question):
    messages = question_messages("你是医生。", question, "请直接给出答案字母。")
    tiny_backend.chat(question_messages("别的提示。", question, "别的问题"), max_tokens=4)
    cold = tiny_backend.score_next(messages, question.letters, assistant_prefix="答案：")
    warm = tiny_backend.score_next(messages, question.letters, assistant_prefix="答案：")
    assert warm.prompt_tokens_evaluated < cold.prompt_tokens_evaluated
    for letter in question.letters:
        assert warm.scores[letter] == pytest.approx(cold.scores[letter], abs=1e-3)
    assert warm.text == cold.text


def test_greedy_generation_is_deterministic(tiny_backend, question):
    messages = question_messages("你是医生。", question, "请分析。")
    a = tiny_backend.chat(messages, max_tokens=24, assistant_prefix="分析：")
    tiny_backend.chat(question_messages("x", question, "y"), max_tokens=4)
    b = tiny_backend.chat(messages, max_tokens=24, assistant_prefix="分析：")
    assert a.text == b.text and a.text.startswith("分析：")
    assert 0 < a.completion_tokens < 32  # llama-cpp-python may run past max_tokens to finish a UTF-8 character


def test_prompt_longer_than_the_context_is_a_clear_error(tiny_backend, question):
    huge = question_messages("你是医生。", question, "很长的病史。" * 2000)
    with pytest.raises(BackendError, match="does not fit the context window"):
        tiny_backend.score_next(huge, question.letters)
