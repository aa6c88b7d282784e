"""The steps of an Ollama build: each runs with its own log and fails naming itself and the log.

A failure says which step broke (download, go build, cmake configure, ...), why in one line, where
the full log is, and how to retry, so a user can act on it without reading the build code.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from qwq_ollama.atomic import move_into_place, staging_folder
from qwq_ollama.errors import EnvironmentProblem
from qwq_ollama.pypi import download_distribution
from qwq_ollama.weights_file import sha256_file


def minutes(seconds: float) -> str:
    """Elapsed time as a person reads it: 42s, 3m05s."""
    whole = int(seconds)
    return f"{whole}s" if whole < 60 else f"{whole // 60}m{whole % 60:02d}s"


NETWORK_TROUBLE = re.compile(
    r"dial tcp|no such host|connection refused|i/o timeout|proxyconnect"
    r"|Temporary failure in name resolution|Network is unreachable"
    r"|NewConnectionError|ConnectTimeout"
)


class BuildStep:
    """One Ollama version's build log folder; `run` runs a named step with its own log."""

    def __init__(
        self, version: str, log_dir: Path, report: Callable[[str], None] | None = None
    ) -> None:
        self.version = version
        self.log_dir = log_dir
        self._started: set[str] = set()  # steps whose log this build has begun
        self.report = report or (lambda _line: None)  # progress: one line per step's start/end
        self.began = time.monotonic()

    def elapsed(self) -> str:
        return minutes(time.monotonic() - self.began)

    def log(self, step: str) -> Path:
        return self.log_dir / f"{step.replace(' ', '-')}.log"

    def run(
        self,
        step: str,
        cmd: list[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        check: bool = True,
    ) -> str:
        """Run `cmd`, all output into the step's log; return this command's output.

        `check=False` lets a non-zero exit through, for programs whose --help exits 1.
        """
        log = self.log(step)
        log.parent.mkdir(parents=True, exist_ok=True)
        step_began = time.monotonic()
        self.report(f"Ollama v{self.version}: {step} ({self.elapsed()} in; log: {log})")
        with open(log, "a" if step in self._started else "w") as out:
            self._started.add(step)
            out.write(f"$ {shlex.join(cmd)}\n")
            out.flush()
            start = out.tell()
            try:
                proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
            except OSError as exc:
                raise self.failed(step, f"cannot run {cmd[0]} ({exc.strerror or exc})") from None
        with open(log, errors="replace") as written:
            written.seek(start)
            text = written.read()
        if check and proc.returncode != 0:
            raise self.failed(step, _reason(text))
        took = minutes(time.monotonic() - step_began)
        self.report(f"Ollama v{self.version}: {step} done in {took} ({self.elapsed()} in)")
        return text

    def note(self, step: str, text: str) -> None:
        """Add a line to a step's log (what the build decided, for whoever reads the log)."""
        log = self.log(step)
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a" if step in self._started else "w") as out:
            self._started.add(step)
            out.write(text.rstrip("\n") + "\n")

    def failed(self, step: str, reason: str) -> EnvironmentProblem:
        log = f" (log: {self.log(step)})" if self.log(step).exists() else ""
        return EnvironmentProblem(
            f"building Ollama v{self.version} failed at step '{step}': {reason}{log}; fix "
            f"that, then retry with `qwq-ollama install-ollama --version {self.version}` or "
            "`make ollama`"
        )

    def pip_download(self, requirement: str, dest: Path, sha256: str | None = None) -> Path:
        """The source distribution of `requirement` from PyPI (never a wheel), into `dest`,
        checked against its pinned hash before it is published there."""
        with staging_folder(dest / "sdist") as tmp:
            try:
                sdist = download_distribution(requirement, Path(tmp), sdist=True)
            except EnvironmentProblem as exc:
                raise self.failed("download", str(exc)) from None
            if sha256 and sha256_file(sdist) != sha256:
                raise self.failed(
                    "download", f"{sdist.name} does not have the pinned sha256 {sha256}"
                )
            target = dest / sdist.name
            move_into_place(sdist, target)
        return target


def _reason(log_text: str) -> str:
    if NETWORK_TROUBLE.search(log_text):
        return (
            "could not reach the network (the Go module proxy or PyPI); check network "
            "access, GOPROXY or pip's index settings"
        )
    lines = [ln.strip() for ln in log_text.splitlines() if ln.strip()]
    first_error = next((ln for ln in lines if re.search(r"(?i)\berror\b|\bfatal\b", ln)), None)
    return (first_error or (lines[-1] if lines else "no output"))[:200]
