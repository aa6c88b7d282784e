"""The fleet commands over 1, 2 and 3 private daemons, wall time beside the one-host time.

For each fleet size N, N fresh daemons (loopback ports, empty temporary models dirs, started
outside the timed regions) get, through the real command line: `create` (cold: the small model
imported on each), `create` again (warm: nothing to do) and `validate --checks
fidelity,registration`. Each figure is the median over --runs fleets of that size.

    .venv/bin/python bench/fleet.py [--runs N] [--parallel P] [--version V]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from qwq_ollama.catalog.builtin_weights import ensure_smollm2
from qwq_ollama.engines.install import CURRENT, ensure_ollama
from qwq_ollama.engines.private_daemon import OllamaDaemon

STEPS = {
    "create (cold)": ["create", "-q"],
    "create (warm)": ["create", "-q"],
    "validate": ["validate", "--checks", "fidelity,registration"],
}


def timed(args: list[str], hosts: list[str], parallel: int) -> float:
    """One command over the hosts, as a user runs it; seconds of wall time."""
    argv = [
        sys.executable,
        "-m",
        "qwq_ollama",
        *args,
        "--weights",
        "smollm2-135m",
        "--parallel",
        str(parallel),
        *[a for h in hosts for a in ("--host", h)],
    ]
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return seconds


def one_fleet(size: int, binary: Path, parallel: int) -> dict[str, float]:
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="qwq-fleet-") as tmp:
        daemons = [
            stack.enter_context(OllamaDaemon(binary, Path(tmp) / f"m{i}")) for i in range(size)
        ]
        return {
            step: timed(args, [d.host for d in daemons], parallel) for step, args in STEPS.items()
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--version", default=CURRENT)
    options = parser.parse_args()
    binary = ensure_ollama(options.version).path
    ensure_smollm2()
    print(
        f"Ollama {options.version}, {os.cpu_count()} CPUs ({platform.machine()}), "
        f"--parallel {options.parallel}, median of {options.runs} runs"
    )
    print(f"{'step':<15}" + "".join(f"{f'{n} host(s)':>12} {'x 1 host':>9}" for n in (1, 2, 3)))
    medians: dict[int, dict[str, float]] = {}
    for size in (1, 2, 3):
        runs = [one_fleet(size, binary, options.parallel) for _ in range(options.runs)]
        medians[size] = {s: statistics.median(r[s] for r in runs) for s in STEPS}
    for step in STEPS:
        base = medians[1][step]
        print(
            f"{step:<15}"
            + "".join(
                f"{medians[n][step]:>11.2f}s {medians[n][step] / base:>8.2f}x" for n in (1, 2, 3)
            )
        )


if __name__ == "__main__":
    main()
