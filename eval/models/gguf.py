"""What a GGUF file holds, read from its header alone: architecture, parameters, experts, quantization.

`inspect_gguf(path)` reads the metadata and tensor infos with `gguf.GGUFReader` (the weights are only
memory-mapped, never read or loaded into llama.cpp), so it takes well under a second plus the optional
sha256 of the file. For a Mixture-of-Experts model the active parameters per token are the total minus
the experts a token does not use: expert FFN weights x (1 - experts_used / experts).
"""

from __future__ import annotations

import re
import struct
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, LlamaFileType
from pydantic import BaseModel, ConfigDict, Field, computed_field

from eval.core.cache import model_sha256


class ModelError(Exception):
    """A model cannot be used; the message says what to do."""


# Stacked experts (blk.N.ffn_gate_exps.weight, 3-D) and, in GGUFs converted before April 2024,
# one tensor per expert (blk.N.ffn_gate.E.weight). Shared experts (`_shexp`) are always active.
_EXPERT_TENSOR = re.compile(r"_exps|^blk\.\d+\.ffn_(gate|up|down)\.\d+\.weight$")


class ModelInfo(BaseModel):
    """One GGUF model, as recorded in run manifests and reports."""

    model_config = ConfigDict(frozen=True)

    path: str
    name: str | None = None  # general.name
    architecture: str
    file_size: int
    sha256: str | None = None  # None when inspected with sha256=False
    total_params: int
    active_params: int  # per token; equals total_params for a dense model
    expert_params: int = 0  # parameters in expert FFN tensors, all experts together
    n_layers: int | None = None
    n_experts: int = 0  # per MoE layer; 0 for a dense model
    n_experts_used: int = 0  # per token
    quantization: str  # e.g. Q4_K_M
    quantization_source: Literal["file_type", "tensors"]  # general.file_type, or the most common weight type
    tensor_types: dict[str, int] = {}  # parameters per ggml tensor type
    context_length: int | None = None  # trained context, {arch}.context_length
    embedding_length: int | None = None
    head_count: int | None = None
    head_count_kv: int | None = None
    vocab_size: int | None = None
    has_chat_template: bool
    chat_template: str = Field("", exclude=True, repr=False)  # the Jinja text: read, never written out

    @computed_field  # type: ignore[prop-decorator]
    @property
    def is_moe(self) -> bool:
        return self.n_experts > 1


