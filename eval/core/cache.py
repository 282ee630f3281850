"""Where the evaluator keeps what it builds once (assembled models, the guideline store) and the file hashes it
remembers. Nothing here touches the network."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def cache_dir() -> Path:
    root = (
        os.environ.get("CLINICAL_EVAL_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "clinical-eval"
    )
    return Path(root)


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def model_sha256(path: Path) -> str:
    """sha256 of a model file, remembered by (path, size, mtime): hashing a 26 GB Mixtral takes minutes, every run."""
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    memo = cache_dir() / "sha256.json"
    try:
        known: dict[str, str] = json.loads(memo.read_text())
    except (OSError, ValueError):
        known = {}
    if key not in known:
        known[key] = sha256_file(path)
        tmp = memo.with_suffix(f".{os.getpid()}.tmp")
        try:
            memo.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(known, indent=1))
            os.replace(tmp, memo)
        except OSError:  # a memo only (a full disk, a read-only home): the file is hashed again next time
            tmp.unlink(missing_ok=True)
    return known[key]
