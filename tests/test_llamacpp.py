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
    """Cold, warm (the prompt still in the KV cache) and restored (its dropped state brought back after another
    prompt) give the same scores."""
    messages = question_messages("你是医生。", question, "请直接给出答案字母。")
    tiny_backend.clear_cache()
    cold = tiny_backend.score_next(messages, question.letters, assistant_prefix="答案：")
    warm = tiny_backend.score_next(messages, question.letters, assistant_prefix="答案：")
    tiny_backend.chat(question_messages("别的提示。", question, "别的问题"), max_tokens=4)
    restored = tiny_backend.score_next(messages, question.letters, assistant_prefix="答案：")
    assert warm.prompt_tokens_evaluated == restored.prompt_tokens_evaluated == 2 < cold.prompt_tokens_evaluated
    for letter in question.letters:
        assert warm.scores[letter] == pytest.approx(cold.scores[letter], abs=1e-3)
        assert restored.scores[letter] == pytest.approx(cold.scores[letter], abs=1e-3)
    assert warm.text == cold.text == restored.text


def test_a_dropped_conversation_is_restored_not_evaluated_again(tiny_backend, question):
    """The same question under another instruction, after other prompts: only what follows the shared prefix (the
    system prompt and the question) is evaluated, and the reply is the cold one."""
    draft = question_messages("你是医生。", question, "请分析。")
    other = question_messages("你是医生。", question, "请直接给出答案字母。")
    tiny_backend.clear_cache()
    cold = tiny_backend.chat(other, max_tokens=8)
    tiny_backend.clear_cache()
    tiny_backend.chat(draft, max_tokens=8)
    tiny_backend.chat(question_messages("别的提示。", question, "别的问题"), max_tokens=4)
    again = tiny_backend.chat(other, max_tokens=8)
    assert again.text == cold.text
    assert again.prompt_tokens_evaluated < cold.prompt_tokens_evaluated // 3


def test_clearing_the_cache_keeps_or_forgets_what_it_held(tiny_backend, question):
    messages = question_messages("你是医生。", question, "请直接给出答案字母。")
    first = tiny_backend.score_next(messages, question.letters, assistant_prefix="答案：")
    tiny_backend.clear_cache(keep=True)  # let go of the KV cache: the prompt is kept, and restored
    kept = tiny_backend.score_next(messages, question.letters, assistant_prefix="答案：")
    tiny_backend.clear_cache()  # forget it all: evaluated from its first token
    cold = tiny_backend.score_next(messages, question.letters, assistant_prefix="答案：")
    assert kept.prompt_tokens_evaluated == 2 and cold.prompt_tokens_evaluated == cold.prompt_tokens
    assert kept.scores == pytest.approx(first.scores, abs=1e-3) and cold.scores == pytest.approx(first.scores, abs=1e-3)


def test_kept_states_stay_within_their_budget():
    import numpy as np

    from agents.backends.llamacpp import PrefixStates

    states = PrefixStates(budget=100)
    states.keep(np.array([1, 2, 3]), b"x" * 40)
    states.keep(np.array([1, 2, 3, 4]), b"y" * 40)  # serves [1, 2, 3] too: replaces it
    assert list(states.states) == [np.array([1, 2, 3, 4]).tobytes()] and states.size == 40
    states.keep(np.array([5, 6]), b"z" * 40)
    n, tokens = states.longest(np.array([1, 2, 3, 4, 9]))
    assert n == 4 and states.take(tokens) == b"y" * 40  # taken: now the most recent
    states.longest(np.array([5, 6, 7]))  # only looked at: still the least recent
    states.keep(np.array([7]), b"w" * 40)  # over budget: the least recently used ([5, 6]) goes
    assert states.longest(np.array([5, 6])) is None and states.size == 80
    assert states.covers(np.array([1, 2])) and not states.covers(np.array([2]))
    states.keep(np.array([8]), b"v" * 101)  # larger than the budget: not kept
    assert states.size == 80
    states.keep(np.array([1, 5]), b"u" * 10)  # shares [1] with [1, 2, 3, 4] as well: the more recent is found
    assert states.longest(np.array([1, 9]))[1].tolist() == [1, 5]
    states.drop(np.array([1, 5]))
    assert states.size == 80 and states.longest(np.array([1, 9]))[1].tolist() == [1, 2, 3, 4]


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
