"""Where the project keeps its tools and caches: all git-ignored, all overridable."""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The checkout this package lives in (the parent of `qwq_ollama/`), or the working dir."""
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").exists():
        return here
    return Path.cwd()


def cache_dir() -> Path:
    """`QWQ_OLLAMA_CACHE`, else `.cache/` in the checkout: small model, build inputs, digests."""
    configured = os.environ.get("QWQ_OLLAMA_CACHE")
    return Path(configured) if configured else project_root() / ".cache"


def bin_dir() -> Path:
    """`QWQ_OLLAMA_BIN`, else `.local/bin/` in the checkout: where a built `ollama` goes."""
    configured = os.environ.get("QWQ_OLLAMA_BIN")
    return Path(configured) if configured else project_root() / ".local" / "bin"
