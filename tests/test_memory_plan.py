"""The context planner held to what Ollama v0.32.15 and v0.34.4 did on an H200 and v0.34.4 on an
H100, with QwQ-32B- and Qwen3-32B-shaped files (tests/data/gpu/, recorded by gpu/device_run.sh),
without a daemon or a GPU; then its faces: `plan` and `doctor --vram`."""

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

from .conftest import load_generator, run_cli

DATA = Path(__file__).parent / "data" / "gpu"
ROOT = Path(__file__).parent.parent
FIXTURE = json.loads((DATA / "h200-placement.json").read_text())
SHOW = json.loads((DATA / "qwq-32b-shaped.show.json").read_text())
SHAPE = mp.shape_from_show(Shown.from_json(SHOW), "fixture")
QWEN3 = mp.shape_from_show(
    Shown.from_json(json.loads((DATA / "qwen3-32b-shaped.show.json").read_text())), "fixture"
)
POINTS = FIXTURE["points"]
H100 = json.loads((DATA / "h100-placement-0.34.4.json").read_text())
H100_QWEN3 = json.loads((DATA / "h100-qwen3-placement-0.34.4.json").read_text())
# Every run measured, and the shape its file had: on the H200 v0.32.15 in full and v0.34.4 at
# the boundaries (PLAN=check); on the H100 v0.34.4 at every boundary, QwQ and Qwen3 (PLAN=cards).
# A point taken with the card off its level (counted: false) was measured again; it is not held.
RUNS: dict[str, tuple[list[dict], mp.ModelShape]] = {
    "h200-0.32.15": (POINTS, SHAPE),
    "h200-0.34.4": (json.loads((DATA / "h200-placement-0.34.4.json").read_text())["points"], SHAPE),
    "h100-0.34.4": (H100["points"], SHAPE),
    "h100-qwen3-0.34.4": (H100_QWEN3["points"], QWEN3),
}
COUNTED = {run: [p for p in points if p.get("counted", True)] for run, (points, _) in RUNS.items()}
ALL_POINTS = [(run, point) for run, points in COUNTED.items() for point in points]
NEW_RUNS = ("h100-0.34.4", "h100-qwen3-0.34.4")  # recorded with what the engine saw
MIB = mp.MIB


def free(point: dict) -> int:
    return point["free_before_mib"] * MIB


def seen(point: dict) -> int:
    """The free memory llama-server's --fit decided with (else the one it logged at start)."""
    return point.get("fit_free_mib") or point["llama_free_mib"]


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


ALL_BRACKETS = [(run, b) for run, points in COUNTED.items() for b in brackets(points, f"{run}-")]


@pytest.mark.parametrize(
    ("run", "point"), ALL_POINTS, ids=[f"{r}-{label(p)}" for r, p in ALL_POINTS]
)
def test_planner_says_where_the_daemon_put_the_model(run: str, point: dict) -> None:
    shape = RUNS[run][1]
    need = mp.need(shape, point["num_ctx"], free(point), point["kv"], point["flash"] != "off")
    assert (need.total <= mp.budget(free(point))) == on_gpu(point)
    assert need.ubatch == point["ubatch"]  # Ollama's own batch choice
    if point.get("fit_projected_mib"):  # what --fit projected for every layer on the GPU
        assert abs(need.total / MIB - point["fit_projected_mib"]) <= 1
    if on_gpu(point):
        assert abs(need.total - point["size_vram"]) < MIB  # what /api/ps reported
        assert abs(need.compute / MIB - point["buffers_mib"]["CUDA0 compute"]) < 1
        assert abs(need.kv_cache / MIB - point["buffers_mib"]["CUDA0 KV"]) < 1


@pytest.mark.parametrize(("run", "bracket"), ALL_BRACKETS, ids=[b[0] for _, b in ALL_BRACKETS])
def test_largest_context_is_where_the_daemon_switched_to_partial_offload(
    run: str, bracket: tuple[str, dict, int, int | None]
) -> None:
    _, point, lo, hi = bracket
    predicted = mp.largest_context(RUNS[run][1], free(point), point["kv"], point["flash"] != "off")
    assert lo <= predicted
    assert hi is None or predicted < hi
    if run in NEW_RUNS:  # measured at and 1024 above the prediction (bisected when off)
        assert hi is None or hi - lo <= 1024, "the boundary was not measured to 1024 tokens"


