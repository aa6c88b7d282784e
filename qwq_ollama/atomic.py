"""Write files so that a reader sees the old content or the new, never half of either."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write to a temporary file beside `path`, fsync it, then rename it over `path`."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """UTF-8, newlines exactly as given (no platform translation)."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_many_atomic(files: dict[Path, str]) -> None:
    """Write several files, each atomically, after all have been encoded.

    Encoding first means a bad value stops the run before any file is touched.
    """
    encoded = {Path(p): text.encode("utf-8") for p, text in files.items()}
    for path, data in encoded.items():
        write_bytes_atomic(path, data)
