"""`make bench`: qwq-ollama measured side by side with the plain `ollama` CLI.

Every figure is the median over --runs runs, printed beside a baseline measured in the same runs,
with their ratio (tool / baseline, the median of the per-run ratios) and whether the target is
met. Daemons are private (loopback, temporary models dir) and started outside timed regions;
the user's own daemon, models and the project's `.cache/` are never touched.

    .venv/bin/python bench/run.py [--runs N] [--only cold,startup,loop,parallel,hash]
    .venv/bin/python bench/run.py --only qwq-shaped [--versions 0.32.15,0.24.0]

`qwq-shaped` (never run by default) writes a QwQ-32B-shaped GGUF (about 20 GB, sparse) and times
the 4 variants' cold create and warm re-run over it on each daemon version; it needs about twice
the file's size free on the temporary directory's disk.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from bisect import bisect_right
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import ollama  # noqa: E402

from qwq_ollama.catalog.builtin_weights import FILENAME as GGUF_NAME, ensure_smollm2  # noqa: E402
from qwq_ollama.catalog.schema import load_catalog  # noqa: E402
from qwq_ollama.checks.loops import LoopDetector  # noqa: E402
from qwq_ollama.daemon.client import OllamaAPI  # noqa: E402
from qwq_ollama.daemon.registry import Registrar  # noqa: E402
from qwq_ollama.engines.install import COMPAT, CURRENT, PREVIOUS, ensure_ollama  # noqa: E402
from qwq_ollama.engines.private_daemon import OllamaDaemon  # noqa: E402
from qwq_ollama.facts import import_copies  # noqa: E402

SECTIONS = ("cold", "startup", "loop", "parallel", "hash")
OPTIONAL = ("qwq-shaped",)  # minutes and ~40 GB of disk: only when asked for
WEIGHTS = "smollm2-135m"
QWQ_WEIGHTS = "qwq-32b-shaped"
QWQ_VERSIONS = (CURRENT, PREVIOUS, COMPAT)
QWQ_VARIANTS = 4
LOOP_VARIANT = "qwq-fixed"  # repeat_penalty 1.0 in the catalog; temperature 0 per request
LOOP_NUM_PREDICT = 1000
LOOP_TARGET_TOKENS = 200
# Each loops at temperature 0 on SmolLM2-135M: a story that turns into a cycle after ~300
# tokens of real text, a poem that cycles almost at once, an explanation that paraphrases itself.
LOOP_PROMPTS = {
    "story": "Tell me a story.",
    "poem": "Write a poem about the sea.",
    "explanation": "Explain how a car engine works.",
}
PARALLEL_PROMPTS = (
    "Tell me a story about a dragon.",
    "Explain how rain forms.",
    "Describe a busy city street.",
    "Write a letter to a friend.",
)
PARALLEL_NUM_PREDICT = 64
DAEMON_ENV = {"OLLAMA_KEEP_ALIVE": "30m"}


class BenchError(RuntimeError):
    pass


@dataclass
class Row:
    label: str
    tool: str
    baseline: str
    ratio: str
    target: str = "-"
    met: str = "-"


# -- small helpers -----------------------------------------------------------------------------


def _shown(path: Path) -> str:
    """A path relative to the checkout where possible: no machine paths in printed tables."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return path.name


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def secs(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def ratio(tool: list[float], base: list[float]) -> float:
    """Median of the per-run ratios tool/baseline (each pair measured in the same run)."""
    return median([t / b for t, b in zip(tool, base, strict=True)])


def speed(r: float) -> str:
    """A time ratio tool/baseline in words."""
    return f"{1 / r:.1f}x faster" if r <= 1 else f"{r:.1f}x slower"


def yes_no(ok: bool) -> str:
    return "yes" if ok else "no"


def run_timed(cmd: list[str], env: dict[str, str], *, ok_codes: tuple[int, ...] = (0,)) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode not in ok_codes:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise BenchError(f"{' '.join(cmd[:3])} … exited {proc.returncode}: {' | '.join(tail)}")
    return elapsed


def dir_bytes(path: Path) -> int:
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def base_env() -> dict[str, str]:
    """The caller's environment without anything that could point at another daemon or catalog."""
    drop = {"OLLAMA_HOST", "QWQ_OLLAMA_CATALOG", "QWQ_OLLAMA_CACHE"}
    return {k: v for k, v in os.environ.items() if k not in drop}


# -- machine facts -----------------------------------------------------------------------------


def machine_facts(ollama_version: str) -> list[str]:
    cpu = "unknown"
    mem_kb = 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"date:     {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"cpu:      {cpu}, {cores} cores usable ({os.cpu_count()} online)",
        f"ram:      {mem_kb / 1024 / 1024:.1f} GiB",
        f"os:       {platform.platform()}",
        f"ollama:   {ollama_version}",
        f"python:   {platform.python_version()} ({_shown(Path(sys.executable))})",
        f"load avg: {load} (1/5/15 min, at start)",
    ]


