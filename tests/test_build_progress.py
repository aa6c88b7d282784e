"""Progress on long work, on stderr and silenced by -q: an Ollama build (why it starts, about
how long, each step with its log and the time so far), the first render's Go checker build, a
GGUF copy (each phase and the copier's byte bar)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from qwq_ollama.engines import install
from qwq_ollama.engines.build_steps import BuildStep, minutes
from qwq_ollama.errors import EnvironmentProblem


def test_each_step_reports_its_start_and_its_time(tmp_path: Path) -> None:
    heard: list[str] = []
    steps = BuildStep("0.34.4", tmp_path / "logs", heard.append)
    steps.run("go build", ["sh", "-c", "echo built"])
    log = tmp_path / "logs" / "go-build.log"
    assert heard[0] == f"Ollama v0.34.4: go build (0s in; log: {log})"
    assert re.fullmatch(r"Ollama v0\.34\.4: go build done in \d+s \(\d+s in\)", heard[1])
    with pytest.raises(EnvironmentProblem):
        steps.run("cmake build", ["sh", "-c", "echo broken >&2; exit 3"])
    assert len(heard) == 3 and "cmake build (" in heard[2]  # started, never said done


def test_minutes_read_as_a_person_reads_them() -> None:
    assert [minutes(s) for s in (0, 42.9, 60, 185)] == ["0s", "42s", "1m00s", "3m05s"]


def test_a_build_says_why_it_starts_before_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("QWQ_OLLAMA_TOOLS", str(tmp_path / "tools"))
    monkeypatch.setenv("QWQ_OLLAMA_BINARY", "")
    heard: list[str] = []
    built: list[str] = []
    monkeypatch.setattr(install, "build_ollama", lambda version, report: built.append(version))
    install.ensure_ollama("0.34.4", report=heard.append)
    assert built == ["0.34.4"]
    assert heard == [
        f"building Ollama v0.34.4 once: no such build in {tmp_path / 'tools'} nor on PATH; "
        "about 5-10 minutes on two cores (docs/ollama-versions.md)"
    ]


def test_the_first_render_says_it_builds_the_go_checker(tmp_path: Path) -> None:
    from .conftest import run_cli

    env = {"QWQ_OLLAMA_TOOLS": str(tmp_path / "tools")}
    said = "building the template checker with Go, once (about 20 s; then cached)\n"
    first = run_cli("render", "--out", str(tmp_path / "a"), env=env)
    assert first.returncode == 0, first.stderr
    assert first.stderr.startswith(said)
    again = run_cli("render", "--out", str(tmp_path / "b"), env=env)
    assert again.returncode == 0 and said not in again.stderr
    own = {"QWQ_OLLAMA_TOOLS": str(tmp_path / "other-tools")}  # a build to come, but -q
    quiet = run_cli("render", "--out", str(tmp_path / "q"), "-q", env=own)
    assert quiet.returncode == 0 and said not in quiet.stderr


def test_a_gguf_copy_says_each_phase_and_q_silences_it(small_gguf: Path, tmp_path: Path) -> None:
    from .conftest import run_cli

    args = ("embed-template", "qwq-fixed", str(small_gguf), "--out")
    loud = run_cli(*args, str(tmp_path / "a.gguf"))
    assert loud.returncode == 0, loud.stderr
    assert loud.stdout.startswith("wrote ") and loud.stdout.count("\n") == 1  # stdout: the answer
    assert re.search(r"^  copying \d+ tensors \([\d.]+ GB\) to ", loud.stderr, re.M), loud.stderr
    assert "  checking every tensor of the copy against the source\n" in loud.stderr
    quiet = run_cli(*args, str(tmp_path / "b.gguf"), "-q")
    assert (quiet.returncode, quiet.stderr) == (0, "")
