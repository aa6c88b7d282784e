"""What a daemon on this machine runs with: its models folder and settings, read from /proc.

Ollama's HTTP API reports neither where a daemon keeps its models nor its flash-attention and
KV-cache settings. When the daemon runs on this machine (a loopback address), its process can be
found and its environment read: Linux only, and only as its own user or root. Anything else
returns None, and callers say that the fact is unknown rather than guess.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from qwq_ollama.daemon.host import DEFAULT_HOST, resolve_host
from qwq_ollama.errors import QwqOllamaError
from qwq_ollama.facts import import_copies

PROC = Path("/proc")
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "[::1]")


@dataclass(frozen=True)
class DaemonProcess:
    pid: int
    environment: dict[str, str]  # the daemon's OLLAMA_* variables, and HOME

    def setting(self, name: str) -> str | None:
        return self.environment.get(name) or None

    @property
    def models_dir(self) -> Path:
        """OLLAMA_MODELS, else ~/.ollama/models of the daemon's own HOME (envconfig.Models)."""
        configured = self.setting("OLLAMA_MODELS")
        if configured:
            return Path(configured)
        return Path(self.environment.get("HOME", "~")).expanduser() / ".ollama" / "models"


def local_daemon(host_url: str, proc: Path = PROC) -> DaemonProcess | None:
    """The `ollama serve` process that listens on this loopback URL's port, if it can be read."""
    parts = urlsplit(host_url)
    if parts.hostname not in LOOPBACK_NAMES and not str(parts.hostname).startswith("127."):
        return None
    for entry in _entries(proc):
        found = _serving(entry)
        if found is not None and _port_of(found.environment) == parts.port:
            return found
    return None


def _entries(proc: Path) -> list[Path]:
    try:
        return [p for p in proc.iterdir() if p.name.isdigit()]
    except OSError:
        return []


def _serving(entry: Path) -> DaemonProcess | None:
    """The process as a DaemonProcess if it is `ollama serve` and readable, else None."""
    try:
        argv = (entry / "cmdline").read_bytes().split(b"\0")
        if len(argv) < 2 or os.path.basename(argv[0]) != b"ollama" or argv[1] != b"serve":
            return None
        raw = (entry / "environ").read_bytes().split(b"\0")
    except OSError:  # gone meanwhile, or another user's
        return None
    environment = {}
    for item in raw:
        name, _, value = item.decode("utf-8", "replace").partition("=")
        if name.startswith("OLLAMA_") or name == "HOME":
            environment[name] = value
    return DaemonProcess(int(entry.name), environment)


def _port_of(environment: dict[str, str]) -> int | None:
    try:
        return urlsplit(resolve_host(environment.get("OLLAMA_HOST") or DEFAULT_HOST)).port
    except (ValueError, QwqOllamaError):  # a value the daemon would refuse: not ours to match
        return None


def import_space_problem(
    size: int, version: str, models_dir: Path, blob_present: bool
) -> str | None:
    """Why importing a GGUF of `size` bytes would run out of disk in `models_dir`, or None.

    Said before the upload starts, so that a 20 GB import never fails half-way: a daemon from
    0.30 to 0.34.0 also writes a converted copy of the file while it validates it; from 0.34.1
    the upload is the model's layer (facts.import_copies).
    """
    copies = import_copies(version) - (1 if blob_present else 0)
    if copies <= 0:
        return None
    try:
        free = shutil.disk_usage(models_dir).free
    except OSError:
        return None
    need = size * copies
    if free >= need:
        return None
    return (
        f"not enough disk space: Ollama {version} needs about {need / 1e9:.1f} GB free in "
        f"{models_dir} for this import ({_what_is_written(copies, blob_present)}), and "
        f"{free / 1e9:.1f} GB are free; "
        "free some space there (or point OLLAMA_MODELS at a larger disk), then run create "
        "again"
    )


def _what_is_written(copies: int, blob_present: bool) -> str:
    if copies == 1 and not blob_present:
        return "the upload"
    checking = "the copy it writes while checking the file"
    return checking if blob_present else f"the upload and {checking}"