# -- workspace ---------------------------------------------------------------------------------


@dataclass
class Workspace:
    """A snapshot of the catalog (others may edit the repo meanwhile) and the tools to run."""

    root: Path
    catalog: Path
    gguf: Path
    ollama: Path
    qwq: Path

    def cache(self, where: Path) -> Path:
        """A fresh QWQ_OLLAMA_CACHE: empty digest index, the small GGUF linked in (no download)."""
        models = where / "models"
        models.mkdir(parents=True, exist_ok=True)
        (models / GGUF_NAME).symlink_to(self.gguf)
        return where


def make_workspace(tmp: Path, ollama_bin: Path, gguf: Path) -> Workspace:
    project = tmp / "project"
    shutil.copytree(ROOT / "modelfiles", project / "modelfiles")
    shutil.copytree(ROOT / "templates", project / "templates")
    qwq = Path(sys.executable).parent / "qwq-ollama"
    if not qwq.exists():
        raise BenchError(f"{qwq} not found: run `make deps` first")
    return Workspace(tmp, project / "modelfiles" / "models.yaml", gguf, ollama_bin, qwq)


@contextmanager
def daemon(ws: Workspace, where: Path, **env: str) -> Iterator[OllamaDaemon]:
    with OllamaDaemon(
        ws.ollama, where / "models", state_dir=where / "state", env={**DAEMON_ENV, **env}
    ) as running:
        yield running


# -- cold and warm registration ----------------------------------------------------------------


@dataclass
class CreateRun:
    cold: float
    warm: float
    bytes: int
    warm_full: float = 0.0  # the tool only: the re-run with its stamp removed


def tool_run(ws: Workspace, run_dir: Path, weights: str = WEIGHTS) -> CreateRun:
    env = {**base_env(), "QWQ_OLLAMA_CACHE": str(ws.cache(run_dir / "cache"))}
    with daemon(ws, run_dir) as d:
        cmd = [
            str(ws.qwq),
            "create",
            "--weights",
            weights,
            "--catalog",
            str(ws.catalog),
            "--host",
            d.host,
        ]
        cold = run_timed(cmd, env)
        size = dir_bytes(d.models_dir)
        warm = run_timed(cmd, env)
        shutil.rmtree(run_dir / "cache" / "create-stamps")
        warm_full = run_timed(cmd, env)
    return CreateRun(cold, warm, size, warm_full)


def cli_run(
    ws: Workspace, run_dir: Path, names: list[str], weights: str = WEIGHTS, warm: bool = True
) -> CreateRun:
    env = {**base_env(), "QWQ_OLLAMA_CACHE": str(ws.cache(run_dir / "cache"))}
    out = run_dir / "rendered"
    run_timed(
        [
            str(ws.qwq),
            "render",
            "--weights",
            weights,
            "--catalog",
            str(ws.catalog),
            "--out",
            str(out),
        ],
        env,
    )
    loop = 'for n in "$@"; do "$OLLAMA" create "$n" -f "$DIR/$n.Modelfile" || exit 1; done'
    with daemon(ws, run_dir) as d:
        shell_env = {
            **env,
            "OLLAMA_HOST": d.host,
            "OLLAMA": str(ws.ollama),
            "DIR": str(out),
            "HOME": str(run_dir / "home"),
        }
        cmd = ["bash", "-c", loop, "bash", *names]
        cold = run_timed(cmd, shell_env)
        size = dir_bytes(d.models_dir)
        again = run_timed(cmd, shell_env) if warm else 0.0
    return CreateRun(cold, again, size)


