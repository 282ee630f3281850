"""The in-process backend: one GGUF model loaded by llama.cpp, kept for the whole run.

The KV cache is kept across calls: consecutive prompts that share a prefix (the system prompt and
the question, which every node of one question starts with) only evaluate what follows it.
"""

from __future__ import annotations

import ctypes
import functools
import os
import time
from collections import defaultdict
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

import numpy as np

from agents.backends.base import BackendError, Completion, letter_of_token, quiet_stderr
from eval.schema import Engine, Message

# One llama.cpp context evaluates one stream: nothing is batched with another question.
IN_PROCESS = Engine(name="llama-cpp-python", version=version("llama-cpp-python"), slots=1)


class LlamaCppBackend:
    def __init__(
        self,
        model_path: Path,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        seed: int = 0,
        repeat_penalty: float = 1.1,
        flash_attn: bool = False,
        chat_template: str | None = None,
    ):
        """`chat_template` (Jinja) replaces the GGUF's own; a base model without one needs it."""
        from llama_cpp import Llama, llama_chat_format

        from eval.gguf_info import check_fits, inspect_gguf

        check_fits(inspect_gguf(model_path, sha256=False), n_ctx, n_gpu_layers)
        self.name = f"llama.cpp:{Path(model_path).name}"
        self.engine = IN_PROCESS
        self.seed = seed
        self.repeat_penalty = repeat_penalty
        # llama-cpp-python defaults to half the cores for generation (memory-bound: use them all) and to every core
        # for prompts, whatever n_threads says: --n-threads bounds both, as llama-server's --threads/--threads-batch.
        threads = n_threads or os.cpu_count() or 1
        try:
            with quiet_stderr():
                self.llm = Llama(
                    model_path=str(model_path),
                    n_ctx=n_ctx,
                    n_threads=threads,
                    n_threads_batch=threads,
                    n_gpu_layers=n_gpu_layers,
                    flash_attn=flash_attn,
                    seed=seed,
                    verbose=False,
                )
        except (ValueError, RuntimeError, OSError) as e:
            raise BackendError(f"llama.cpp could not load {model_path}: {e}") from None
        template = chat_template or self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise BackendError(
                f"{model_path} has no chat template in its GGUF metadata (a base model? evaluate its instruct version)"
            )
        eos, bos = self.llm.token_eos(), self.llm.token_bos()
        text = self.llm._model.token_get_text
        self._formatter = llama_chat_format.Jinja2ChatFormatter(
            template=template,
            eos_token=text(eos) if eos != -1 else "",
            bos_token=text(bos) if bos != -1 else "",
            stop_token_ids=[eos],
        )

    # -- prompt handling -------------------------------------------------------------------

    def _tokens(self, messages: Sequence[Message], assistant_prefix: str = "") -> tuple[list[int], list[str]]:
        result = self._formatter(messages=[m.model_dump() for m in messages])
        prompt = result.prompt + assistant_prefix
        tokens = self.llm.tokenize(prompt.encode("utf-8"), add_bos=not result.added_special, special=True)
        if len(tokens) >= self.llm.n_ctx():
            raise BackendError(
                f"prompt of {len(tokens)} tokens does not fit the context window (n_ctx={self.llm.n_ctx()})"
            )
        stop = result.stop if isinstance(result.stop, list) else [result.stop] if result.stop else []
        return tokens, stop

    def _reusable_prefix(self, tokens: list[int]) -> int:
        """How many leading tokens are already in the KV cache; the last two are always re-evaluated.

        Two, not one: llama.cpp computes a one-token batch on another kernel path (matrix-vector) than a longer one,
        which moves a small model's option log-probabilities by up to 0.09 nats; with two the scores of a prompt do
        not depend on what the cache held before it.
        """
        cached = self.llm.input_ids[: self.llm.n_tokens]
        common = 0
        for a, b in zip(cached, tokens[:-2], strict=False):
            if a != b:
                break
            common += 1
        return common

    def _keep_cached_prefix(self, tokens: list[int]) -> int:
        """Drop from the KV cache everything after the prefix `tokens` can reuse; returns that prefix's length."""
        reused = self._reusable_prefix(tokens)
        if reused == 0 or not self.llm._ctx.kv_cache_seq_rm(-1, reused, -1):
            reused = 0
            self.llm.reset()
        self.llm.n_tokens = reused
        return reused

    # -- Backend interface -----------------------------------------------------------------

    def chat(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int,
        stop: Sequence[str] = (),
        grammar: str | None = None,
        assistant_prefix: str = "",
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> Completion:
        from llama_cpp import LlamaGrammar

        tokens, template_stop = self._tokens(messages, assistant_prefix)
        start = time.perf_counter()
        reused = self._keep_cached_prefix(tokens)  # create_completion then evaluates exactly tokens[reused:]
        out = self.llm.create_completion(
            tokens,
            max_tokens=min(max_tokens, self.llm.n_ctx() - len(tokens)),
            temperature=temperature,
            repeat_penalty=self.repeat_penalty,
            stop=[*stop, *template_stop],
            grammar=LlamaGrammar.from_string(grammar, verbose=False) if grammar else None,
            seed=self.seed if seed is None else seed,
        )
        usage = out["usage"]
        return Completion(
            text=(assistant_prefix + out["choices"][0]["text"]).strip(),
            prompt_tokens=usage["prompt_tokens"],
            prompt_tokens_evaluated=len(tokens) - reused,
            completion_tokens=usage["completion_tokens"],
            seconds=time.perf_counter() - start,
        )

    def score_next(
        self, messages: Sequence[Message], candidates: Sequence[str], *, assistant_prefix: str = ""
    ) -> Completion:
        import llama_cpp

        tokens, _ = self._tokens(messages, assistant_prefix)
        start = time.perf_counter()
        reused = self._keep_cached_prefix(tokens)
        self.llm.eval(tokens[reused:])
        logits = np.ctypeslib.as_array(
            llama_cpp.llama_get_logits_ith(self.llm._ctx.ctx, -1), shape=(self.llm.n_vocab(),)
        )
        logprobs = logits - _logsumexp(logits)
        scores = {c: float(_logsumexp(logprobs[self._ids(c)])) for c in candidates}
        return Completion(
            text=max(scores, key=scores.__getitem__),
            prompt_tokens=len(tokens),
            prompt_tokens_evaluated=len(tokens) - reused,
            completion_tokens=0,
            seconds=time.perf_counter() - start,
            scores=scores,
        )

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    @functools.cached_property
    def _tokens_by_char(self) -> dict[str, list[int]]:
        return tokens_by_char(self.llm)

    def _ids(self, candidate: str) -> list[int]:
        """Every token that spells `candidate`: after "答案：" a SentencePiece model writes "A", elsewhere "▁A"."""
        ids = self._tokens_by_char.get(candidate)
        if not ids:
            raise BackendError(f"the model's vocabulary has no token that spells option {candidate!r}")
        return ids


def tokens_by_char(llm) -> dict[str, list[int]]:
    """Token ids grouped by the one character each spells (letter_of_token of its decoded piece), in one vocabulary
    pass.

    Decoded pieces, not tokenizer output: tokenize("A") gives only "▁A" when the model adds a space prefix, and
    a byte-fallback token <0x41> spells "A" too.
    """
    import llama_cpp

    found: defaultdict[str, list[int]] = defaultdict(list)
    buf = ctypes.create_string_buffer(64)
    for token in range(llm.n_vocab()):
        n = llama_cpp.llama_token_to_piece(llm._model.vocab, token, buf, len(buf), 0, False)
        if n < 0:  # the piece needs -n bytes
            buf = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(llm._model.vocab, token, buf, len(buf), 0, False)
        text = letter_of_token(buf.raw[:n].decode("utf-8", "replace"))
        if len(text) == 1:
            found[text].append(token)
    return dict(found)


def _logsumexp(x: np.ndarray) -> float:
    m = float(np.max(x))
    return m + float(np.log(np.sum(np.exp(x - m))))
