"""The context planner held to what Ollama v0.32.15 and v0.34.4 did on an H200 (tests/data/gpu/,
recorded by gpu/device_run.sh), without a daemon or a GPU; then its faces: `plan` and
`doctor --vram`."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from qwq_ollama.catalog.schema import Catalog, load_catalog
from qwq_ollama.checks import memory_plan as mp
from qwq_ollama.checks.doctor import diagnose
from qwq_ollama.daemon.answers import Shown
from qwq_ollama.daemon.client import OllamaAPI
from qwq_ollama.errors import InputError

from .conftest import run_cli

DATA = Path(__file__).parent / "data" / "gpu"
ROOT = Path(__file__).parent.parent
FIXTURE = json.loads((DATA / "h200-placement.json").read_text())
SHOW = json.loads((DATA / "qwq-32b-shaped.show.json").read_text())
SHAPE = mp.shape_from_show(Shown.from_json(SHOW), "fixture")
POINTS = FIXTURE["points"]
# Every release measured: v0.32.15 in full, v0.34.4 at the boundaries (PLAN=check).
RELEASES = {"0.32.15": POINTS,
            "0.34.4": json.loads((DATA / "h200-placement-0.34.4.json").read_text())["points"]}
ALL_POINTS = [(version, point) for version, points in RELEASES.items() for point in points]
MIB = mp.MIB


def free(point: dict) -> int:
    return point["free_before_mib"] * MIB


def on_gpu(point: dict) -> bool:
    return point["size"] == point["size_vram"]


def label(point: dict) -> str:
    return f"{point['card_gib']:g}GiB-{point['kv']}-fa_{point['flash']}-{point['num_ctx']}"


def brackets(points: list[dict] = POINTS, tag: str = "") -> list[tuple[str, dict, int, int | None]]:
    """Per card and setting: the largest num_ctx measured wholly on the GPU, and the smallest
    larger one that was not (None when every size tried fitted)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for point in points:
        groups[(point["card_gib"], point["kv"], point["flash"])].append(point)
    out = []
    for (card, kv, flash), group in groups.items():
        lo = max(p["num_ctx"] for p in group if on_gpu(p))
        above = [p["num_ctx"] for p in group if not on_gpu(p) and p["num_ctx"] > lo]
        out.append((f"{tag}{card:g}GiB-{kv}-fa_{flash}", group[0], lo, min(above, default=None)))
    return out


ALL_BRACKETS = [b for version, points in RELEASES.items() for b in brackets(points, f"{version}-")]


@pytest.mark.parametrize(("version", "point"), ALL_POINTS,
                         ids=[f"{v}-{label(p)}" for v, p in ALL_POINTS])
def test_planner_says_where_the_daemon_put_the_model(version: str, point: dict) -> None:
    need = mp.need(SHAPE, point["num_ctx"], free(point), point["kv"], point["flash"] != "off")
    assert (need.total <= mp.budget(free(point))) == on_gpu(point)
    assert need.ubatch == point["ubatch"]  # Ollama's own batch choice
    if on_gpu(point):
        assert abs(need.total - point["size_vram"]) < MIB  # what /api/ps reported
        assert abs(need.compute / MIB - point["buffers_mib"]["CUDA0 compute"]) < 1
        assert abs(need.kv_cache / MIB - point["buffers_mib"]["CUDA0 KV"]) < 1


@pytest.mark.parametrize(("name", "point", "lo", "hi"), ALL_BRACKETS,
                         ids=[b[0] for b in ALL_BRACKETS])
def test_largest_context_is_where_the_daemon_switched_to_partial_offload(
        name: str, point: dict, lo: int, hi: int | None) -> None:
    predicted = mp.largest_context(SHAPE, free(point), point["kv"], point["flash"] != "off")
    assert lo <= predicted
    assert hi is None or predicted < hi


def test_measured_emulation_matches_the_planners_context_overhead() -> None:
    """--fit saw the blocker's free memory less one CUDA context (sometimes two)."""
    seen = [p["free_before_mib"] - p["fit_free_mib"] for p in POINTS if p.get("fit_free_mib")]
    assert min(seen) <= mp.CUDA_CONTEXT / MIB <= min(seen) + 20
    assert max(seen) < 2 * mp.CUDA_CONTEXT / MIB + 30


