"""The in-process backend: one GGUF model loaded by llama.cpp, kept for the whole run.

The KV cache is kept across calls: consecutive prompts that share a prefix (the system prompt and
the question, which every node of one question starts with) only evaluate what follows it. A conversation the cache
drops is kept in host memory (`PrefixStates`), so a later prompt that starts as it did (the same question under
another strategy, cell or rerun) restores it instead of evaluating it again, as llama-server's `--cache-ram` does.
"""

from __future__ import annotations

import ctypes
import functools
import os
import time
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

import numpy as np
from scipy.special import logsumexp

from agents.backends.amx import without_amx_buffers
from agents.backends.base import (
    BackendError,
    Completion,
    PermanentError,
    Registered,
    letter_of_token,
    quiet_stderr,
    reasoned,
)
from agents.backends.template import ChatTemplate, Rendered
from agents.reasoning import close_tag, split_reasoning, unclosed
from eval.core.schema import Engine, FinishReason, Message

# One llama.cpp context evaluates one stream: nothing is batched with another question.
IN_PROCESS = Engine(name="llama-cpp-python", version=version("llama-cpp-python"), slots=1)


def _memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows): assume a small machine
        return 8 << 30


# Host memory for dropped conversations' KV states (SmolLM2-135M: 23 KB a token; Mixtral-8x7B: 128 KB): 1 GiB, or a
# sixteenth of the machine's memory where that is less.
PREFIX_STATES_BYTES = min(1 << 30, _memory() // 16)
# A restore copies the state back: worth it only where it saves evaluating at least this many tokens more.
RESTORE_GAIN = 32


def common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    n = min(len(a), len(b))
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if len(differ) else n


class PrefixStates:
    """The KV states of conversations the context dropped, by their tokens, least recently used first, within a
    byte budget."""

    def __init__(self, budget: int = PREFIX_STATES_BYTES):
        self.budget = budget
        self.states: OrderedDict[bytes, tuple[np.ndarray, bytes]] = OrderedDict()
        self.size = 0

    def keep(self, tokens: np.ndarray, state: bytes) -> None:
        if len(state) > self.budget:
            return
        for key, (kept, data) in list(self.states.items()):
            if common_prefix(kept, tokens) == len(kept):  # a prefix of the new one: the new one serves it too
                del self.states[key]
                self.size -= len(data)
        self.states[tokens.tobytes()] = (tokens, state)
        self.size += len(state)
        while self.size > self.budget:
            _, (_, data) = self.states.popitem(last=False)
            self.size -= len(data)

    def covers(self, tokens: np.ndarray) -> bool:
        """Whether a kept state starts with all of `tokens`."""
        return any(common_prefix(kept, tokens) == len(tokens) for kept, _ in self.states.values())

    def longest(self, tokens: np.ndarray) -> tuple[int, np.ndarray] | None:
        """(that length, its tokens) of the kept state sharing the longest prefix with `tokens`, the most recently
        used of those that share as much."""
        shared = ((common_prefix(kept, tokens), kept) for kept, _ in reversed(self.states.values()))
        best = max(shared, key=lambda found: found[0], default=(0, None))
        return best if best[1] is not None and best[0] else None

    def take(self, tokens: np.ndarray) -> bytes:
        """The state kept for `tokens`, now the most recently used."""
        self.states.move_to_end(key := tokens.tobytes())
        return self.states[key][1]

    def drop(self, tokens: np.ndarray) -> None:
        self.size -= len(self.states.pop(tokens.tobytes())[1])


class LlamaCppBackend(Registered):
    kind = "llama"
    about = "evaluates in-process"
    local = True
    engine = IN_PROCESS

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
        thinking_tokens: int = 0,
    ):
        """`chat_template` (Jinja) replaces the GGUF's own; a base model without one needs it. `thinking_tokens`: a
        reasoning model's thinking budget on top of each reply's own (0: thinking shares the reply's budget)."""
        from llama_cpp import Llama

        from eval.models.gguf import check_fits, inspect_gguf

        check_fits(inspect_gguf(model_path, sha256=False), n_ctx, n_gpu_layers)
        self.name = f"llama.cpp:{Path(model_path).name}"
        self.seed = seed
        self.repeat_penalty = repeat_penalty
        self.thinking_tokens = thinking_tokens
        # llama-cpp-python defaults to half the cores for generation (memory-bound: use them all) and to every core
        # for prompts, whatever n_threads says: --n-threads bounds both, as llama-server's --threads/--threads-batch.
        threads = n_threads or os.cpu_count() or 1
        try:
            with quiet_stderr(), without_amx_buffers():
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
        self._template = ChatTemplate.of(self.llm, model_path, chat_template)
        self.thinking = self._template.thinking  # for the manifest: how a thinking template is scored
        self._states = PrefixStates()

    @classmethod
    def open(cls, spec, model_path: Path | None) -> LlamaCppBackend:
        assert model_path is not None  # local: a run resolves one
        same = ("n_ctx", "n_threads", "n_gpu_layers", "seed", "flash_attn", "thinking_tokens")  # the spec's flags
        return cls(model_path, **{name: getattr(spec, name) for name in same})

    # -- prompt handling -------------------------------------------------------------------

    def _tokens(
        self, messages: Sequence[Message], assistant_prefix: str = "", *, thinking: bool = True
    ) -> tuple[list[int], Rendered]:
        rendered = self._template.render(messages, assistant_prefix, thinking=thinking)
        prompt = rendered.prompt.encode("utf-8")
        self._refuse_oversized(len(prompt))
        tokens = self.llm.tokenize(prompt, add_bos=not rendered.added_special, special=True)
        if len(tokens) >= self.llm.n_ctx():
            raise PermanentError(
                f"prompt of {len(tokens)} tokens does not fit the context window (n_ctx={self.llm.n_ctx()})"
            )
        return tokens, rendered

    def _refuse_oversized(self, size: int) -> None:
        """Refuse a prompt of `size` UTF-8 bytes that cannot fit the window whatever it says, before tokenising it:
        a 50 MB question would take 52 million tokens and 4 GB of memory to count exactly."""
        n_ctx = self.llm.n_ctx()
        if size < n_ctx or not self._bytes_per_token:  # a token holds at least one byte: it may fit
            return
        least = -(-size // self._bytes_per_token)
        if least >= n_ctx:
            raise PermanentError(
                f"prompt of {size:,} bytes (at least {least:,} tokens) does not fit the context window (n_ctx={n_ctx})"
            )

    @functools.cached_property
    def _bytes_per_token(self) -> int:
        """The most bytes of text one token stands for (control tokens written out included): a prompt of N bytes
        takes at least N / this many tokens. 0 (no bound) where the tokenizer normalises text first (WordPiece,
        Unigram: a run of spaces or accents may fold into one token)."""
        import llama_cpp

        vocab = self.llm._model.vocab
        if llama_cpp.llama_vocab_type(vocab) not in (llama_cpp.LLAMA_VOCAB_TYPE_SPM, llama_cpp.LLAMA_VOCAB_TYPE_BPE):
            return 0
        buf = ctypes.create_string_buffer(64)
        # A negative length is the size a piece longer than the buffer needs.
        return max(
            abs(llama_cpp.llama_token_to_piece(vocab, t, buf, len(buf), 0, True)) for t in range(self.llm.n_vocab())
        )

    def _reusable_prefix(self, tokens: list[int]) -> int:
        """How many leading tokens are already in the KV cache; the last two are always re-evaluated.

        Two, not one: llama.cpp computes a one-token batch on another kernel path (matrix-vector) than a longer one,
        which moves a small model's option log-probabilities by up to 0.09 nats; with two the scores of a prompt do
        not depend on what the cache held before it. A reply this backend generated is cached as it was generated, one
        token at a time: a later prompt that extends it (the chain's next node) reuses it as any run that generates
        it does, live or from a kept state.
        """
        cached = self.llm.input_ids[: self.llm.n_tokens]
        common = 0
        for a, b in zip(cached, tokens[:-2], strict=False):
            if a != b:
                break
            common += 1
        return common

    def _keep_cached_prefix(self, tokens: list[int]) -> int:
        """Drop from the KV cache everything after the prefix `tokens` can reuse, keeping what is dropped in
        `self._states` and restoring a kept state that shares more; returns the reused prefix's length."""
        import llama_cpp

        reused = self._reusable_prefix(tokens)
        if reused < self.llm.n_tokens:
            self._keep_held()
        found = self._states.longest(np.array(tokens[:-2]))
        # A recurrent model's state cannot be cut back to a shared prefix: only a kept state used whole serves it.
        whole_only = self.llm._is_recurrent or self.llm._is_hybrid
        if found and found[0] >= reused + RESTORE_GAIN and not (whole_only and found[0] < len(found[1])):
            n, kept_tokens = found
            data = self._states.take(kept_tokens)
            self.llm._ctx.kv_cache_clear()
            if llama_cpp.llama_state_seq_set_data(
                self.llm._ctx.ctx, (ctypes.c_uint8 * len(data)).from_buffer_copy(data), len(data), 0
            ):
                self.llm.input_ids[: len(kept_tokens)] = kept_tokens
                self.llm.n_tokens, reused = len(kept_tokens), n
            else:  # not to be tried again
                self._states.drop(kept_tokens)
                self.llm.n_tokens, reused = 0, 0
        if reused == 0 or not self.llm._ctx.kv_cache_seq_rm(-1, reused, -1):
            reused = 0
            self.llm.reset()
        self.llm.n_tokens = reused
        return reused

    def _keep_held(self) -> None:
        """Copy what the KV cache holds into the kept states, unless a kept state already starts with all of it."""
        import llama_cpp

        ctx, held = self.llm._ctx.ctx, np.array(self.llm.input_ids[: self.llm.n_tokens])
        if len(held) and not self._states.covers(held):
            state = (ctypes.c_uint8 * llama_cpp.llama_state_seq_get_size(ctx, 0))()
            self._states.keep(
                held, ctypes.string_at(state, llama_cpp.llama_state_seq_get_data(ctx, state, len(state), 0))
            )

    def clear_cache(self, *, keep: bool = False) -> None:
        """Empty the KV cache, and forget every dropped conversation kept: the next prompt is evaluated from its first
        token. With `keep`, what the cache held is kept like any dropped conversation, and the kept ones stay."""
        if keep:
            self._keep_held()
        else:
            self._states = PrefixStates(self._states.budget)
        self.llm._ctx.kv_cache_clear()
        self.llm.reset()

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

        # A grammar commits to the answer itself: it is asked for after any thinking, as scoring is.
        tokens, rendered = self._tokens(messages, assistant_prefix, thinking=grammar is None)
        start = time.perf_counter()

        def generate(prompt: list[int], budget: int) -> tuple[str, FinishReason, int, int]:
            """(text, finish reason, generated tokens, prompt tokens evaluated) of one completion of `prompt`."""
            reused = self._keep_cached_prefix(prompt)  # create_completion then evaluates exactly prompt[reused:]
            out = self.llm.create_completion(
                prompt,
                max_tokens=min(budget, self.llm.n_ctx() - len(prompt)),
                temperature=temperature,
                repeat_penalty=self.repeat_penalty,
                stop=[*stop, *rendered.stop],
                grammar=LlamaGrammar.from_string(grammar, verbose=False) if grammar else None,
                seed=self.seed if seed is None else seed,
            )
            assert isinstance(out, dict)  # not streamed: one response (llama_cpp types both, with no overload)
            choice = out["choices"][0]
            # "length" when max_tokens (or the context window) ran out, "stop" at EOS or a stop string.
            finish: FinishReason = "length" if choice["finish_reason"] == "length" else "stop"
            return choice["text"], finish, out["usage"]["completion_tokens"], len(prompt) - reused

        thinking = self.thinking_tokens if grammar is None else 0
        text, finish, generated, evaluated = generate(tokens, thinking or max_tokens)
        if thinking and finish == "length":
            # The thinking budget ran out: end any thinking still open, as llama-server's reasoning budget does, and
            # give the answer its own budget.
            tag = unclosed(assistant_prefix + text) or (self._template.opens if rendered.opened else None)
            if tag and not split_reasoning(assistant_prefix + text, opened=rendered.opened).finished:
                text += f"\n{close_tag(tag)}\n\n"
            more = tokens + self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
            answer, finish, answered, evaluated_more = generate(more, max_tokens)
            text, generated, evaluated = text + answer, generated + answered, evaluated + evaluated_more
        fields = reasoned(
            assistant_prefix + text, finish_reason=finish, prefix=assistant_prefix, opened=rendered.opened
        )
        return Completion(
            prompt_tokens=len(tokens),
            prompt_tokens_evaluated=evaluated,
            completion_tokens=generated,
            seconds=time.perf_counter() - start,
            reasoning_tokens=min(self.count_tokens(fields["reasoning"]), generated) if fields["reasoning"] else 0,
            **fields,
        )

    def score_next(
        self, messages: Sequence[Message], candidates: Sequence[str], *, assistant_prefix: str = ""
    ) -> Completion:
        import llama_cpp

        tokens, _ = self._tokens(messages, assistant_prefix, thinking=False)  # never scored inside a thinking block
        start = time.perf_counter()
        reused = self._keep_cached_prefix(tokens)
        self.llm.eval(tokens[reused:])
        logits = np.ctypeslib.as_array(
            llama_cpp.llama_get_logits_ith(self.llm._ctx.ctx, -1), shape=(self.llm.n_vocab(),)
        )
        logprobs = logits - logsumexp(logits)
        scores = {c: float(logsumexp(logprobs[self._ids(c)])) for c in candidates}
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
            raise PermanentError(f"the model's vocabulary has no token that spells option {candidate!r}")
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


BACKEND = LlamaCppBackend
