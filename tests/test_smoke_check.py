"""The last step of every Ollama build: the built programs load the small model and generate.

The failure path runs real processes that die of SIGILL, as a binary built for instructions this
CPU lacks does; the pass path (live) runs the smoke check on each pinned build.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from qwq_ollama.engines.build_steps import BuildStep
from qwq_ollama.engines.cpu_features import RECORD, Choice
from qwq_ollama.engines.install import OllamaBinary, finish_build
from qwq_ollama.engines.smoke_check import smoke_check
from qwq_ollama.errors import EnvironmentProblem

DIES_OF_SIGILL = (
    "#!/bin/sh\n[ \"$1\" = -v ] && {{ echo 'ollama version is {v}'; exit 0; }}\nkill -ILL $$\n"
)


def executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def fail_to_finish(scratch: Path, prefix: Path, tmp_path: Path) -> EnvironmentProblem:
    steps = BuildStep("0.34.4", tmp_path / "logs")
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    with pytest.raises(EnvironmentProblem) as caught:
        finish_build(scratch, prefix, Choice(("AVX2",), {}, "test CPU"), steps, gguf)
    return caught.value


def test_a_daemon_that_dies_of_sigill_is_not_moved_into_place(tmp_path: Path) -> None:
    scratch, prefix = tmp_path / "scratch", tmp_path / "tools" / "ollama-0.34.4"
    executable(scratch / "bin" / "ollama", DIES_OF_SIGILL.format(v="0.34.4"))
    error = fail_to_finish(scratch, prefix, tmp_path)
    message = str(error)
    assert error.exit_code == 2
    assert "\n" not in message
    assert "failed at step 'smoke check'" in message
    assert "ollama died of an illegal instruction" in message
    assert "QWQ_OLLAMA_CPU_OPTIONS" in message  # the fix
    assert "install-ollama --version 0.34.4" in message  # how to retry
    assert not prefix.exists()
    assert not (scratch / RECORD).exists()


def test_a_llama_server_that_dies_of_sigill_is_named(tmp_path: Path) -> None:
    scratch, prefix = tmp_path / "scratch", tmp_path / "tools" / "ollama-0.34.4"
    executable(scratch / "bin" / "ollama", "#!/bin/sh\nexit 0\n")
    executable(scratch / "lib" / "ollama" / "llama-server", "#!/bin/sh\nkill -ILL $$\n")
    message = str(fail_to_finish(scratch, prefix, tmp_path))
    assert "llama-server died of an illegal instruction" in message
    assert "SIGILL" in message  # quoted from what the process said
    assert not prefix.exists()


def test_each_pinned_build_loads_the_small_model_and_generates(
    ollama_binary: OllamaBinary, small_gguf: Path, tmp_path: Path
) -> None:
    if ollama_binary.origin != "built":
        pytest.skip(f"{ollama_binary.path} is not our build")
    prefix = ollama_binary.path.parent.parent
    smoke_check(prefix, small_gguf, tmp_path)
    logs = sorted(p.name for p in tmp_path.iterdir())
    assert "smoke-ollama.log" in logs
    has_server = (prefix / "lib" / "ollama" / "llama-server").exists()
    assert ("smoke-llama-server.log" in logs) == has_server
