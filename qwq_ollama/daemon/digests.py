"""SHA-256 of weight files, computed once per (path, size, mtime) and remembered.

`ollama create -f` re-hashes a 20 GB GGUF for every model made from it; we hash it once, and
can start early: `hash_ahead` hashes in a background thread while the caller does other work.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from filelock import FileLock

from qwq_ollama.atomic import write_text_atomic
from qwq_ollama.paths import cache_dir
from qwq_ollama.weights_file import sha256_file


def _index_path() -> Path:
    return cache_dir() / "digests.json"


def _key(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


class _Hashing(threading.Thread):
    """One file hashed in the background; `result()` waits for it (and re-raises)."""

    def __init__(self, path: Path) -> None:
        super().__init__(name=f"hash {path.name}", daemon=True)
        self.path = path
        self.digest: str | None = None
        self.error: BaseException | None = None
        self.done = 0  # bytes hashed so far, for the progress of whoever waits

    def run(self) -> None:
        try:
            self.digest = _sha256(self.path, lambda n: setattr(self, "done", n))
        except BaseException as exc:  # handed to the thread that asks for the result
            self.error = exc

    def result(self, on_bytes: ByteProgress | None = None) -> str:
        report = on_bytes or (lambda _done: None)
        while self.is_alive():
            self.join(0.2)
            report(self.done)
        report(self.done)  # also when it finished before anyone asked: it was this run's work
        if self.error is not None:
            raise self.error
        return str(self.digest)


_ahead: dict[str, _Hashing] = {}
ByteProgress = Callable[[int], None]  # bytes done so far


def hash_ahead(paths: Iterable[Path]) -> None:
    """Start hashing, in background threads, the files that the index does not know yet.

    hashlib and file reads release the GIL, so on a second core the hash of the small model
    (about 60 ms) hides entirely behind the imports and rendering that a `create` does first.
    `file_digest` picks the result up; only it writes the index.
    """
    try:
        index = _read(_index_path())
        for path in paths:
            key = _key(path)
            if key not in index and key not in _ahead:
                _ahead[key] = _Hashing(path)
                _ahead[key].start()
    except OSError:
        return  # file_digest will meet the same problem and report it properly


def _sha256(path: Path, on_bytes: ByteProgress | None = None) -> str:
    return f"sha256:{sha256_file(path, on_bytes=on_bytes)}"


def file_digest(path: Path, on_bytes: ByteProgress | None = None) -> str:
    """`sha256:<hex>` of the file, from the index when its size and mtime are unchanged.

    `on_bytes` hears the hashing's progress, when there is hashing to do.
    """
    index_path = _index_path()
    index_path.parent.mkdir(parents=True, exist_ok=True)
    key = _key(path)
    with FileLock(str(index_path) + ".lock"):
        index = _read(index_path)
        if key in index:
            return index[key]
    pending = _ahead.pop(key, None)
    digest = pending.result(on_bytes) if pending is not None else _sha256(path, on_bytes)
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