def inspect_gguf(path: str | Path, *, sha256: bool = True) -> ModelInfo:
    """Read a GGUF file's header; raises ModelError (one line) when the file is not a readable GGUF."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise ModelError(f"{path}: {e.strerror or e}") from None
    if not path.is_file():
        raise ModelError(f"{path}: not a file")
    reader = _open(path)
    fields = reader.fields

    def value(key: str) -> Any:
        field = fields.get(key)
        if field is None or not field.types or field.types[0] == GGUFValueType.ARRAY:
            return None
        return field.contents()

    arch = value("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise ModelError(f"{path}: GGUF header has no general.architecture")
    tensors = reader.tensors
    if not tensors:
        raise ModelError(f"{path}: GGUF file holds no tensors")
    end = max(t.data_offset + t.n_bytes for t in tensors)
    if end > size:
        raise ModelError(f"{path}: truncated ({size:,} bytes, tensor data runs to {end:,})")

    total = sum(int(t.n_elements) for t in tensors)
    expert = sum(int(t.n_elements) for t in tensors if _EXPERT_TENSOR.search(t.name))
    n_experts = _int(value(f"{arch}.expert_count")) or 0
    n_used = _int(value(f"{arch}.expert_used_count")) or 0
    if n_experts > 1:
        if not 0 < n_used <= n_experts:
            raise ModelError(
                f"{path}: {arch}.expert_count is {n_experts} but {arch}.expert_used_count is {n_used or 'missing'}"
            )
        active = total - expert * (n_experts - n_used) // n_experts
    else:
        active = total

    by_type: Counter[str] = Counter()
    weights: Counter[str] = Counter()  # matrices only: 1-D norms and biases stay F32 in every quantization
    for t in tensors:
        kind = _type_name(t.tensor_type)
        by_type[kind] += int(t.n_elements)
        if len(t.shape) >= 2:
            weights[kind] += int(t.n_elements)
    quant = _file_type_name(value("general.file_type"))
    source: Literal["file_type", "tensors"] = "file_type"
    if quant is None:
        quant, source = (weights or by_type).most_common(1)[0][0], "tensors"

    tokens = fields.get("tokenizer.ggml.tokens")
    vocab = _int(value(f"{arch}.vocab_size")) or (_array_len(tokens) if tokens is not None else None)
    layers = _int(value(f"{arch}.block_count"))
    if layers is None:
        blocks = {int(m.group(1)) for t in tensors if (m := re.match(r"blk\.(\d+)\.", t.name))}
        layers = len(blocks) or None
    template = value("tokenizer.chat_template")
    name = value("general.name")
    return ModelInfo(
        path=str(path),
        name=name if isinstance(name, str) else None,
        architecture=arch,
        file_size=size,
        sha256=model_sha256(path) if sha256 else None,
        total_params=total,
        active_params=active,
        expert_params=expert,
        n_layers=layers,
        n_experts=n_experts,
        n_experts_used=n_used if n_experts > 1 else 0,
        quantization=quant,
        quantization_source=source,
        tensor_types=dict(by_type.most_common()),
        context_length=_int(value(f"{arch}.context_length")),
        embedding_length=_int(value(f"{arch}.embedding_length")),
        head_count=_int(value(f"{arch}.attention.head_count")),
        head_count_kv=_int(value(f"{arch}.attention.head_count_kv")) or _int(value(f"{arch}.attention.head_count")),
        vocab_size=vocab,
        has_chat_template=isinstance(template, str) and bool(template.strip()),
        chat_template=template if isinstance(template, str) else "",
    )


# llama.cpp's compute buffers and runtime on top of weights and KV cache; generous for small models.
_OVERHEAD_BYTES = 512 * 1024**2


def memory_needed(info: ModelInfo, n_ctx: int, n_gpu_layers: int = 0) -> tuple[int, int]:
    """(host bytes, GPU bytes) to run the model: weights of the layers each side holds plus an f16 KV cache."""
    layers = info.n_layers or 1
    on_gpu = layers if n_gpu_layers < 0 else min(n_gpu_layers, layers)
    head_dim = (info.embedding_length or 0) // (info.head_count or 1)
    kv_per_layer = 2 * n_ctx * (info.head_count_kv or 0) * head_dim * 2  # K and V, f16
    weights_per_layer = info.file_size / layers
    gpu = int(on_gpu * (weights_per_layer + kv_per_layer))
    host = int((layers - on_gpu) * (weights_per_layer + kv_per_layer)) + _OVERHEAD_BYTES
    return host, gpu


def available_memory() -> int | None:
    """MemAvailable from /proc/meminfo (Linux), or None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_fits(models: ModelInfo | list[ModelInfo], n_ctx: int, n_gpu_layers: int = 0) -> None:
    """Refuse before loading when the host side cannot fit (every model of a run together: a critic beside its
    drafter), instead of swapping or being killed mid-run."""
    infos = models if isinstance(models, list) else [models]
    host = sum(memory_needed(info, n_ctx, n_gpu_layers)[0] for info in infos)
    free = available_memory()
    if free is not None and host > free:
        gib = 1024**3
        what = " + ".join(str(info.path) for info in infos)
        raise ModelError(
            f"{what}: needs about {host / gib:.1f} GiB of RAM at n_ctx={n_ctx} with {n_gpu_layers} GPU layers, "
            f"{free / gib:.1f} GiB available; lower --n-ctx, offload layers with --n-gpu-layers, "
            "or use a smaller quantization" + (" or an endpoint for one of the models" if len(infos) > 1 else "")
        )


def format_info(info: ModelInfo) -> str:
    """The human-readable block `python -m eval.models inspect` prints."""

    def params(n: int) -> str:
        return f"{n:,} ({_human(n)})"

    if info.is_moe:
        experts = f"{info.n_experts} per layer, {info.n_experts_used} used per token"
        share = f", {info.active_params / info.total_params:.0%} of total" if info.total_params else ""
        active = f"{params(info.active_params)}{share}"
    else:
        experts, active = "none (dense)", f"{params(info.active_params)} (dense: all)"
    how = "general.file_type" if info.quantization_source == "file_type" else "most common weight type"
    rows = [
        ("file", info.path),
        ("name", info.name or "-"),
        ("architecture", info.architecture),
        ("parameters", params(info.total_params)),
        ("active/token", active),
        ("layers", str(info.n_layers) if info.n_layers is not None else "-"),
        ("experts", experts),
        ("quantization", f"{info.quantization} ({how})"),
        ("context", f"{info.context_length:,} tokens" if info.context_length else "-"),
        ("vocabulary", f"{info.vocab_size:,} tokens" if info.vocab_size else "-"),
        ("chat template", "yes" if info.has_chat_template else "no"),
        ("size", f"{info.file_size:,} bytes ({info.file_size / 2**20:,.1f} MiB)"),
        ("sha256", info.sha256 or "(not computed)"),
    ]
    return "\n".join(f"{k:<14}{v}" for k, v in rows)


