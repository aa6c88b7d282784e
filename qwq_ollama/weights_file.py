"""A weights file on disk: its SHA-256 (the digest Ollama names blobs by) and its GGUF magic."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable

GGUF_MAGIC = b"GGUF"


def sha256_file(
    path: str | os.PathLike[str],
    chunk: int = 1 << 22,
    on_bytes: Callable[[int], None] | None = None,
) -> str:
    """Hex SHA-256 of a whole file, read in large blocks (hashlib releases the GIL meanwhile).

    `on_bytes(done)` hears the bytes hashed so far after each block: a 20 GB file takes a while.
    """
    sha = hashlib.sha256()
    done = 0
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            sha.update(block)
            done += len(block)
            if on_bytes is not None:
                on_bytes(done)
    return sha.hexdigest()


def leading_magic(path: str | os.PathLike[str]) -> bytes:
    """The file's first bytes, as many as GGUF_MAGIC has: cheap, and enough to refuse another
    file type before anything slow (hashing, uploading, parsing) starts."""
    with open(path, "rb") as handle:
        return handle.read(len(GGUF_MAGIC))
