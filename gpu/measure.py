#!/usr/bin/env python3
"""Measure where Ollama v0.32/v0.34 puts a model on a GPU, and how fast it then decodes.

Each point: wait until the card's free memory is back at its level (the emulated card's size,
read once before the daemon starts), load MODEL at one num_ctx through /api/generate (greedy, a
short prompt), read /api/ps (size, size_vram), the decode rate from the response (eval_count /
eval_duration), and from the daemon's log what llama-server reported (the free memory it saw,
what --fit projected, layers offloaded, every buffer); then unload. A load whose engine saw the
card off its level (another CUDA context still alive) is kept but marked `counted: false` and
measured again. Smaller cards are emulated by vram_blocker.py, started before the daemon.
`reload` lets Ollama itself reload a model (num_ctx changes between requests, no unload in
between), as a user's clients do. Writes one JSON object per line. Standard library only: it
runs on a bare GPU machine.

    measure.py sweep --ollama BIN --models DIR --model NAME --card 24 --ctx 8192,16384 \
        --kv f16 --flash auto --out points.jsonl --log daemon.log [--idle-used-mib N]
    measure.py reload --ollama BIN --models DIR --card 24 --ctx 17152,16384 --other 8192 \
        --times 3 --out reload.jsonl --log daemon.log
    measure.py bare --ollama-log daemon.log --lib DIR --out bare.jsonl   # the same llama-server, alone
    measure.py fitgrid --lib DIR --gguf FILE --out fit.jsonl             # llama-fit-params estimates
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HOST = "127.0.0.1:11434"
PROMPT = "Write a haiku about memory bandwidth."
BUFFER = re.compile(r"(\w+):\s+(\S+) (model|KV|compute|output|RS) buffer size =\s*([\d.]+) MiB")
DEVICE_FREE = re.compile(r"using device (\S+) \((.*?)\).*- (\d+) MiB free")
OFFLOADED = re.compile(r"offloaded (\d+)/(\d+) layers to GPU")
GPU_MEMORY = re.compile(r'msg="gpu memory".*?available="([^"]+)".*?free="([^"]+)"')
STARTING = re.compile(r'msg="starting llama-server" cmd="([^"]+)"')
FIT = re.compile(r"common_params_fit_impl: (.*)")
FIT_PROJECTED = re.compile(
    r"projected to use (\d+) MiB(?: of device memory)? vs\.? (\d+) MiB of free"
)


def http(method: str, url: str, body: object | None = None, timeout: float = 600) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read() or b"{}")


def gpu_free_mib() -> int:
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=memory.free", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(out.split()[0])


def parse_server_log(text: str) -> dict:
    """What llama-server and the scheduler logged for one load (the last value of each wins:
    --fit's dry runs print buffer sizes too, and the real load comes after them)."""
    buffers: dict[str, float] = {}
    for _comp, backend, kind, mib in BUFFER.findall(text):
        buffers[f"{backend} {kind}"] = float(mib)
    out: dict = {
        "buffers_mib": buffers,
        "gpu_mib": round(sum(v for k, v in buffers.items() if _on_gpu(k)), 2),
        "fit": FIT.findall(text)[-12:],
    }
    if m := FIT_PROJECTED.findall(text):  # the first: the projection for the asked parameters
        out["fit_projected_mib"], out["fit_free_mib"] = int(m[0][0]), int(m[0][1])
    if m := DEVICE_FREE.findall(text):
        out["device"], out["llama_free_mib"] = m[-1][1], int(m[-1][2])
    if m := OFFLOADED.findall(text):
        out["layers_gpu"], out["layers_total"] = int(m[-1][0]), int(m[-1][1])
    if m := GPU_MEMORY.findall(text):
        out["sched_available"], out["sched_free"] = m[-1]
    if m := STARTING.findall(text):
        out["cmd"] = m[-1]
        out.update(_cmd_settings(m[-1]))
    return out


def _on_gpu(key: str) -> bool:
    backend = key.split()[0]
    return not (backend.startswith("CPU") or backend.endswith("_Host") or backend == "BLAS")


def _cmd_settings(cmd: str) -> dict:
    args = shlex.split(cmd)
    flags = {
        "-c": "ctx_arg",
        "-ub": "ubatch",
        "-b": "batch",
        "--flash-attn": "flash_attn",
        "--cache-type-k": "cache_k",
        "-ngl": "ngl",
    }
    found = {}
    for i, arg in enumerate(args[:-1]):
        if arg in flags:
            found[flags[arg]] = args[i + 1]
    return found


class Daemon:
    """One `ollama serve` on HOST with its own environment; its log is read per load."""

    def __init__(self, binary: str, models: str, log: Path, env: dict[str, str]) -> None:
        self.log = log
        full = dict(
            os.environ,
            OLLAMA_HOST=HOST,
            OLLAMA_MODELS=models,
            OLLAMA_NO_CLOUD="1",
            OLLAMA_KEEP_ALIVE="10m",
            **env,
        )
        self.handle = open(log, "a")
        self.proc = subprocess.Popen(
            [binary, "serve"],
            env=full,
            stdout=self.handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for _ in range(120):
            try:
                http("GET", f"http://{HOST}/api/version", timeout=2)
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        raise RuntimeError("ollama serve did not answer in 60 s")

    def offset(self) -> int:
        self.handle.flush()
        return self.log.stat().st_size

    def since(self, offset: int) -> str:
        with open(self.log, "rb") as handle:
            handle.seek(offset)
            return handle.read().decode("utf-8", "replace")

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.handle.close()


def generate(model: str, num_ctx: int, num_predict: int) -> dict:
    """Stream one greedy generation; the last chunk, plus the decode rate by the client's clock
    (Ollama v0.32 aborts a run of one repeated token after 30 and then sends no final chunk
    with eval_count/eval_duration: what zero weights produce)."""
    body = {
        "model": model,
        "prompt": PROMPT,
        "stream": True,
        "keep_alive": "10m",
        "options": {"num_ctx": num_ctx, "num_predict": num_predict, "temperature": 0, "seed": 1},
    }
    req = urllib.request.Request(
        f"http://{HOST}/api/generate",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    stamps, last = [], {}
    with urllib.request.urlopen(req, timeout=600) as resp:
        for line in resp:
            if line.strip():
                stamps.append(time.time())
                last = json.loads(line)
    last.pop("context", None)
    last["chunks"] = len(stamps)
    if len(stamps) > 2:
        last["client_tps"] = round((len(stamps) - 1) / (stamps[-1] - stamps[0]), 2)
    return last


def unload(model: str) -> None:
    http("POST", f"http://{HOST}/api/generate", {"model": model, "keep_alive": 0})
    deadline = time.time() + 60
    while time.time() < deadline and http("GET", f"http://{HOST}/api/ps").get("models"):
        time.sleep(0.3)


def wait_level(level: int, tolerance: int, timeout: float) -> tuple[int, float]:
    """Wait (bounded) until nvidia-smi shows the card's free memory back within `tolerance` MiB
    of `level`: a runner that exited lets go of its memory a little later. Returns the last
    reading and the seconds waited."""
    began = time.time()
    free = gpu_free_mib()
    while abs(free - level) > tolerance and time.time() - began < timeout:
        time.sleep(0.25)
        free = gpu_free_mib()
    return free, round(time.time() - began, 2)


def engine_free(row: dict) -> int | None:
    """The free memory llama-server decided with: --fit's, else the one it logged at start."""
    return row.get("fit_free_mib") or row.get("llama_free_mib")


def on_level(row: dict, tolerance: int, context_max: int) -> bool:
    """The card was at its level before the load, and the engine saw it less no more than one
    CUDA context (its own): no other process's memory was in the way."""
    seen = engine_free(row)
    return (
        seen is not None
        and abs(row["free_before_mib"] - row["card_free_mib"]) <= tolerance
        and row["card_free_mib"] - seen <= context_max
    )


def rate(resp: dict) -> float | None:
    """Ollama's own decode rate when it sent one, else the client's."""
    count, dur = resp.get("eval_count"), resp.get("eval_duration")
    return round(count / (dur / 1e9), 2) if count and dur else resp.get("client_tps")


def point(daemon: Daemon, model: str, num_ctx: int, predict: int, repeats: int) -> dict:
    """Load at num_ctx, decode `repeats` times, read /api/ps and the log, unload."""
    start = daemon.offset()
    began = time.time()
    row: dict = {"num_ctx": num_ctx}
    try:
        responses = [generate(model, num_ctx, predict)]
        ps = http("GET", f"http://{HOST}/api/ps").get("models", [])
        responses += [generate(model, num_ctx, predict) for _ in range(repeats - 1)]
    except (urllib.error.URLError, OSError) as exc:
        body = getattr(exc, "read", lambda: b"")()
        row["error"] = f"{exc} {body[:300]!r}"
        responses, ps = [], []
    if ps:
        row.update(
            size=ps[0]["size"],
            size_vram=ps[0]["size_vram"],
            context_length=ps[0].get("context_length"),
        )
    row["decode_tps"] = [rate(r) for r in responses]
    row["eval_count"] = [r.get("eval_count") or r.get("chunks") for r in responses]
    if responses:
        first = responses[0]
        row.update(
            load_s=round(first.get("load_duration", 0) / 1e9, 2),
            prompt_tokens=first.get("prompt_eval_count"),
            prompt_tps=round(first["prompt_eval_count"] / (first["prompt_eval_duration"] / 1e9), 1)
            if first.get("prompt_eval_duration")
            else None,
        )
    row.update(parse_server_log(daemon.since(start)))
    row["wall_s"] = round(time.time() - began, 1)
    return row


def daemon_env(args: argparse.Namespace) -> dict[str, str]:
    env = {"OLLAMA_KV_CACHE_TYPE": args.kv} if args.kv != "f16" else {}
    if args.flash != "auto":
        env["OLLAMA_FLASH_ATTENTION"] = "1" if args.flash == "on" else "0"
    return env


def emit(row: dict, out: str) -> None:
    with open(out, "a") as handle:
        handle.write(json.dumps(row) + "\n")
    print(
        json.dumps(
            {
                k: row.get(k)
                for k in (
                    "card_gib",
                    "kv",
                    "flash",
                    "num_ctx",
                    "size_vram",
                    "layers_gpu",
                    "ubatch",
                    "free_before_mib",
                    "fit_free_mib",
                    "fit_projected_mib",
                    "counted",
                    "decode_tps",
                    "error",
                    "reload",
                )
            }
        ),
        flush=True,
    )


def sweep(args: argparse.Namespace) -> None:
    level = gpu_free_mib()  # the card: the blocker holds the rest, no daemon yet
    daemon = Daemon(args.ollama, args.models, Path(args.log), daemon_env(args))
    rows: list[dict] = []

    def measure(ctx: int) -> None:
        for attempt in range(args.retries + 1):
            free, waited = wait_level(level, args.tolerance, args.level_timeout)
            row = point(daemon, args.model, ctx, args.predict, args.repeats)
            row.update(
                card_gib=args.card,
                kv=args.kv,
                flash=args.flash,
                model=args.model,
                card_free_mib=level,
                free_before_mib=free,
                level_wait_s=waited,
                attempt=attempt,
                idle_used_mib=args.idle_used_mib,
            )
            row["counted"] = on_level(row, args.tolerance, args.context_max)
            emit(row, args.out)
            unload(args.model)
            if row["counted"] or "error" in row:
                break
        if row["counted"]:
            rows.append(row)

    try:
        for ctx in [int(c) for c in args.ctx.split(",")]:
            measure(ctx)
        for _ in range(args.bisect):
            probe = next_probe(rows, args.step, args.cap)
            if probe is None:
                break
            measure(probe)
    finally:
        daemon.stop()


def reload(args: argparse.Namespace) -> None:
    """Ollama's own reload: a request at `other` num_ctx, then one at each target without an
    unload between (Ollama stops the runner, waits for the memory it expects back, starts a new
    one), `times` times; a cold load of each target first, for the free memory it saw then."""
    level = gpu_free_mib()
    daemon = Daemon(args.ollama, args.models, Path(args.log), daemon_env(args))
    targets = [int(c) for c in args.ctx.split(",")]
    common = dict(
        card_gib=args.card, kv=args.kv, flash=args.flash, model=args.model, card_free_mib=level
    )
    try:
        for target in targets:
            free, waited = wait_level(level, args.tolerance, args.level_timeout)
            row = point(daemon, args.model, target, args.predict, 1)
            row.update(common, free_before_mib=free, level_wait_s=waited, reload="cold")
            row["counted"] = on_level(row, args.tolerance, args.context_max)
            emit(row, args.out)
            for i in range(args.times):
                point(daemon, args.model, args.other, args.predict, 1)  # the other client
                free = gpu_free_mib()  # with the other runner loaded: not the card's level
                row = point(daemon, args.model, target, args.predict, 1)
                row.update(
                    common, free_before_mib=free, reload=f"after num_ctx {args.other}", attempt=i
                )
                emit(row, args.out)
            unload(args.model)
    finally:
        daemon.stop()


def fully_on_gpu(row: dict) -> bool:
    return bool(row.get("size")) and row.get("size") == row.get("size_vram")


def bracket(rows: list[dict]) -> tuple[int | None, int | None]:
    """The largest num_ctx measured fully on the GPU and the smallest one above it that was not."""
    full = [r["num_ctx"] for r in rows if fully_on_gpu(r)]
    lo = max(full, default=None)
    partial = [
        r["num_ctx"]
        for r in rows
        if r.get("size") and not fully_on_gpu(r) and (lo is None or r["num_ctx"] > lo)
    ]
    return lo, min(partial, default=None)


def next_probe(rows: list[dict], step: int, cap: int) -> int | None:
    """The next num_ctx to load to narrow the boundary to `step`: halve the bracket, or step out
    past the sizes tried when all of them fitted (up to `cap`) or none did."""
    lo, hi = bracket(rows)
    tried = {r["num_ctx"] for r in rows}
    if lo is None:
        low = min(tried, default=0)
        return low - 2 * step if low - 2 * step > 0 else None
    if hi is None:
        up = min(cap, lo + 2 * step)
        return up if up > lo and up not in tried else None
    if hi - lo <= step:
        return None
    return (lo + hi) // 2 // 256 * 256


def bare(args: argparse.Namespace) -> None:
    """Run the llama-server command Ollama last logged, alone, and time the same decode."""
    cmds = STARTING.findall(Path(args.ollama_log).read_text(errors="replace"))
    argv = shlex.split(cmds[-1])
    port = argv[argv.index("--port") + 1]
    lib = args.lib
    env = dict(
        os.environ,
        LD_LIBRARY_PATH=f"{lib}:{lib}/cuda_v13",
        GGML_BACKEND_PATH=f"{lib}/cuda_v13/libggml-cuda.so",
    )
    with open(args.log, "w") as log:
        proc = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(240):
            try:
                if http("GET", f"{url}/health", timeout=2).get("status") == "ok":
                    break
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        rows = []
        for _ in range(args.repeats):
            resp = http(
                "POST",
                f"{url}/completion",
                {"prompt": PROMPT, "n_predict": args.predict, "temperature": 0, "seed": 1},
            )
            rows.append(resp.get("timings", {}))
        result = {
            "cmd": cmds[-1],
            "decode_tps": [round(t.get("predicted_per_second", 0), 2) for t in rows],
            "eval_count": [t.get("predicted_n") for t in rows],
            **parse_server_log(Path(args.log).read_text(errors="replace")),
        }
        with open(args.out, "a") as out:
            out.write(json.dumps(result) + "\n")
        print(json.dumps({k: result[k] for k in ("decode_tps", "eval_count")}), flush=True)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def fit_estimate(lib: str, gguf: str, ctx: int, ub: int, kv: str, flash: str) -> dict:
    env = dict(
        os.environ,
        LD_LIBRARY_PATH=f"{lib}:{lib}/cuda_v13",
        GGML_BACKEND_PATH=f"{lib}/cuda_v13/libggml-cuda.so",
    )
    cmd = [
        f"{lib}/llama-fit-params",
        "-m",
        gguf,
        "-c",
        str(ctx),
        "-b",
        str(ub),
        "-ub",
        str(ub),
        "-fa",
        flash,
        "-ctk",
        kv,
        "-ctv",
        kv,
        "-fitp",
        "on",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    row = {"num_ctx": ctx, "ubatch": ub, "kv": kv, "flash": flash, "rc": proc.returncode}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 4 and all(p.isdigit() for p in parts[1:]):
            row[parts[0]] = {
                "model": int(parts[1]),
                "context": int(parts[2]),
                "compute": int(parts[3]),
            }
    if proc.returncode:
        row["stderr"] = proc.stderr[-400:]
    return row


def fitgrid(args: argparse.Namespace) -> None:
    jobs = [
        (c, ub, kv, fa)
        for c in (4096, 8192, 16384, 32768, 65536, 131072)
        for ub in (512, 1024, 2048)
        for kv, fa in (("f16", "on"), ("q8_0", "on"), ("q4_0", "on"), ("f16", "off"))
    ]
    with ThreadPoolExecutor(args.workers) as pool:
        rows = list(pool.map(lambda j: fit_estimate(args.lib, args.gguf, *j), jobs))
    with open(args.out, "w") as out:
        for row in rows:
            out.write(json.dumps(row) + "\n")
    print(f"{len(rows)} estimates, {sum(r['rc'] != 0 for r in rows)} failed", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sweep")
    r = sub.add_parser("reload")
    for p in (s, r):
        p.add_argument("--ollama", required=True)
        p.add_argument("--models", required=True)
        p.add_argument("--model", default="qwq-fixed")
        p.add_argument("--card", type=float, required=True, help="emulated card size, GiB (label)")
        p.add_argument("--ctx", required=True)
        p.add_argument("--kv", default="f16", choices=["f16", "q8_0", "q4_0"])
        p.add_argument("--flash", default="auto", choices=["auto", "on", "off"])
        p.add_argument("--predict", type=int, default=32)
        p.add_argument(
            "--tolerance",
            type=int,
            default=64,
            help="MiB the card's free memory may differ from its level before a load",
        )
        p.add_argument(
            "--context-max",
            type=int,
            default=800,
            help="MiB the engine may see less than the level (its own CUDA context)",
        )
        p.add_argument("--level-timeout", type=float, default=30)
        p.add_argument("--out", required=True)
        p.add_argument("--log", required=True)
    s.add_argument("--repeats", type=int, default=1)
    s.add_argument("--retries", type=int, default=2, help="loads again when off level")
    s.add_argument("--idle-used-mib", type=int, default=0)
    s.add_argument("--bisect", type=int, default=0, help="extra loads to narrow the boundary")
    s.add_argument("--step", type=int, default=1024, help="num_ctx granularity of --bisect")
    s.add_argument("--cap", type=int, default=131072, help="largest num_ctx --bisect tries")
    r.add_argument("--other", type=int, default=8192, help="num_ctx of the other client")
    r.add_argument("--times", type=int, default=3)
    b = sub.add_parser("bare")
    b.add_argument("--ollama-log", required=True)
    b.add_argument("--lib", required=True)
    b.add_argument("--predict", type=int, default=48)
    b.add_argument("--repeats", type=int, default=3)
    b.add_argument("--out", required=True)
    b.add_argument("--log", required=True)
    f = sub.add_parser("fitgrid")
    f.add_argument("--lib", required=True)
    f.add_argument("--gguf", required=True)
    f.add_argument("--workers", type=int, default=8)
    f.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    {"sweep": sweep, "reload": reload, "bare": bare, "fitgrid": fitgrid}[args.cmd](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
