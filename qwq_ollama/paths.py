"""Where the project keeps its caches (in the checkout, git-ignored) and the Ollama builds it
makes (per user, shared by every clone): all overridable.

Worked out with os.path and handed out as Path. The quick `create` check
(daemon/quick_create.py) runs before anything has imported pathlib, which costs a tenth of that
check, so it takes the plain-string `cache_root`.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from pathlib import Path


def _path(text: str) -> Path:
    from pathlib import Path

    return Path(text)


def checkout_root() -> str:
    """The checkout this package lives in (the parent of `qwq_ollama/`), or the working dir."""
    here = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    if os.path.exists(os.path.join(here, "pyproject.toml")):
        return here
    return os.getcwd()


def default_catalog_path() -> Path:
    """`QWQ_OLLAMA_CATALOG`, else `modelfiles/models.yaml` under the working dir or the checkout."""
    configured = os.environ.get("QWQ_OLLAMA_CATALOG")
    if configured:
        return _path(configured)
    local = os.path.join("modelfiles", "models.yaml")
    if os.path.exists(local):
        return _path(local)
    return _path(os.path.join(checkout_root(), "modelfiles", "models.yaml"))


def cache_root() -> str:
    """`QWQ_OLLAMA_CACHE`, else `.cache/` in the checkout: small model, build inputs, digests."""
    return os.environ.get("QWQ_OLLAMA_CACHE") or os.path.join(checkout_root(), ".cache")


def cache_dir() -> Path:
    return _path(cache_root())


def tools_dir() -> Path:
    """`QWQ_OLLAMA_TOOLS`, else `qwq-ollama/tools` in the user's cache: built Ollama versions.

    Per user, not per checkout, so every clone on the machine shares one build of each version.
    """
    configured = os.environ.get("QWQ_OLLAMA_TOOLS")
    if configured:
        return _path(configured)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return _path(os.path.join(cache, "qwq-ollama", "tools"))
