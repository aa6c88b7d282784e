"""The user's path: Ollama already runs (any supported version) and `make models` registers the
catalog with it, with no Go toolchain and no `ollama` binary anywhere on PATH, building nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from qwq_ollama.engines.install import OllamaBinary
from qwq_ollama.engines.private_daemon import OllamaDaemon

from .conftest import ROOT, run_cli

QWQ_VARIANTS = ("qwq-fixed", "qwq-noprefill", "qwq-minp", "qwq-baseline")


def _path_without(*programs: str) -> str:
    """PATH minus every folder that holds one of `programs`."""
    folders = os.environ.get("PATH", "").split(os.pathsep)
    kept = [f for f in folders if not any(os.access(Path(f) / p, os.X_OK) for p in programs)]
    return os.pathsep.join(kept)


def test_make_models_registers_on_the_users_daemon_and_builds_nothing(
        ollama_binary: OllamaBinary, small_gguf: Path, tmp_path: Path) -> None:
    path = _path_without("go", "ollama")
    assert shutil.which("go", path=path) is None and shutil.which("ollama", path=path) is None
    no_tools = tmp_path / "tools"  # where a build would land: it must stay absent
    with OllamaDaemon(ollama_binary.path, tmp_path / "models") as users:
        env = {**os.environ, "PATH": path, "OLLAMA_HOST": users.host,
               "QWQ_OLLAMA_TOOLS": str(no_tools), "QWQ_OLLAMA_BINARY": ""}
        made = subprocess.run(["make", "models", "WEIGHTS=smollm2-135m"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=600)
        assert made.returncode == 0, made.stdout + made.stderr
        for name in QWQ_VARIANTS:  # `make models` registers the QwQ family unless told
            assert f"created {name}" in made.stdout
        assert "qwen3" not in made.stdout
        # Prompts and registration of every variant; a generation where the small model can
        # answer (it does not reason, so only the no-prefill variant yields an answer).
        checked = run_cli("validate", *QWQ_VARIANTS, "--weights", "smollm2-135m", "--checks",
                          "fidelity,registration", env=env)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        # a fixed seed: unseeded, the 135M model sometimes falls into a loop, which validate
        # rightly fails
        answered = run_cli("validate", "qwq-noprefill", "--weights", "smollm2-135m", "--seed", "1",
                           env=env)
        assert answered.returncode == 0, answered.stdout + answered.stderr
        assert f"Ollama {ollama_binary.version} at {users.host}" in run_cli(
            "doctor", "--weights", "smollm2-135m", env=env).stdout
    assert not no_tools.exists()
