"""Read Ollama's HTTP answers: /api/tags, /api/show's parameters and FROM line.

Pure functions with no HTTP stack behind them, so that the client and the quick `create` path
(which runs before anything heavy is imported) read the daemon's answers the same way. The
typed answers built from them are in `answers`.
"""

from __future__ import annotations

import re
from typing import Any


def listed_digests(tags: Any) -> dict[str, str]:
    """`{name:tag: manifest digest}` from a GET /api/tags answer.

    >>> listed_digests({"models": [{"name": "a:latest", "digest": "f00"}]})
    {'a:latest': 'f00'}
    >>> listed_digests({"models": None})
    {}
    """
    return {str(m["name"]): str(m["digest"]) for m in tags.get("models") or []}


def tag_name(model: str) -> str:
    """The name /api/tags lists a model under (`:latest` when no tag is given).

    >>> tag_name("qwq-fixed"), tag_name("ns/qwq:q4"), tag_name("host:1234/m")
    ('qwq-fixed:latest', 'ns/qwq:q4', 'host:1234/m:latest')
    """
    return model if ":" in model.rsplit("/", 1)[-1] else f"{model}:latest"


def blob_digest_of(modelfile: str) -> str | None:
    """The weights blob digest from /api/show's modelfile (`FROM …/blobs/sha256-<hex>`)."""
    match = re.search(r"^FROM \S*sha256[-:]([0-9a-f]{64})\s*$", modelfile, re.MULTILINE)
    return f"sha256:{match.group(1)}" if match else None


def parse_show_parameters(text: str) -> dict[str, Any]:
    """Read /api/show's `parameters` text (`name  <Go %#v value>` per line) back into values.

    >>> parse_show_parameters('num_ctx    16384\\nstop    "<|im_end|>"\\nstop "x"\\ntop_p 0.95')
    {'num_ctx': 16384, 'stop': ['<|im_end|>', 'x'], 'top_p': 0.95}
    """
    import ast

    from qwq_ollama.catalog.parameters import INT_PARAMETERS, LIST_PARAMETERS

    values: dict[str, Any] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        name, _, raw = line.strip().partition(" ")
        raw = raw.strip()
        value: Any
        if raw.startswith('"'):
            value = ast.literal_eval(raw)  # Go's %#v quoting is a subset of Python's
        elif raw in ("true", "false"):
            value = raw == "true"
        elif re.fullmatch(r"-?\d+", raw):
            value = int(raw)
        else:
            value = float(raw)
            # Ollama keeps parameters as JSON numbers (float64), so large ints print as 1.2e+07.
            if name in INT_PARAMETERS and value.is_integer():
                value = int(value)
        if name in LIST_PARAMETERS:
            values.setdefault(name, []).append(value)
        else:
            values[name] = value
    return values
