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

import hashlib
import json
import os
import shutil
import subprocess
from importlib.resources import files
from pathlib import Path

from qwq_ollama.atomic import staged_file
from qwq_ollama.paths import tools_dir

HELPER = "gotmplcheck"
BUILD_TIMEOUT = 300.0


class GoUnavailable(Exception):
    """The Go check cannot run here; the message says why, in one line."""


def parse_problems(templates: list[str]) -> list[tuple[int, str] | None]:
    """For each template, None if Ollama would parse it, else (line, message); line 0 if none."""
    binary = helper_binary()
    try:
        done = subprocess.run(
            [str(binary)], input=json.dumps(templates), text=True, capture_output=True, timeout=120
        )
        results = json.loads(done.stdout) if done.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
        raise GoUnavailable(f"the Go template checker {binary} failed: {exc}") from None
    if not isinstance(results, list) or len(results) != len(templates):
        raise GoUnavailable(f"the Go template checker {binary} failed: {_last_line(done.stderr)}")
    return [None if r is None else (int(r["line"]), str(r["message"])) for r in results]


def helper_source() -> bytes:
    return files("qwq_ollama").joinpath(f"data/{HELPER}/main.go").read_bytes()


def helper_binary() -> Path:
    """The built checker, building it first if this source has not been built yet."""
    source = helper_source()
    folder = tools_dir() / f"{HELPER}-{hashlib.sha256(source).hexdigest()[:16]}"
    binary = folder / HELPER
    if not binary.is_file():
        _build(source, folder, binary)
    return binary


def _build(source: bytes, folder: Path, binary: Path) -> None:
    go = shutil.which("go")
    if go is None:
        raise GoUnavailable("Go is not installed (no `go` on PATH)")
    # Only the standard library is used: no module, no network, no toolchain switch, and the
    # user's GOFLAGS (e.g. -mod=vendor) must not apply to a file outside their module.
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "", "GOWORK": "off", "CGO_ENABLED": "0"}
    try:
        with staged_file(binary) as staged:
            (staged.parent / "main.go").write_bytes(source)
            done = subprocess.run(
                [go, "build", "-o", staged.name, "main.go"],
                cwd=staged.parent,
                env=env,
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT,
            )
            if done.returncode != 0:
                raise GoUnavailable(
                    f"`go build` of the template checker failed: {_last_line(done.stderr)}"
                )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GoUnavailable(f"cannot build the Go template checker in {folder}: {exc}") from None


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
