"""gpu/measure.py's own decisions, on the log lines and rows a real H100 run produced
(tests/data/gpu/h100-placement-0.34.4.json): what llama-server saw is read from its log, a load
taken with the card off its level does not count, and the bisection stops at 1024 tokens."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
H100 = json.loads((ROOT / "tests" / "data" / "gpu" / "h100-placement-0.34.4.json").read_text())
# What llama-server b11076 logged for one H100 load (24 GiB card, num_ctx 18176, lines trimmed).
LOG = """\
llama_model_load_from_file_impl: using device CUDA0 (NVIDIA H100 80GB HBM3) (0000:00:05.0) - 24050 MiB free
common_params_fit_impl: projected to use 23262 MiB of device memory vs. 24031 MiB of free device memory
common_params_fit_impl: cannot meet free memory target of 1024 MiB, need to reduce device memory by 255 MiB
load_tensors: offloaded 64/65 layers to GPU
load_tensors:        CUDA0 model buffer size = 18223.66 MiB
llama_kv_cache:      CUDA0 KV buffer size =  4480.00 MiB
sched_reserve:      CUDA0 compute buffer size =   200.01 MiB
"""


@pytest.fixture(scope="module")
def measure() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_measure", ROOT / "gpu" / "measure.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = module  # type: ignore[union-attr]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_reads_what_llama_server_saw_and_projected(measure: ModuleType) -> None:
    row = measure.parse_server_log(LOG)
    assert (row["llama_free_mib"], row["fit_free_mib"], row["fit_projected_mib"]) == (
        24050,
        24031,
        23262,
    )
    assert (row["layers_gpu"], row["layers_total"]) == (64, 65)
    assert row["buffers_mib"]["CUDA0 KV"] == 4480.0
    assert measure.engine_free(row) == 24031  # --fit's reading is the one it decided with


def test_a_load_off_the_cards_level_does_not_count(measure: ModuleType) -> None:
    """The 40 GiB load where a second CUDA context took 1048 MiB: marked and measured again."""
    off = next(p for p in H100["points"] if not p["counted"])
    assert not measure.on_level(off, 64, 800)
    again = next(p for p in H100["points"] if p["num_ctx"] == off["num_ctx"] and p["counted"])
    assert measure.on_level(again, 64, 800)
    late = {**again, "free_before_mib": again["card_free_mib"] - 200}  # card not back yet
    assert not measure.on_level(late, 64, 800)


def test_bisection_narrows_to_1024_and_steps_out_when_all_fit(measure: ModuleType) -> None:
    def row(ctx: int, on: bool) -> dict[str, int]:
        return {"num_ctx": ctx, "size": 10, "size_vram": 10 if on else 9}

    assert measure.next_probe([row(17152, True), row(18176, False)], 1024, 131072) is None
    assert measure.next_probe([row(17152, True), row(21248, False)], 1024, 131072) == 19200
    assert measure.next_probe([row(17152, True)], 1024, 131072) == 19200
    assert measure.next_probe([row(131072, True)], 1024, 131072) is None  # the cap
    assert measure.next_probe([row(33024, False)], 1024, 40960) == 30976