def bench_create(
    ws: Workspace, runs: int, log: Callable[[str], None]
) -> tuple[list[CreateRun], list[CreateRun]]:
    names = list(load_catalog(ws.catalog).variants)
    tools, clis = [], []
    for i in range(runs):
        with tempfile.TemporaryDirectory(dir=ws.root, prefix="create-") as tmp:
            order = ("tool", "cli") if i % 2 == 0 else ("cli", "tool")
            for who in order:  # alternate who goes first, so neither always gets a warmer machine
                if who == "tool":
                    tools.append(tool_run(ws, Path(tmp) / "tool"))
                else:
                    clis.append(cli_run(ws, Path(tmp) / "cli", names))
        log(
            f"create run {i + 1}/{runs}: tool cold {secs(tools[-1].cold)} warm "
            f"{secs(tools[-1].warm)} (full check {secs(tools[-1].warm_full)}); CLI cold {secs(clis[-1].cold)} warm {secs(clis[-1].warm)}"
        )
    return tools, clis


def create_rows(tools: list[CreateRun], clis: list[CreateRun], n: int) -> list[Row]:
    tc, cc = [r.cold for r in tools], [r.cold for r in clis]
    tw, cw = [r.warm for r in tools], [r.warm for r in clis]
    tf = [r.warm_full for r in tools]
    tb, cb = [float(r.bytes) for r in tools], [float(r.bytes) for r in clis]
    warm_ratio = ratio(tw, cw)
    warm_ok = warm_ratio <= 1 / 20 and median(tw) < 1.0
    return [
        Row(
            f"cold create, {n} variants, small GGUF",
            secs(median(tc)),
            f"{secs(median(cc))} (CLI loop)",
            f"{ratio(tc, cc):.2f}x ({speed(ratio(tc, cc))})",
            "<=1x (no slower)",
            yes_no(ratio(tc, cc) <= 1.0),
        ),
        Row(
            "bytes written to OLLAMA_MODELS (cold)",
            f"{median(tb) / 1e6:.1f} MB",
            f"{median(cb) / 1e6:.1f} MB",
            f"{ratio(tb, cb):.2f}x",
        ),
        Row(
            f"warm re-run, {n} variants, nothing changed",
            secs(median(tw)),
            f"{secs(median(cw))} (CLI loop)",
            f"{warm_ratio:.2f}x ({speed(warm_ratio)})",
            "<=0.05x (20x faster) and < 1 s",
            yes_no(warm_ok),
        ),
        Row(
            "  the same, stamp removed (full check)",
            secs(median(tf)),
            f"{secs(median(cw))} (CLI loop)",
            f"{ratio(tf, cw):.2f}x ({speed(ratio(tf, cw))})",
        ),
    ]


def breakdown_rows(ws: Workspace, runs: int, tools: list[CreateRun]) -> list[Row]:
    """How much of the tool's warm re-run is the bare interpreter start (its floor)."""
    bare = [sys.executable, "-c", "pass"]
    run_timed(bare, base_env())  # page cache, untimed
    started = [run_timed(bare, base_env()) for _ in range(runs)]
    warm = [r.warm for r in tools]
    return [
        Row(
            "  of which: bare interpreter start",
            secs(median(started)),
            f"{secs(median(warm))} (tool warm re-run)",
            f"{ratio(started, warm):.0%} of it",
        ),
    ]


# -- start-up cost -----------------------------------------------------------------------------


def bench_startup(ws: Workspace, runs: int) -> list[Row]:
    env = base_env()
    commands = {
        "python": [sys.executable, "-c", "pass"],
        "help": [str(ws.qwq), "--help"],
        # Exit 1 (stale outputs) still times the whole check.
        "check": [str(ws.qwq), "render", "--check", "--catalog", str(ws.catalog)],
    }
    times: dict[str, list[float]] = {k: [] for k in commands}
    for cmd in commands.values():  # warm the page cache first; not timed
        run_timed(cmd, env, ok_codes=(0, 1))
    for _ in range(runs):
        for key, cmd in commands.items():
            times[key].append(run_timed(cmd, env, ok_codes=(0, 1)))
    py = times["python"]
    rows = []
    for key, label, limit in (
        ("check", "`qwq-ollama render --check` wall time", 0.5),
        ("help", "`qwq-ollama --help` wall time", 0.3),
    ):
        value = median(times[key])
        rows.append(
            Row(
                label,
                secs(value),
                f"{secs(median(py))} (`python -c pass`)",
                f"{ratio(times[key], py):.1f}x",
                f"< {limit} s",
                yes_no(value < limit),
            )
        )
    return rows


