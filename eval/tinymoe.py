"""python -m eval.tinymoe OUT.gguf: write a tiny Mixtral-architecture GGUF with random weights.

The file exercises the Mixture-of-Experts path end to end (GGUF inspection, llama.cpp loading, expert
routing, the chat template, the whole CLI) in a few seconds on CPU and under 3 MB on disk. Its answers
are noise: it is for plumbing tests, never for accuracy.

What llama.cpp reads (Mixtral is arch `llama` with `llama.expert_count` > 0):

- per layer `blk.N.`: attn_norm, attn_q/k/v/output, ffn_norm, ffn_gate_inp (the router, n_embd x
  n_expert), and the experts stacked in 3-D tensors ffn_gate_exps / ffn_up_exps (ggml ne = n_embd, n_ff,
  n_expert) and ffn_down_exps (n_ff, n_embd, n_expert), n_ff being the size of one expert (feed_forward_length);
- token_embd, output_norm, output;
- a SentencePiece-style (`llama`) vocabulary with byte fallback: <unk> <s> </s>, the ChatML control tokens,
  the 256 byte tokens <0x00>..<0xFF>, printable ASCII, "▁A".."▁H", and the 7,445 characters of GB2312 (the
  common Chinese characters and full-width punctuation), so Chinese text is about one token per character
  and anything else falls back to bytes.

`space_prefix=True` (`--space-prefix`) turns on llama.cpp's SentencePiece space prefix, as every real Mixtral
GGUF has: then "A" alone tokenizes to "▁A", while the "A" after "答案：" stays the bare token "A".

Shapes below are given numpy-style (slowest axis first), the reverse of ggml's ne[] order.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eval.core.flags import HelpFormatter

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


@dataclass(frozen=True)
class TinyMoEConfig:
    n_layers: int = 2
    n_embd: int = 64
    n_head: int = 4
    n_head_kv: int = 2
    n_ff: int = 128  # per expert
    n_experts: int = 8
    n_experts_used: int = 2
    context_length: int = 4096
    seed: int = 0
    space_prefix: bool = False


def build_vocab() -> tuple[list[str], list[float], list[int]]:
    """Tokens, scores and token types of a small SentencePiece (`llama`) vocabulary with byte fallback."""
    from gguf import TokenType

    tokens: list[str] = []
    scores: list[float] = []
    types: list[int] = []

    def add(text: str, kind: int, score: float = 0.0) -> None:
        tokens.append(text)
        scores.append(score)
        types.append(kind)

    add("<unk>", TokenType.UNKNOWN)
    add("<s>", TokenType.CONTROL)
    add("</s>", TokenType.CONTROL)
    add("<|im_start|>", TokenType.CONTROL)
    add("<|im_end|>", TokenType.CONTROL)
    for b in range(256):
        add(f"<0x{b:02X}>", TokenType.BYTE)
    seen = set(tokens)
    # Higher score = merged first. Single characters all score low; the few two-character tokens score higher.
    singles = ["▁"] + [chr(c) for c in range(0x21, 0x7F)] + _gb2312_chars()
    for i, ch in enumerate(singles):
        if ch not in seen:
            seen.add(ch)
            add(ch, TokenType.NORMAL, -1000.0 - i)
    for letter in "ABCDEFGH":
        add("▁" + letter, TokenType.NORMAL, -10.0)
    return tokens, scores, types


def _gb2312_chars() -> list[str]:
    """Every character GB2312 encodes in two bytes: 6,763 hanzi plus punctuation, full-width forms, Greek..."""
    chars = []
    for hi in range(0xA1, 0xF8):
        for lo in range(0xA1, 0xFF):
            try:
                ch = bytes((hi, lo)).decode("gb2312")
            except UnicodeDecodeError:
                continue
            if len(ch) == 1 and not ch.isspace():
                chars.append(ch)
    return chars


def write_tiny_moe(path: str | Path, config: TinyMoEConfig = TinyMoEConfig()) -> Path:
    """Write the model to `path` (atomically) and return it."""
    import gguf

    c = config
    if c.n_embd % c.n_head or c.n_head % c.n_head_kv or not 0 < c.n_experts_used <= c.n_experts:
        raise ValueError(f"inconsistent config: {c}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tokens, scores, types = build_vocab()
    n_vocab, head_dim = len(tokens), c.n_embd // c.n_head
    rng = np.random.default_rng(c.seed)

    def weight(*shape: int, scale: float | None = None, dtype=np.float16) -> np.ndarray:
        std = scale if scale is not None else shape[-1] ** -0.5  # fan-in scaling keeps activations O(1)
        return (rng.standard_normal(shape, dtype=np.float32) * std).astype(dtype)

    tmp = path.with_name(path.name + ".tmp")
    w = gguf.GGUFWriter(tmp, "llama")
    w.add_name("tiny-moe (random weights, for tests)")
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_context_length(c.context_length)
    w.add_embedding_length(c.n_embd)
    w.add_block_count(c.n_layers)
    w.add_feed_forward_length(c.n_ff)
    w.add_head_count(c.n_head)
    w.add_head_count_kv(c.n_head_kv)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_expert_count(c.n_experts)
    w.add_expert_used_count(c.n_experts_used)
    w.add_vocab_size(n_vocab)

    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(tokens.index("<|im_end|>"))
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(c.space_prefix)
    w.add_chat_template(CHATML_TEMPLATE)

    f32 = np.float32
    w.add_tensor("token_embd.weight", weight(n_vocab, c.n_embd, scale=1.0))
    for i in range(c.n_layers):
        blk = f"blk.{i}."
        w.add_tensor(blk + "attn_norm.weight", np.ones(c.n_embd, dtype=f32))
        w.add_tensor(blk + "attn_q.weight", weight(c.n_head * head_dim, c.n_embd))
        w.add_tensor(blk + "attn_k.weight", weight(c.n_head_kv * head_dim, c.n_embd))
        w.add_tensor(blk + "attn_v.weight", weight(c.n_head_kv * head_dim, c.n_embd))
        w.add_tensor(blk + "attn_output.weight", weight(c.n_embd, c.n_head * head_dim))
        w.add_tensor(blk + "ffn_norm.weight", np.ones(c.n_embd, dtype=f32))
        w.add_tensor(blk + "ffn_gate_inp.weight", weight(c.n_experts, c.n_embd, dtype=f32))  # the router stays F32
        w.add_tensor(blk + "ffn_gate_exps.weight", weight(c.n_experts, c.n_ff, c.n_embd))
        w.add_tensor(blk + "ffn_up_exps.weight", weight(c.n_experts, c.n_ff, c.n_embd))
        w.add_tensor(blk + "ffn_down_exps.weight", weight(c.n_experts, c.n_embd, c.n_ff))
    w.add_tensor("output_norm.weight", np.ones(c.n_embd, dtype=f32))
    w.add_tensor("output.weight", weight(n_vocab, c.n_embd))

    try:
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
    finally:
        w.close()
    tmp.replace(path)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m eval.tinymoe", description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter
    )
    p.add_argument("out", type=Path, help="GGUF file to write")
    d = TinyMoEConfig()
    p.add_argument("--layers", type=int, default=d.n_layers, help="transformer blocks")
    p.add_argument("--hidden", type=int, default=d.n_embd, help="embedding width")
    p.add_argument("--experts", type=int, default=d.n_experts, help="experts per layer")
    p.add_argument("--experts-used", type=int, default=d.n_experts_used, help="experts routed per token")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the random weights")
    p.add_argument(
        "--space-prefix", action="store_true", help="SentencePiece space prefix on, as in real Mixtral GGUFs"
    )
    args = p.parse_args(argv)
    config = TinyMoEConfig(
        n_layers=args.layers,
        n_embd=args.hidden,
        n_experts=args.experts,
        n_experts_used=args.experts_used,
        seed=args.seed,
        space_prefix=args.space_prefix,
    )
    start = time.perf_counter()
    try:
        path = write_tiny_moe(args.out, config)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {path} ({path.stat().st_size:,} bytes) in {time.perf_counter() - start:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