@pytest.mark.parametrize("run", NEW_RUNS)
def test_every_point_records_what_the_engine_saw_and_counts_only_on_level(run: str) -> None:
    points = RUNS[run][0]
    for point in points:
        for key in (
            "card_free_mib",
            "free_before_mib",
            "fit_free_mib",
            "fit_projected_mib",
            "llama_free_mib",
            "counted",
        ):
            assert isinstance(point.get(key), (int, bool)), (label(point), key)
        on_level = (
            abs(point["free_before_mib"] - point["card_free_mib"]) <= 64
            and point["card_free_mib"] - seen(point) <= 800
        )
        assert point["counted"] == on_level, label(point)
        if not point["counted"]:  # measured again, and the second load counted
            again = [p for p in points if label(p) == label(point) and p["counted"]]
            assert again, f"{label(point)} taken off level and never measured again"


def test_cuda_context_is_the_same_on_both_cards() -> None:
    """--fit saw the card's free memory less one CUDA context (sometimes two), 525 MiB on the
    H200 and the H100 alike: the planner needs no per-card term."""
    for run, points in COUNTED.items():
        gaps = [p["free_before_mib"] - p["fit_free_mib"] for p in points if p.get("fit_free_mib")]
        assert min(gaps) <= mp.CUDA_CONTEXT / MIB <= min(gaps) + 20, run
        assert max(gaps) < 2 * mp.CUDA_CONTEXT / MIB + 30, run


def test_reload_headroom_covers_every_shortfall_measured() -> None:
    """A second CUDA context alive while llama-server measures (the old runner's, Ollama's GPU
    refresh) took up to 524 MiB more on both cards; the recommended num_ctx leaves that."""
    loads = [p for points, _ in RUNS.values() for p in points] + H100["reload"]
    extra = (
        max(
            p["free_before_mib"]
            - min(p.get("fit_free_mib") or p["llama_free_mib"], p["llama_free_mib"])
            for p in loads
            if p.get("reload") in (None, "cold")
        )
        - mp.CUDA_CONTEXT // MIB
    )
    assert 500 < extra <= mp.RELOAD_HEADROOM // MIB  # a second context was seen, and is covered


def test_recommended_context_stayed_on_the_gpu_through_ollamas_reloads() -> None:
    """On the H100's 24 GiB card: Ollama reloaded QwQ (another client's num_ctx 8192 in
    between) at the largest num_ctx, the catalog's 16384 and the recommended one; every reload
    stayed on the GPU, and the engine saw the same free memory as on a cold load."""
    rows = H100["reload"]
    card = rows[0]["card_free_mib"] * MIB
    result = mp.plan(SHAPE, 16384, card)
    reloaded = {r["num_ctx"] for r in rows if r["reload"] != "cold"}
    assert {result.max_ctx, result.recommended_ctx, 16384} <= reloaded
    assert result.recommended_ctx < 16384 < result.max_ctx  # the catalog's 16384 is "tight"
    assert all(on_gpu(r) and r["layers_gpu"] == 65 for r in rows)
    assert {seen(r) for r in rows if r["reload"] != "cold"} == {rows[0]["card_free_mib"] - 525}


def test_header_of_the_generated_file_gives_the_measured_shape(qwq_shaped: Path) -> None:
    shape = mp.shape_from_gguf(qwq_shaped)
    assert shape == mp.ModelShape(**{**SHAPE.__dict__, "file_size": qwq_shaped.stat().st_size})
    model_mib = POINTS[0]["buffers_mib"]["CUDA0 model"]  # token_embd stays on the CPU
    assert abs(shape.weights_gpu / MIB - model_mib) < 0.01


