"""Which `ollama` binary, which version: the one on PATH if it is the pinned release, else ours.

Ours is built once with `go install github.com/ollama/ollama@v0.24.0` through the Go module
proxy, the way Ollama's release scripts build it (version stamped, release mode), with the
machine's SIMD enabled, into a project-local bin dir. Go's build cache makes later builds fast.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from qwq_ollama.errors import EnvironmentProblem
from qwq_ollama.paths import bin_dir, cache_dir

PINNED_VERSION = "0.24.0"
MODULE = "github.com/ollama/ollama"
MIN_GO = (1, 26)
# The module zip omits llama.cpp's vendor/ folder; these headers stand in for it.
SYSTEM_HEADERS = {
    "nlohmann/json_fwd.hpp": "nlohmann-json3-dev",
    "stb/stb_image.h": "libstb-dev",
}
MINIAUDIO_SDIST = "miniaudio==1.71"
LDFLAGS = (f"-s -w -X={MODULE}/version.Version={PINNED_VERSION} "
           f"-X={MODULE}/server.mode=release")


@dataclass(frozen=True)
class OllamaBinary:
    path: Path
    version: str
    origin: str  # "env", "PATH" or "built"


@dataclass(frozen=True)
class Lookup:
    """What was found: the binary to use (if any) and what was passed over, for reporting."""

    binary: OllamaBinary | None
    notes: tuple[str, ...]


def binary_version(path: Path) -> str:
    """Ask the binary itself; `-v` prints the client version even with no server around."""
    env = {**os.environ, "OLLAMA_HOST": "127.0.0.1:9"}
    try:
        proc = subprocess.run([str(path), "-v"], capture_output=True, text=True, timeout=30, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EnvironmentProblem(f"{path}: cannot run it ({exc})") from None
    match = re.search(r"version is (\S+)", proc.stdout + proc.stderr)
    return match.group(1) if match else "unknown"


def local_binary_path() -> Path:
    return bin_dir() / "ollama"


def find_ollama(*, allow_other_version: bool | None = None) -> Lookup:
    """$QWQ_OLLAMA_BINARY, else the project's build, else PATH; another version only on opt-in."""
    if allow_other_version is None:
        allow_other_version = os.environ.get("QWQ_OLLAMA_ALLOW_OTHER_VERSION", "") not in ("", "0")
    notes: list[str] = []
    candidates: list[tuple[Path, str]] = []
    if os.environ.get("QWQ_OLLAMA_BINARY"):
        candidates.append((Path(os.environ["QWQ_OLLAMA_BINARY"]), "env"))
    if local_binary_path().exists():
        candidates.append((local_binary_path(), "built"))
    on_path = shutil.which("ollama")
    if on_path:
        candidates.append((Path(on_path), "PATH"))
    for path, origin in candidates:
        version = binary_version(path)
        if version == PINNED_VERSION or allow_other_version:
            return Lookup(OllamaBinary(path, version, origin), tuple(notes))
        notes.append(f"{path} is Ollama {version}, not {PINNED_VERSION}; not used "
                     "(set QWQ_OLLAMA_ALLOW_OTHER_VERSION=1 to use it anyway)")
    return Lookup(None, tuple(notes))


def ensure_ollama(*, allow_other_version: bool | None = None,
                  log: Path | None = None) -> OllamaBinary:
    """A usable pinned Ollama, building it the first time. Safe to call concurrently."""
    found = find_ollama(allow_other_version=allow_other_version).binary
    if found:
        return found
    target = local_binary_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.parent / ".ollama-build.lock")):
        if target.exists() and binary_version(target) == PINNED_VERSION:
            return OllamaBinary(target, PINNED_VERSION, "built")
        build_ollama(target, log=log)
    return OllamaBinary(target, PINNED_VERSION, "built")


