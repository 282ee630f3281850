"""Option letters on a SentencePiece vocabulary with the space prefix on (as in every real Mixtral GGUF)."""

import math

import numpy as np
import pytest

from agents.backend import letter_of_token
from agents.openai_backend import scores_from_top
from eval.schema import Message

MESSAGES = [Message(role="system", content="你是医生。"), Message(role="user", content="题目：胸痛。选项：A. 甲 B. 乙 C. 丙")]


@pytest.fixture(scope="module")
def sp_backend(tiny_moe_sp):
    from agents.llamacpp import LlamaCppBackend

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
    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(llm.n_vocab(),)).astype(np.float64)
    logprobs = logits - np.logaddexp.reduce(logits)
    for letter in "ABC":
        spelled = [t for t in range(llm.n_vocab()) if letter_of_token(llm.detokenize([t]).decode("utf-8", "replace")) == letter]
        assert len(spelled) >= 2
        assert scored.scores[letter] == pytest.approx(float(np.logaddexp.reduce(logprobs[spelled])), abs=1e-5)


def test_both_backends_count_the_same_token_texts():
    top = [("A", -1.0), ("▁A", -2.0), (" B", -1.5), ("ĠC", -3.0), ("AB", -0.1), ("a", -0.2)]
    scores = scores_from_top(top, ["A", "B", "C", "D"])
    assert scores["A"] == pytest.approx(math.log(math.exp(-1.0) + math.exp(-2.0)))
    assert (scores["B"], scores["C"], scores["D"]) == (-1.5, -3.0, -math.inf)
