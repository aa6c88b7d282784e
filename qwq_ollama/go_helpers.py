"""Our small Go programs, built once into the tools cache and run with JSON in and out.

Two questions only Go code answers exactly: whether Ollama's text/template parses a TEMPLATE
(catalog/gotemplate.py), and what a pinned Ollama release's own parsers make of a model's output
(checks/parse_back.py). Each program is package data (`data/<name>/main.go`); its build is keyed
by the source's hash and the module it requires, staged beside its place and moved in whole, so a
failed or interrupted build leaves nothing that looks built.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from qwq_ollama.atomic import staged_file
from qwq_ollama.paths import tools_dir

BUILD_TIMEOUT = 300.0
RUN_TIMEOUT = 120.0


@dataclass(frozen=True)
class GoHelper:
    """One program: `name` is its folder under data/ and its binary's name, `what` how messages
    name it, `unavailable` the caller's one-line error, `requires` the module it is built
    against ("github.com/ollama/ollama v0.34.4"; empty for the standard library alone)."""

    name: str
    what: str
    unavailable: Callable[[str], Exception]
    requires: str = ""
    build_timeout: float = BUILD_TIMEOUT  # a build that fetches its module takes longer

    def source(self) -> bytes:
        return files("qwq_ollama").joinpath(f"data/{self.name}/main.go").read_bytes()

    def _built_path(self, source: bytes) -> Path:
        pinned = f"-{self.requires.rsplit(' v', 1)[-1]}" if self.requires else ""
        digest = hashlib.sha256(source).hexdigest()[:16]
        return tools_dir() / f"{self.name}{pinned}-{digest}" / self.name

    def needs_build(self) -> bool:
        """Whether the next use builds it first (so a command can say so before the wait)."""
        return not self._built_path(self.source()).is_file()

    def binary(self) -> Path:
        """The built program, building it first if this source and module have no build yet."""
        source = self.source()
        binary = self._built_path(source)
        if not binary.is_file():
            self._build(source, binary)
        return binary

    def run(self, cases: list[Any]) -> list[Any]:
        """The program's answers, one per case, or the caller's error in one line."""
        binary = self.binary()
        try:
            done = subprocess.run(
                [str(binary)],
                input=json.dumps(cases),
                text=True,
                capture_output=True,
                timeout=RUN_TIMEOUT,
            )
            results = json.loads(done.stdout) if done.returncode == 0 else None
        except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
            raise self.unavailable(f"{self.what} {binary} failed: {exc}") from None
        if not isinstance(results, list) or len(results) != len(cases):
            raise self.unavailable(f"{self.what} {binary} failed: {last_line(done.stderr)}")
        return results

    def _build(self, source: bytes, binary: Path) -> None:
        from qwq_ollama.go_toolchain import find_go

        go = find_go((1, 24))  # the go.mod written below
        if go is None:
            raise self.unavailable("Go is not installed (no `go` on PATH)")
        # The user's GOFLAGS and workspace must not reach a program outside their module, nor
        # a toolchain switch happen. With a required module, -mod=mod lets `go build` resolve
        # it (the module cache, else the Go proxy) and write go.sum itself.
        env = {
            **os.environ,
            "GOTOOLCHAIN": "local",
            "GOFLAGS": "-mod=mod" if self.requires else "",
            "GOWORK": "off",
            "CGO_ENABLED": "0",
        }
        against = f" against {self.requires}" if self.requires else ""
        try:
            with staged_file(binary) as staged:
                (staged.parent / "main.go").write_bytes(source)
                if self.requires:
                    (staged.parent / "go.mod").write_text(
                        f"module {self.name}\n\ngo 1.24\n\nrequire {self.requires}\n"
                    )
                done = subprocess.run(
                    [go, "build", "-o", staged.name, "." if self.requires else "main.go"],
                    cwd=staged.parent,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=self.build_timeout,
                )
                if done.returncode != 0:
                    raise self.unavailable(
                        f"`go build` of {self.what}{against} failed: {last_line(done.stderr)}"
                    )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise self.unavailable(f"cannot build {self.what} in {binary.parent}: {exc}") from None


def last_line(text: str) -> str:
    """The last non-blank line of a program's stderr: where Go puts the error that matters."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