def _check_go() -> str:
    go = shutil.which("go")
    if not go:
        raise EnvironmentProblem(
            f"Go {MIN_GO[0]}.{MIN_GO[1]}+ is needed to build Ollama v{PINNED_VERSION}: install it "
            "(https://go.dev/dl) or put an Ollama v0.24.0 binary on PATH")
    out = subprocess.run([go, "version"], capture_output=True, text=True).stdout
    match = re.search(r"go(\d+)\.(\d+)", out)
    if not match or (int(match.group(1)), int(match.group(2))) < MIN_GO:
        raise EnvironmentProblem(f"Go {MIN_GO[0]}.{MIN_GO[1]}+ is needed to build Ollama "
                                 f"v{PINNED_VERSION}; found: {out.strip() or 'unknown'}")
    for compiler in ("gcc", "g++"):
        if not shutil.which(compiler):
            raise EnvironmentProblem(f"{compiler} is needed to build Ollama's C/C++ runner "
                                     "(Debian: apt-get install build-essential)")
    return go


def _check_headers() -> None:
    roots = [Path("/usr/include"), Path("/usr/local/include")]
    roots += [Path(p) for p in os.environ.get("CPATH", "").split(":") if p]
    missing = [pkg for header, pkg in SYSTEM_HEADERS.items()
               if not any((root / header).exists() for root in roots)]
    if missing:
        raise EnvironmentProblem(
            "C++ headers that Ollama's llama.cpp needs are missing: install "
            f"{' '.join(missing)} (Debian: apt-get install -y {' '.join(missing)})")


def miniaudio_include_dir() -> Path:
    """A folder holding `miniaudio/miniaudio.h`, taken from the `miniaudio` sdist on PyPI."""
    include = cache_dir() / "build-inputs" / "include"
    header = include / "miniaudio" / "miniaudio.h"
    if header.exists():
        return include
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
             "--disable-pip-version-check", "-q", "-d", tmp, MINIAUDIO_SDIST],
            capture_output=True, text=True)
        sdists = list(Path(tmp).glob("miniaudio-*.tar.gz"))
        if proc.returncode != 0 or not sdists:
            raise EnvironmentProblem(f"could not download {MINIAUDIO_SDIST} (its header is needed "
                                     "to build Ollama); check pip's access to PyPI")
        with tarfile.open(sdists[0]) as archive:
            member = next(m for m in archive.getmembers()
                          if m.name.endswith("/miniaudio/miniaudio.h"))
            data = archive.extractfile(member).read()  # type: ignore[union-attr]
    header.parent.mkdir(parents=True, exist_ok=True)
    partial = header.with_suffix(".h.tmp")
    partial.write_bytes(data)
    partial.replace(header)
    return include


def build_ollama(target: Path, *, log: Path | None = None) -> None:
    """`go install` into a scratch dir, check the result, then move it into place."""
    go = _check_go()
    _check_headers()
    include = miniaudio_include_dir()
    log = log or cache_dir() / "ollama-build.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        flags = "-O3 -march=native"
        env = {**os.environ, "GOBIN": scratch, "CGO_ENABLED": "1", "GOFLAGS": "-trimpath",
               "CGO_CPPFLAGS": f"-I{include}", "CGO_CFLAGS": flags, "CGO_CXXFLAGS": flags}
        cmd = [go, "install", f"-ldflags={LDFLAGS}", f"{MODULE}@v{PINNED_VERSION}"]
        with open(log, "w") as out:
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        if proc.returncode != 0:
            raise EnvironmentProblem(_explain_build_failure(log))
        built = Path(scratch) / "ollama"
        version = binary_version(built)
        if version != PINNED_VERSION:
            raise EnvironmentProblem(f"the built Ollama reports version {version}, "
                                     f"expected {PINNED_VERSION}; see {log}")
        os.replace(built, target)


def _explain_build_failure(log: Path) -> str:
    text = log.read_text(errors="replace")
    if re.search(r"dial tcp|no such host|connection refused|i/o timeout|proxyconnect", text):
        return ("could not reach the Go module proxy to fetch Ollama v0.24.0 "
                f"(check network access or GOPROXY); log: {log}")
    last = [ln for ln in text.strip().splitlines() if ln.strip()][-1:] or ["no output"]
    return f"building Ollama v{PINNED_VERSION} failed: {last[0][:200]} (full log: {log})"