# -- reading -------------------------------------------------------------------------------


class _HeaderReader(GGUFReader):
    """GGUFReader that reads each metadata array in one step.

    The stock reader builds one numpy view per array element, which takes 10-20 s for a 150k-token
    vocabulary. Numeric arrays are read whole here; long string arrays (tokens, merges) are stepped over
    and keep only their length (their contents() is empty): inspection never needs the vocabulary itself.
    """

    _LONG = 64  # string arrays up to this length (tags, languages) are read as usual

    def _get_field_parts(self, orig_offs: int, raw_type: int):
        if raw_type != GGUFValueType.ARRAY or self.byte_order != "I":
            return super()._get_field_parts(orig_offs, raw_type)
        offs = orig_offs
        raw_itype = self._get(offs, np.uint32)
        alen = self._get(offs + 4, np.uint64)
        if len(raw_itype) != 1 or len(alen) != 1:
            raise ValueError("metadata array header runs past the end of the file")
        offs += 12
        itype, count = GGUFValueType(int(raw_itype[0])), int(alen[0])
        nptype = self.gguf_scalar_to_np.get(itype)
        if nptype is not None:
            items = self._get(offs, nptype, count)
            if len(items) != count:
                raise ValueError("metadata array runs past the end of the file")
            return offs + int(items.nbytes) - orig_offs, [raw_itype, alen, items], [2], [GGUFValueType.ARRAY, itype]
        if itype == GGUFValueType.STRING and count > self._LONG:
            buf = memoryview(self.data)  # type: ignore[arg-type]  # numpy's stubs give __buffer__ only on 3.12+
            unpack, limit = struct.Struct("<Q").unpack_from, len(buf)
            for _ in range(count):
                if offs + 8 > limit:
                    raise ValueError("metadata string array runs past the end of the file")
                offs += 8 + unpack(buf, offs)[0]
            if offs > limit:
                raise ValueError("metadata string array runs past the end of the file")
            return offs - orig_offs, [raw_itype, alen], [], [GGUFValueType.ARRAY, itype]
        return super()._get_field_parts(orig_offs, raw_type)

    def _build_tensors(self, start_offs: int, fields: list[Any]) -> None:
        # Name a truncated file as such, before numpy fails to shape the missing bytes.
        from gguf import GGML_QUANT_SIZES

        for field in fields:
            _, name, _, dims, raw_dtype, offset = field.parts
            try:
                block, size = GGML_QUANT_SIZES[GGMLQuantizationType(int(raw_dtype[0]))]
            except (ValueError, KeyError):
                raise ValueError(
                    f"tensor {bytes(name).decode(errors='replace')} has unknown type {int(raw_dtype[0])}"
                ) from None
            end = int(start_offs) + int(offset[0]) + int(np.prod(dims.astype(object))) * size // block
            if end > len(self.data):
                raise ValueError(
                    f"tensor {bytes(name).decode(errors='replace')} runs to byte {end:,}, "
                    f"the file has {len(self.data):,}"
                )
        super()._build_tensors(start_offs, fields)


def _open(path: Path) -> GGUFReader:
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise ModelError(f"{path}: {e.strerror or e}") from None
    if magic != b"GGUF":
        raise ModelError(f"{path}: not a GGUF file (bad magic bytes)")
    try:
        try:
            return _HeaderReader(path)
        except (TypeError, AttributeError):  # a gguf release whose reader internals differ: the slow, stock way
            return GGUFReader(path)
    except (ValueError, KeyError, IndexError, OverflowError, OSError, struct.error) as e:
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ModelError(f"{path}: unreadable GGUF header, the file is truncated or corrupt ({detail})") from None


def _array_len(field: Any) -> int:
    # kv field parts: key length, key bytes, value type, item type, item count, ...
    return int(field.parts[4][0])


def _int(v: Any) -> int | None:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _type_name(t: Any) -> str:
    try:
        return GGMLQuantizationType(int(t)).name
    except ValueError:
        return f"type{int(t)}"


def _file_type_name(ft: Any) -> str | None:
    ft = _int(ft)
    if ft is None:
        return None
    try:
        member = LlamaFileType(ft)
    except ValueError:
        return None
    if member == LlamaFileType.GUESSED:
        return None
    return member.name.removeprefix("MOSTLY_").removeprefix("ALL_")


def _human(n: int) -> str:
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}" if n < 10 * scale else f"{n / scale:.1f}{unit}"
    return str(n)
