"""Parse Ollama TEMPLATEs with Go's own text/template before any file is written.

Ollama parses a TEMPLATE with Go's text/template plus four functions of its own and then walks
it once more (template/template.go, v0.24.0). No Python reading of text/template would be
faithful, so a small Go program of ours does both (data/gotmplcheck/main.go). It is built on
first use with the local Go toolchain into the tools cache, in a folder named by the hash of its
source: an edited source gets a fresh build, and concurrent runs share one.

Without Go (or if the build fails) the check cannot run: GoUnavailable says why, and `render`
reports that in one line and still writes. The daemon parses every template `create` sends, so
a bad one is still refused there, just later.
"""

from __future__ import annotations

from pathlib import Path

from qwq_ollama.go_helpers import GoHelper


class GoUnavailable(Exception):
    """The Go check cannot run here; the message says why, in one line."""


CHECKER = GoHelper("gotmplcheck", "the template checker", GoUnavailable)


def parse_problems(templates: list[str]) -> list[tuple[int, str] | None]:
    """For each template, None if Ollama would parse it, else (line, message); line 0 if none."""
    results = CHECKER.run(templates)
    return [None if r is None else (int(r["line"]), str(r["message"])) for r in results]


def helper_binary() -> Path:
    """The built checker, building it first if this source has not been built yet."""
    return CHECKER.binary()