def test_generated_qwen3_file_has_qwen3_32b_shape(qwq_shaped: Path) -> None:
    """gpu/make_qwq_shaped_gguf.py --shape qwen3 writes what the H100 measured: Qwen3-32B's
    published dimensions (64 layers, 5120 hidden, 25600 FFN, 64 heads of 128, 8 KV heads)."""
    generator = load_generator()
    out = qwq_shaped.parent / "qwen3-32b-shaped.gguf"
    if not out.exists():
        generator.write_qwq_shaped(
            out, qwq_shaped.parent / "tok.gguf", shape=generator.QWEN3_32B, mix="q4_k_m"
        )
    shape = mp.shape_from_gguf(out)
    assert shape == mp.ModelShape(**{**QWEN3.__dict__, "file_size": out.stat().st_size})
    assert (
        shape.architecture,
        shape.layers,
        shape.embd,
        shape.ffn,
        shape.heads,
        shape.kv_heads,
        shape.head_dim_k,
        shape.q_dim,
    ) == ("qwen3", 64, 5120, 25600, 64, 8, 128, 8192)
    model_mib = H100_QWEN3["points"][0]["buffers_mib"]["CUDA0 model"]
    assert abs(shape.weights_gpu / MIB - model_mib) < 0.01


def test_quantised_caches_hold_more_context_and_flash_attention_saves_memory() -> None:
    vram = 24 * 1024 * MIB
    f16, q8, q4 = (mp.largest_context(SHAPE, vram, kv) for kv in ("f16", "q8_0", "q4_0"))
    assert 0 < f16 < q8 < q4
    assert mp.largest_context(SHAPE, vram, "f16", flash=False) < f16
    assert mp.largest_context(SHAPE, 16 * 1024 * MIB) == 0  # 18 GiB of weights
    assert mp.need(SHAPE, 10**6, vram).num_ctx == SHAPE.context_length  # clamped, as Ollama does


def test_verdict_tells_a_tight_fit_from_one_with_room_for_a_reload() -> None:
    """doctor's words for 24 GiB (the H100's card): 16384 fits but is tight, the recommended
    15104 passes, 18432 spills; each names the largest and the recommended num_ctx."""
    card = H100["reload"][0]["card_free_mib"] * MIB
    said = {
        ctx: mp.verdict("qwq-fixed", mp.plan(SHAPE, ctx, card)) for ctx in (15104, 16384, 18432)
    }
    assert [said[c][0] for c in (15104, 16384, 18432)] == [True, False, False]
    assert "also after a reload" in said[15104][1] and said[15104][2] is None
    assert "a reload can spill a layer" in said[16384][1]
    assert said[16384][2] == "set num_ctx to 15104 or less for qwq-fixed"
    assert "Ollama moves layers to the CPU" in said[18432][1]
    assert all("largest num_ctx 17152, recommended 15104" in m for _, m, _ in said.values())


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
    result = run_cli(
        "plan", "qwq-fixed", "--gguf", str(qwq_shaped), "--vram", f"{point['free_before_mib']}MiB"
    )
    assert result.returncode == 0, result.stderr
    row = result.stdout.splitlines()[-1].split()
    # 16384 fits 24 GiB with 214 MiB to spare: on the GPU, but not with room for a reload
    assert row[0] == "qwq-fixed" and row[6] == "tight"
    assert lo is not None and hi is not None and lo <= int(row[7]) < hi
    reloaded = {r["num_ctx"] for r in H100["reload"] if on_gpu(r)}
    assert int(row[8]) in reloaded and int(row[8]) < 16384  # the recommended: measured
    assert "RECOMMENDED leaves 525 MiB more for a reload" in result.stdout
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
        found = [
            f for f in diagnose(api, registered, "smollm2-135m", vram) if f.check == "gpu-memory"
        ]
        checked = registered.chosen()  # doctor's default set, as `make models` registers
        assert [f.message.split(":")[0] for f in found] == [v.name for v in checked]
        for finding, variant in zip(found, checked, strict=True):
            safe = mp.plan(shape, variant.parameters.num_ctx or 4096, vram).reload_safe
            assert finding.status == ("pass" if safe else "warn")
    assert all(f.status == "warn" and f.fix for f in found)  # no room for any KV cache
    result = run_cli("doctor", "--host", api.host, "--weights", "smollm2-135m", "--vram", "8GiB")
    assert result.stdout.count(" gpu-memory ") == len(checked), result.stdout
