"""Where the Ollama daemon is: `--host`, $OLLAMA_HOST or the default, as one full URL.

Kept apart from the client so that the quick no-change check of `create` can use it without
importing the HTTP stack.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

DEFAULT_HOST = "127.0.0.1:11434"


def resolve_host(host: str | None = None) -> str:
    """`host`, else $OLLAMA_HOST, else the default; as a full URL.

    >>> resolve_host("localhost")
    'http://localhost:11434'
    >>> resolve_host("0.0.0.0:1234")
    'http://127.0.0.1:1234'
    """
    value = (host or os.environ.get("OLLAMA_HOST") or DEFAULT_HOST).strip().strip("\"'")
    if "://" not in value:
        value = "http://" + value
    parts = urlsplit(value)
    hostname = parts.hostname or "127.0.0.1"
    if hostname in ("0.0.0.0", "::"):
        hostname = "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "https" else 11434)
    if ":" in hostname:
        hostname = f"[{hostname}]"
    return f"{parts.scheme}://{hostname}:{port}{parts.path.rstrip('/')}"