# -- loop detector -----------------------------------------------------------------------------


def periodic_suffix_start(text: str, min_repeats: int = 3) -> int | None:
    """Where the text's tail starts to be one block repeated (greedy decoding cycles exactly).

    Found from the whole finished generation, so it does not depend on the detector.
    """
    n = len(text)
    for period in range(1, n // min_repeats + 1):
        start = n - min_repeats * period
        if text[start + period :] == text[start : n - period]:
            while start > 0 and text[start - 1] == text[start - 1 + period]:
                start -= 1
            return start
    return None


def chunk_text(chunk: ollama.ChatResponse) -> str:
    return (chunk.message.thinking or "") + (chunk.message.content or "")


def loop_options() -> dict[str, object]:
    return {"temperature": 0, "num_predict": LOOP_NUM_PREDICT}


@dataclass
class FullRun:
    seconds: float
    tokens: int
    done_reason: str
    loop_start: int | None  # token index


def full_generation(client: ollama.Client, prompt: str) -> FullRun:
    """No detector: stream to the end, then find where the cycle began."""
    start = time.perf_counter()
    pieces: list[str] = []
    last = None
    for last in client.chat(
        model=LOOP_VARIANT,
        messages=[{"role": "user", "content": prompt}],
        stream=True,
        options=loop_options(),
    ):
        if chunk_text(last):
            pieces.append(chunk_text(last))
    seconds = time.perf_counter() - start
    offsets = [0]
    for piece in pieces:
        offsets.append(offsets[-1] + len(piece))
    char = periodic_suffix_start("".join(pieces))
    token = None if char is None else bisect_right(offsets, char) - 1
    eval_count = getattr(last, "eval_count", None) or len(pieces)
    return FullRun(seconds, eval_count, str(getattr(last, "done_reason", "") or "none"), token)


def cut_generation(client: ollama.Client, prompt: str) -> tuple[float, int, object | None]:
    """With the detector: abort the stream the moment it fires. Returns (s, tokens, verdict)."""
    detector = LoopDetector()
    start = time.perf_counter()
    stream = client.chat(
        model=LOOP_VARIANT,
        messages=[{"role": "user", "content": prompt}],
        stream=True,
        options=loop_options(),
    )
    verdict = None
    try:
        for chunk in stream:
            verdict = detector.feed(chunk_text(chunk))
            if verdict is not None:
                break
    finally:
        if isinstance(stream, Generator):  # closes the HTTP stream: Ollama stops generating
            stream.close()
    return time.perf_counter() - start, detector.tokens_seen, verdict


def loop_row(client: ollama.Client, name: str, prompt: str, runs: int) -> Row:
    label = f"runaway generation cut by the loop detector ({name})"
    full = full_generation(client, prompt)
    base = (
        f"ran to {full.tokens} tok ({full.done_reason}, {secs(full.seconds)}); "
        f"loop from tok {full.loop_start if full.loop_start is not None else '?'}"
    )
    cuts = [cut_generation(client, prompt) for _ in range(runs)]
    times, tokens = [c[0] for c in cuts], [float(c[1]) for c in cuts]
    verdicts = [c[2] for c in cuts]
    if any(v is None for v in verdicts) or full.loop_start is None:
        what = "never fired" if any(v is None for v in verdicts) else "fired"
        return Row(
            label,
            f"{what}; {median(tokens):.0f} tok",
            base,
            f"{median(tokens) / LOOP_NUM_PREDICT:.2f}x tokens",
            f"cut <= {LOOP_TARGET_TOKENS} tokens after loop start",
            "no",
        )
    late = median([v.detected_at_token - full.loop_start for v in verdicts])  # type: ignore
    tool = f"cut at {median(tokens):.0f} tok ({late:.0f} after loop start), {secs(median(times))}"
    return Row(
        label,
        tool,
        base,
        f"{median(tokens) / LOOP_NUM_PREDICT:.2f}x tokens, "
        f"{median(times) / full.seconds:.2f}x time",
        f"cut <= {LOOP_TARGET_TOKENS} tokens after loop start",
        yes_no(late <= LOOP_TARGET_TOKENS),
    )


# -- parallel requests -------------------------------------------------------------------------


def register_and_load(d: OllamaDaemon, ws: Workspace) -> ollama.Client:
    Registrar(OllamaAPI(d.host), load_catalog(ws.catalog)).create([LOOP_VARIANT], WEIGHTS)
    client = ollama.Client(host=d.host)
    client.chat(
        model=LOOP_VARIANT,
        messages=[{"role": "user", "content": "Hi"}],
        options={"temperature": 0, "num_predict": 1},
    )  # load the runner, untimed
    return client


def one_prompt(host: str, prompt: str) -> int:
    reply = ollama.Client(host=host).chat(
        model=LOOP_VARIANT,
        messages=[{"role": "user", "content": prompt}],
        options={"temperature": 0, "num_predict": PARALLEL_NUM_PREDICT},
    )
    return int(reply.eval_count or 0)


def batch(host: str, workers: int) -> tuple[float, int]:
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        tokens = sum(pool.map(lambda p: one_prompt(host, p), PARALLEL_PROMPTS))
    return time.perf_counter() - start, tokens


def bench_parallel(serial: OllamaDaemon, parallel: OllamaDaemon, runs: int) -> Row:
    par: list[tuple[float, int]] = []
    ser: list[tuple[float, int]] = []
    for i in range(runs):
        if i % 2 == 0:
            par.append(batch(parallel.host, 2))
            ser.append(batch(serial.host, 1))
        else:
            ser.append(batch(serial.host, 1))
            par.append(batch(parallel.host, 2))
    pt, st = [p[0] for p in par], [s[0] for s in ser]
    n = len(PARALLEL_PROMPTS)
    return Row(
        f"{n} prompts x {PARALLEL_NUM_PREDICT} tok: NUM_PARALLEL=2, 2 threads",
        f"{secs(median(pt))} ({median([p[1] for p in par]):.0f} tok)",
        f"{secs(median(st))} ({median([s[1] for s in ser]):.0f} tok; NUM_PARALLEL=1, "
        "one at a time)",
        f"{ratio(pt, st):.2f}x ({speed(ratio(pt, st))})",
    )


# -- hashing ----------------------------------------------------------------------------


def hash_rate(path: Path, runs: int) -> float:
    """sha256 MB/s over the file, as digests.file_digest reads it (4 MiB blocks); median."""
    size = path.stat().st_size
    rates = []
    for i in range(runs + 1):
        sha = hashlib.sha256()
        start = time.perf_counter()
        with open(path, "rb") as handle:
            while block := handle.read(1 << 22):
                sha.update(block)
        if i:  # the first pass only brings the file into the page cache
            rates.append(size / 1e6 / (time.perf_counter() - start))
    return median(rates)


def hash_rows(rate: float, size: int) -> list[Row]:
    """What hashing costs per byte here; the 20 GB rows themselves are measured (qwq-shaped)."""
    return [
        Row(
            "sha256 throughput (page cache, 4 MiB reads)",
            f"{rate:.0f} MB/s",
            f"over the {size / 1e6:.0f} MB small GGUF",
            "-",
        )
    ]


# -- the 20 GB rows, measured over a QwQ-32B-shaped file ---------------------------------------


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


def write_qwq_shaped(where: Path, tokenizer_from: Path) -> Path:
    """gpu/make_qwq_shaped_gguf.py's Q4_K_M file: real size, zero weights, mostly holes."""
    sys.path.insert(0, str(ROOT / "gpu"))
    from make_qwq_shaped_gguf import (  # type: ignore[import-not-found]  # noqa: PLC0415
        write_qwq_shaped as write,
    )

    out = where / f"{QWQ_WEIGHTS}.gguf"
    write(out, tokenizer_from, mix="q4_k_m")
    return out


def converts(version: str) -> bool:
    """v0.30 to v0.34.0 rewrite an imported GGUF through llama-quantize; v0.24 and, from
    v0.34.1, v0.34 keep the uploaded blob as the model's layer."""
    return import_copies(version) == 2


def cli_loop_need(version: str, size: int) -> int:
    """Free bytes the CLI loop needs at its peak (seen on 0.32.15: from the second create on,
    each create of the same FROM file writes a COPY and converts it again beside the two kept
    copies, so 4x; 0.24 stores the file once)."""
    return (4 if converts(version) else 1) * size + 2_000_000_000


def check_disk(where: Path, size: int, on_disk: int, versions: tuple[str, ...]) -> None:
    """Each daemon's models dir may hold the uploaded blob and, on v0.30-v0.34.0, the
    converted copy (2x)."""
    copies = max(import_copies(v) for v in versions)
    need = copies * size + 2_000_000_000 + (size - on_disk if on_disk < size else 0)
    if free_bytes(where) < need:
        raise BenchError(
            f"qwq-shaped needs {need / 1e9:.1f} GB free under {where}, "
            f"{free_bytes(where) / 1e9:.1f} GB is"
        )


def add_weights_entry(ws: Workspace, gguf: Path) -> None:
    """The catalog snapshot gains one weights entry: the generated file (as gpu/ does)."""
    import yaml  # noqa: PLC0415

    data = yaml.safe_load(ws.catalog.read_text())
    data["weights"][QWQ_WEIGHTS] = {
        "description": "QwQ-32B shapes, zero weights",
        "gguf": str(gguf),
        "license": "Apache-2.0 (Qwen/QwQ-32B)",
    }
    ws.catalog.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def qwq_version_runs(
    ws: Workspace, version: str, size: int, log: Callable[[str], None]
) -> tuple[CreateRun, CreateRun, bool]:
    """One tool run and one CLI loop run on `version`; one models dir on disk at a time."""
    vws = dataclasses.replace(ws, ollama=ensure_ollama(version).path)
    names = list(load_catalog(ws.catalog).variants)
    with tempfile.TemporaryDirectory(dir=ws.root, prefix="qwq-tool-") as tmp:
        tool = tool_run(vws, Path(tmp), QWQ_WEIGHTS)
    log(
        f"{version} tool: cold {secs(tool.cold)} warm {secs(tool.warm)} "
        f"full check {secs(tool.warm_full)}"
    )
    whole = free_bytes(ws.root) >= cli_loop_need(version, size)
    if not whole:  # the first create peaks at 3x, which fits where the loop's 4x does not
        if free_bytes(ws.root) < cli_loop_need(version, size) - size:
            raise BenchError(f"{version} CLI loop: not even its first create fits on this disk")
        log(
            f"{version} CLI loop: needs {cli_loop_need(version, size) / 1e9:.0f} GB free, "
            f"{free_bytes(ws.root) / 1e9:.0f} GB is; timing its first create only, cold"
        )
    with tempfile.TemporaryDirectory(dir=ws.root, prefix="qwq-cli-") as tmp:
        cli = cli_run(vws, Path(tmp), names if whole else names[:1], QWQ_WEIGHTS, warm=whole)
    log(f"{version} CLI loop: cold {secs(cli.cold)} warm {secs(cli.warm) if whole else '-'}")
    return tool, cli, whole


def qwq_rows(version: str, tool: CreateRun, cli: CreateRun, size: int, whole: bool) -> list[Row]:
    tag = f"{size / 1e9:.1f} GB QwQ-shaped, {QWQ_VARIANTS} variants, Ollama {version}"
    if whole:
        rows = create_rows([tool], [cli], QWQ_VARIANTS)
        rows[0].label = f"cold create, {tag}"
        rows[2].label = f"warm re-run, {tag}"
        return rows
    # Only the CLI's first create ran: a lower bound for its loop, so only "faster" is proven.
    bound = tool.cold / cli.cold
    return [
        Row(
            f"cold create, {tag}",
            secs(tool.cold),
            f"{secs(cli.cold)} (CLI, 1st of {QWQ_VARIANTS} creates only)",
            f"<= {bound:.2f}x (bound)",
            "<=1x (no slower)",
            "yes" if bound <= 1 else "unknown",
        ),
        Row(
            "bytes written to OLLAMA_MODELS (cold)",
            f"{tool.bytes / 1e6:.1f} MB",
            f"{cli.bytes / 1e6:.1f} MB (after the 1st create)",
            f"{tool.bytes / cli.bytes:.2f}x",
        ),
        Row(f"warm re-run, {tag}", secs(tool.warm), "not run (disk)", "-"),
        Row("  the same, stamp removed (full check)", secs(tool.warm_full), "not run (disk)", "-"),
    ]


def bench_qwq_shaped(ws: Workspace, versions: list[str], log: Callable[[str], None]) -> list[Row]:
    check_disk(ws.root, 19_849_489_280, 0, tuple(versions))
    gguf = write_qwq_shaped(ws.root, ws.gguf)
    size, on_disk = gguf.stat().st_size, gguf.stat().st_blocks * 512
    log(f"wrote {size / 1e9:.2f} GB QwQ-shaped GGUF ({on_disk / 1e6:.0f} MB on disk)")
    check_disk(ws.root, size, on_disk, tuple(versions))
    add_weights_entry(ws, gguf)
    rows: list[Row] = []
    for version in versions:
        tool, cli, whole = qwq_version_runs(ws, version, size, log)
        rows += qwq_rows(version, tool, cli, size, whole)
    return rows


# -- the table ---------------------------------------------------------------------------------


def print_table(rows: list[Row]) -> None:
    head = Row("measure", "qwq-ollama", "baseline", "ratio (tool/baseline)", "target", "target met")
    cells = [[r.label, r.tool, r.baseline, r.ratio, r.target, r.met] for r in [head, *rows]]
    widths = [max(len(c[i]) for c in cells) for i in range(6)]
    for n, line in enumerate(cells):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per measure (default 5)")
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated subset of: {', '.join(SECTIONS + OPTIONAL)}",
    )
    parser.add_argument(
        "--versions",
        default=",".join(QWQ_VERSIONS),
        help="Ollama versions for qwq-shaped (one run each)",
    )
    args = parser.parse_args(argv)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    if args.runs < 1 or not only <= set(SECTIONS + OPTIONAL):
        parser.error(f"--runs must be >= 1 and --only a subset of {', '.join(SECTIONS + OPTIONAL)}")
    started = time.perf_counter()
    binary, gguf = ensure_ollama(), ensure_smollm2()
    # Byte-compile the package as pip does on a regular install: with PYTHONDONTWRITEBYTECODE
    # set (as on the CI machines) an editable checkout would otherwise recompile every module
    # on every start, and the start-up rows would time the compiler.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "qwq_ollama")], check=True)
    for line in machine_facts(f"{binary.version} ({_shown(binary.path)}, {binary.origin})"):
        print(line)
    print(f"runs:     {args.runs} per measure; figures are medians", flush=True)
    if "qwq-shaped" in only:
        print(f"qwq-shaped: one run per Ollama version ({args.versions})", flush=True)
    print(flush=True)

    def log(text: str) -> None:
        print(f"  [{time.perf_counter() - started:5.0f} s] {text}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="qwq-bench-") as tmp:
        ws = make_workspace(Path(tmp), binary.path, gguf)
        # In-process registration (loop, parallel) uses this cache, not the project's .cache/.
        os.environ["QWQ_OLLAMA_CACHE"] = str(ws.cache(Path(tmp) / "session-cache"))
        rows = collect(ws, args.runs, only, log)
        if "qwq-shaped" in only:
            rows += bench_qwq_shaped(ws, args.versions.split(","), log)
    print_table(rows)
    print(
        f"\nload avg at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
        f"bench took {time.perf_counter() - started:.0f} s"
    )
    return 0


def collect(ws: Workspace, runs: int, only: set[str], log: Callable[[str], None]) -> list[Row]:
    rows: list[Row] = []
    if "cold" in only:
        tools, clis = bench_create(ws, runs, log)
        rows += create_rows(tools, clis, len(load_catalog(ws.catalog).variants))
        rows += breakdown_rows(ws, runs, tools)
    if "startup" in only:
        rows += bench_startup(ws, runs)
        log("start-up measured")
    if only & {"loop", "parallel"}:
        rows += generation_rows(ws, runs, only, log)
    if "hash" in only:
        rows += hash_rows(hash_rate(ws.gguf, runs), ws.gguf.stat().st_size)
        log("hashing measured")
    return rows


def generation_rows(
    ws: Workspace, runs: int, only: set[str], log: Callable[[str], None]
) -> list[Row]:
    rows: list[Row] = []
    with ExitStack() as stack:
        serial = stack.enter_context(daemon(ws, ws.root / "serial", OLLAMA_NUM_PARALLEL="1"))
        client = register_and_load(serial, ws)
        if "loop" in only:
            for name, prompt in LOOP_PROMPTS.items():
                rows.append(loop_row(client, name, prompt, runs))
                log(f"loop ({name}) measured")
        if "parallel" in only:
            parallel = stack.enter_context(
                daemon(ws, ws.root / "parallel", OLLAMA_NUM_PARALLEL="2")
            )
            register_and_load(parallel, ws)
            rows.append(bench_parallel(serial, parallel, runs))
            log("parallel measured")
    return rows


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