def test_header_of_the_generated_file_gives_the_measured_shape(qwq_shaped: Path) -> None:
    shape = mp.shape_from_gguf(qwq_shaped)
    assert shape == mp.ModelShape(**{**SHAPE.__dict__, "file_size": qwq_shaped.stat().st_size})
    model_mib = POINTS[0]["buffers_mib"]["CUDA0 model"]  # token_embd stays on the CPU
    assert abs(shape.weights_gpu / MIB - model_mib) < 0.01


def test_quantised_caches_hold_more_context_and_flash_attention_saves_memory() -> None:
    vram = 24 * 1024 * MIB
    f16, q8, q4 = (mp.largest_context(SHAPE, vram, kv) for kv in ("f16", "q8_0", "q4_0"))
    assert 0 < f16 < q8 < q4
    assert mp.largest_context(SHAPE, vram, "f16", flash=False) < f16
    assert mp.largest_context(SHAPE, 16 * 1024 * MIB) == 0  # 18 GiB of weights
    assert mp.need(SHAPE, 10**6, vram).num_ctx == SHAPE.context_length  # clamped, as Ollama does


def test_bad_input_is_one_line_errors() -> None:
    for text in ("24x", "-3GiB", "", "GiB"):
        with pytest.raises(InputError, match="not a memory size"):
            mp.parse_size(text)
    assert mp.parse_size("24GiB") == mp.parse_size("24") == 24 * mp.GIB
    assert mp.parse_size("24576MiB") == 24 * mp.GIB
    with pytest.raises(InputError, match="unknown KV cache type"):
        mp.need(SHAPE, 8192, mp.GIB, "q5_1")
    with pytest.raises(InputError, match="needs flash attention"):
        mp.need(SHAPE, 8192, mp.GIB, "q8_0", flash=False)
    with pytest.raises(InputError, match="no architecture"):
        mp.shape_from_show(Shown(), "nowhere")


def test_plan_command_matches_the_measured_boundary(qwq_shaped: Path) -> None:
    _, point, lo, hi = next(b for b in brackets() if b[0] == "24GiB-f16-fa_auto")
    result = run_cli("plan", "qwq-fixed", "--gguf", str(qwq_shaped), "--vram",
                     f"{point['free_before_mib']}MiB")
    assert result.returncode == 0, result.stderr
    row = result.stdout.splitlines()[-1].split()
    assert row[0] == "qwq-fixed" and row[6] == "all"
    assert lo is not None and hi is not None and lo <= int(row[7]) < hi
    small = run_cli("plan", "--gguf", str(qwq_shaped), "--vram", "16GiB", "--kv-cache", "q4_0")
    rows = small.stdout.splitlines()[2:]
    assert [line.split()[6] for line in rows] == ["partial"] * len(rows)
    assert len(rows) == len(load_catalog().chosen())  # the default set, as `make models` registers


def test_plan_command_refuses_bad_input() -> None:
    result = run_cli("plan", "--vram", "lots")
    assert result.returncode == 2 and "not a memory size" in result.stderr
    result = run_cli("plan", "--vram", "24GiB")  # the QwQ weights are not downloaded here
    assert result.returncode == 2 and "--gguf" in result.stderr


@pytest.mark.live
def test_doctor_says_which_variants_fit_a_given_gpu(api: OllamaAPI, registered: Catalog) -> None:
    shape = mp.model_shape(api, "qwq-fixed")
    roomy, tight = 8 * mp.GIB, mp.CUDA_CONTEXT + mp.FIT_MARGIN + shape.weights_gpu
    for vram in (roomy, tight):
        found = [f for f in diagnose(api, registered, "smollm2-135m", vram)
                 if f.check == "gpu-memory"]
        checked = registered.chosen()  # doctor's default set, as `make models` registers
        assert [f.message.split(":")[0] for f in found] == [v.name for v in checked]
        for finding, variant in zip(found, checked, strict=True):
            fits = mp.plan(shape, variant.parameters.num_ctx or 4096, vram).fits
            assert finding.status == ("pass" if fits else "warn")
    assert all(f.status == "warn" and f.fix for f in found)  # no room for any KV cache
    result = run_cli("doctor", "--host", api.host, "--weights", "smollm2-135m", "--vram", "8GiB")
    assert result.stdout.count(" gpu-memory ") == len(checked), result.stdout
