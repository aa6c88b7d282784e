"""SHA-256 of weight files, computed once per (path, size, mtime) and remembered.

`ollama create -f` re-hashes a 20 GB GGUF for every model made from it; we hash it once.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from filelock import FileLock

from .atomic import write_text_atomic
from .paths import cache_dir


def _index_path() -> Path:
    return cache_dir() / "digests.json"


def _key(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def file_digest(path: Path, chunk: int = 1 << 22) -> str:
    """`sha256:<hex>` of the file, from the index when its size and mtime are unchanged."""
    index_path = _index_path()
    index_path.parent.mkdir(parents=True, exist_ok=True)
    key = _key(path)
    with FileLock(str(index_path) + ".lock"):
        index = _read(index_path)
        if key in index:
            return index[key]
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            sha.update(block)
    digest = f"sha256:{sha.hexdigest()}"
    with FileLock(str(index_path) + ".lock"):
        index = _read(index_path)
        index[key] = digest
        write_text_atomic(index_path, json.dumps(index, indent=1, sort_keys=True) + "\n")
    return digest


def _read(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
