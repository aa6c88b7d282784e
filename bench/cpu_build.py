"""What the portable CPU build costs: small-model decode speed of the pinned llama-server with
its CPU backend built for fewer instruction sets, side by side in one run.

Our builds use every instruction set this CPU lists and a probe showed it runs (AMX never;
qwq_ollama/engines/cpu_features.py). Here the same llama-server binary runs with `libggml-cpu.so`
swapped (LD_LIBRARY_PATH; its RUNPATH is $ORIGIN, which LD_LIBRARY_PATH precedes) for ggml's CPU
backend built from the same llama.cpp tree at fixed x86-64 levels:

- `built`: the build in the tools cache (what the tests, the demo and the bench use);
- `x86-64-v3`: AVX2, FMA, F16C, BMI2 (x86 CPUs since 2013-2015), no AVX-512;
- `x86-64-v2`: SSE4.2 only (the oldest ggml level beyond plain x86-64).

Each round runs every build once, in turn, so a busy machine slows all alike; figures are the
median over --runs rounds of llama-server's own decode rate (`timings.predicted_per_second`)
for --tokens tokens at temperature 0, and the ratio is against `built` in the same round.

    .venv/bin/python bench/cpu_build.py [--runs N] [--tokens N] [--version V]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qwq_ollama.catalog.builtin_weights import ensure_smollm2  # noqa: E402
from qwq_ollama.engines import cpu_features  # noqa: E402
from qwq_ollama.engines.install import CURRENT, PINNED, ensure_ollama, prefix_for  # noqa: E402
from qwq_ollama.engines.llama_server import LlamaServer  # noqa: E402
from qwq_ollama.engines.private_daemon import free_port  # noqa: E402
from qwq_ollama.paths import tools_dir  # noqa: E402

LEVELS = {
    "x86-64-v3": ("SSE42", "AVX", "AVX2", "FMA", "F16C", "BMI2"),
    "x86-64-v2": ("SSE42",),
}
PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."


def build_level(tree: Path, name: str, options: tuple[str, ...], work: Path) -> Path:
    """ggml's CPU backend alone, from the build's llama.cpp tree, at one level: a folder
    holding only `libggml-cpu.so*`."""
    build = work / f"ggml-{name}"
    cmake = shutil.which("cmake") or str(Path(sys.executable).parent / "cmake")
    # The whole tree (ggml alone is not standalone in the sdist), building one target.
    configure = [
        cmake,
        "-S",
        str(tree),
        "-B",
        str(build),
        "-G",
        "Ninja",
        "-DLLAMA_BUILD_TESTS=OFF",
        "-DLLAMA_BUILD_EXAMPLES=OFF",
        "-DLLAMA_BUILD_TOOLS=OFF",
        "-DLLAMA_BUILD_SERVER=OFF",
        "-DLLAMA_CURL=OFF",
        "-DCMAKE_BUILD_TYPE=Release",
        "-DBUILD_SHARED_LIBS=ON",
        "-DGGML_NATIVE=OFF",
        "-DGGML_BACKEND_DL=OFF",
        "-DGGML_OPENMP=OFF",
        "-DGGML_CPU_ALL_VARIANTS=OFF",
        *cpu_features.cmake_options(options),
    ]
    for cmd in (configure, [cmake, "--build", str(build), "--target", "ggml-cpu"]):
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(
                f"{' '.join(cmd[:3])} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
            )
    only = work / f"lib-{name}"
    only.mkdir(exist_ok=True)
    for lib in build.rglob("libggml-cpu.so*"):
        shutil.copy2(lib, only / lib.name, follow_symlinks=False)
    if not any(only.iterdir()):
        raise SystemExit(f"no libggml-cpu.so under {build}")
    return only


def decode_rate(server: Path, gguf: Path, lib: Path | None, tokens: int) -> float:
    port = free_port()
    argv = [
        str(server),
        "--model",
        str(gguf),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--ctx-size",
        "2048",
        "--threads",
        str(os.cpu_count() or 2),
        "--parallel",
        "1",
    ]
    env = {"LD_LIBRARY_PATH": str(lib)} if lib else {}
    with LlamaServer(argv, f"http://127.0.0.1:{port}", env=env, startup_timeout=120):
        reply = httpx.post(
            f"http://127.0.0.1:{port}/completion",
            timeout=600,
            json={
                "prompt": PROMPT,
                "n_predict": tokens,
                "temperature": 0.0,
                "seed": 1,
                "ignore_eos": True,
                "cache_prompt": False,
            },
        )
        reply.raise_for_status()
        return float(reply.json()["timings"]["predicted_per_second"])


def _listed(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--version", default=CURRENT)
    options = parser.parse_args(argv)
    pin = PINNED[options.version].llama_cpp
    if pin is None:
        raise SystemExit(f"Ollama {options.version} has no llama-server to swap a backend under")
    ensure_ollama(options.version)
    prefix = prefix_for(options.version)
    server = prefix / "lib" / "ollama" / "llama-server"
    tree = tools_dir() / "build" / f"ollama-{options.version}" / "llama.cpp"
    built = cpu_features.read_record(prefix) or {}
    gguf = ensure_smollm2()
    with tempfile.TemporaryDirectory(prefix="qwq-cpu-bench-") as tmp:
        libs: dict[str, Path | None] = {"built": None}
        for name, level in LEVELS.items():
            print(f"building ggml-cpu at {name} ...", file=sys.stderr)
            libs[name] = build_level(tree, name, level, Path(tmp))
        rates: dict[str, list[float]] = {name: [] for name in libs}
        for round_ in range(options.runs):
            for name, lib in libs.items():
                rates[name].append(decode_rate(server, gguf, lib, options.tokens))
            print(f"round {round_ + 1}/{options.runs} done", file=sys.stderr)
    cpu = cpu_features.cpu_model()
    print(f"cpu:     {cpu}, {os.cpu_count()} cores; {platform.platform()}")
    print(f"ollama:  {options.version}, llama-server b{pin.build} ({server})")
    built_sets = " ".join(str(o) for o in _listed(built.get("options")))
    print(f"built:   {built_sets or 'baseline'} (cpu-features.json)")
    print(
        f"runs:    {options.runs} rounds, {options.tokens} tokens each, SmolLM2-135M Q4_1, "
        "medians\n"
    )
    rows = [("CPU backend", "instruction sets", "decode tok/s", "ratio to built")]
    for name in libs:
        sets = built_sets if name == "built" else " ".join(LEVELS[name])
        ratios = [r / b for r, b in zip(rates[name], rates["built"], strict=True)]
        rows.append(
            (
                name,
                sets,
                f"{statistics.median(rates[name]):.1f}",
                f"{statistics.median(ratios):.2f}x",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for n, row in enumerate(rows):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return 0


if __name__ == "__main__":
    sys.exit(main())
