"""How much GPU memory a variant needs at its num_ctx under Ollama v0.32 and v0.34 (measured the
same on an H200 and an H100), from GGUF metadata alone.

Ollama v0.32 hands placement to llama-server's `--fit`: the model goes wholly on the GPU when
weights + KV cache + compute buffers + a 1 GiB margin fit in the free memory llama-server sees
(after its own CUDA context); otherwise whole layers move to the CPU. Ollama itself only picks the
batch size, which sets the compute buffers. This module predicts all of it from the header
(tensor sizes, layer and head counts), never loading a tensor, and finds the largest num_ctx
that stays on the GPU, and a smaller recommended one that also survives a reload. The byte
counts follow llama.cpp b10488's and b11076's CUDA backend; the constants below were measured on
an NVIDIA H200 and an H100, with QwQ- and Qwen3-32B-shaped files (tests/data/gpu/ holds the
measurements and the tests hold the planner to them).
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qwq_ollama.errors import InputError
from qwq_ollama.facts import DAEMON_DEFAULT_CONTEXT

if TYPE_CHECKING:
    from qwq_ollama.catalog.schema import Catalog, Weights
    from qwq_ollama.daemon.answers import Shown
    from qwq_ollama.daemon.client import OllamaAPI

MIB = 1 << 20
GIB = 1 << 30
# llama.cpp's --fit leaves this much free on each device (LLAMA_ARG_FIT_TARGET, in MiB).
FIT_MARGIN = 1024 * MIB
# What llama-server's own CUDA context takes before --fit reads the free memory: 525-543 MiB on
# the H200 and the H100 alike (CUDA 13, driver 580). Another process's context (Ollama's GPU refresh) sometimes
# takes a second one at the same moment: then the boundary moves down by about this much.
CUDA_CONTEXT = 525 * MIB
# What a reload may find missing: when Ollama restarts a model (num_ctx or another runner option
# changed), the new llama-server can measure the free memory while one more CUDA context (the
# old runner's, or Ollama's own GPU refresh) is still alive. The recommended num_ctx leaves this
# much beside --fit's margin, so it stays on the GPU through such a reload.
RELOAD_HEADROOM = CUDA_CONTEXT
KV_TYPES = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}  # bytes per cached element
CONTEXT_STEP = 256  # llama.cpp sizes the KV cache in multiples of 256 cells
MAX_CONTEXT = 1 << 24  # tokens: 16 M, beyond any model's training context
# Ollama's batch choice (server/sched.go, automaticGenerationBatch): batch, then the share of
# free memory its own estimate must stay under, and the extra it reserves for that batch.
BATCH_STEPS = ((2048, 0.60, 2 * GIB), (1024, 0.75, 768 * MIB), (512, 0.80, 0))


@dataclass(frozen=True)
class ModelShape:
    """What the memory plan reads from a GGUF header."""

    architecture: str
    file_size: int  # Ollama's own estimate starts from it
    weights_gpu: int  # every tensor but token_embd, which llama.cpp keeps on the CPU
    layers: int
    embd: int
    ffn: int
    heads: int
    kv_heads: int
    head_dim_k: int
    head_dim_v: int
    context_length: int

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * (self.head_dim_k + self.head_dim_v)

    @property
    def q_dim(self) -> int:
        """Width of the attention's queries and output: the hidden size for Qwen2 (QwQ), wider
        for Qwen3-32B (64 heads of 128 over a hidden size of 5120)."""
        return self.heads * self.head_dim_k


@dataclass(frozen=True)
class Need:
    """GPU memory for one load with every layer on the GPU: what /api/ps then shows as size_vram."""

    num_ctx: int
    kv_type: str
    flash: bool
    ubatch: int
    weights: int
    kv_cache: int
    compute: int

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.compute


@dataclass(frozen=True)
class Plan:
    need: Need
    vram: int  # free GPU memory before the load
    budget: int  # what --fit lets the model use: vram - CUDA context - margin
    max_ctx: int  # the largest num_ctx that stays wholly on the GPU (0: none)
    recommended_ctx: int  # the largest that also leaves RELOAD_HEADROOM (0: none)

    @property
    def fits(self) -> bool:
        return self.need.total <= self.budget

    @property
    def reload_safe(self) -> bool:
        """Fits with RELOAD_HEADROOM to spare: stays on the GPU when Ollama reloads it."""
        return self.need.total <= self.budget - RELOAD_HEADROOM


def shape_from_gguf(path: str | os.PathLike[str]) -> ModelShape:
    """Read the header of a GGUF file (tensor index and KV pairs; no tensor data)."""
    return shape_from_files([Path(path)], str(path))


def shape_from_show(shown: Shown, where: str) -> ModelShape:
    """The same from a daemon's verbose /api/show answer (model_info and tensors)."""
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    sizes = {}
    for tensor in shown.tensors:
        block, size = GGML_QUANT_SIZES[GGMLQuantizationType[str(tensor["type"])]]
        count = 1
        for dim in tensor["shape"]:
            count *= int(dim)
        sizes[str(tensor["name"])] = count // block * size
    return _shape(shown.model_info, sizes, sum(sizes.values()), where)


# The most a model's metadata may claim for each number the planner computes with: far beyond
# any model (QwQ: 131072 tokens of context, 64 layers, 27648 feed-forward).
SHAPE_BOUNDS = {"context_length": MAX_CONTEXT, "block_count": 4096, "feed_forward_length": 1 << 22}


def _shape(kv: dict[str, Any], sizes: dict[str, int], file_size: int, where: str) -> ModelShape:
    arch = kv.get("general.architecture")

    def number(key: str, default: int | None = None) -> int:
        value = kv.get(f"{arch}.{key}", default)
        if isinstance(value, list) and value:  # per-layer head counts: the largest sets the cache
            value = max(value, key=lambda v: v if isinstance(v, (int, float)) else 0)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise InputError(f"no {arch}.{key} in the model's metadata", file=where)
        # checked before any arithmetic or loop: a header claiming 2**40 tokens of context
        # would otherwise keep the planner stepping through it
        if not (math.isfinite(value) and 1 <= value <= SHAPE_BOUNDS.get(key, 1 << 20)):
            raise InputError(
                f"{arch}.{key} is {value!r}, not a number in 1-{SHAPE_BOUNDS.get(key, 1 << 20)}",
                file=where,
            )
        return int(value)

    if not arch or not sizes:
        raise InputError("no architecture or tensor list in the model's metadata", file=where)
    embd, heads = number("embedding_length"), number("attention.head_count")
    head_dim = embd // heads
    return ModelShape(
        architecture=arch,
        file_size=file_size,
        weights_gpu=sum(size for name, size in sizes.items() if name != "token_embd.weight"),
        layers=number("block_count"),
        embd=embd,
        ffn=number("feed_forward_length"),
        heads=heads,
        kv_heads=number("attention.head_count_kv", heads),
        head_dim_k=number("attention.key_length", head_dim),
        head_dim_v=number("attention.value_length", head_dim),
        context_length=number("context_length"),
    )


def ollama_ubatch(shape: ModelShape, num_ctx: int, vram: int, flash: bool) -> int:
    """The batch Ollama passes as -b/-ub: larger for long contexts when its estimate (the file
    plus an f16 KV cache, whatever the cache type) leaves room."""
    if not flash:
        return 512  # CUDA without flash attention (cards over 8 GiB)
    head_dim = shape.embd // shape.heads
    estimate = shape.file_size + 2 * shape.layers * shape.kv_heads * head_dim * num_ctx * 2
    start = 2048 if num_ctx > 32768 else 1024 if num_ctx > 4096 else 512
    for batch, share, extra in BATCH_STEPS:
        if batch > start:
            continue
        if batch == 512 or (
            estimate <= vram * share and estimate <= vram * 0.8 and extra <= vram * 0.8 - estimate
        ):
            return batch
    return 512


def compute_buffer(shape: ModelShape, num_ctx: int, ubatch: int, kv_type: str, flash: bool) -> int:
    """llama-server's CUDA compute buffer with every layer on the GPU (fitted to b10488's and
    b11076's graphs on the QwQ and Qwen3 shapes: the feed-forward activations, the attention
    output and the mask; without flash attention the whole attention-score matrix; with a
    quantised cache, f16 copies of K and V)."""
    mask = 2 * ubatch * num_ctx
    if not flash:
        return (
            ubatch * (8 * shape.embd + 8 * shape.q_dim + 8 * shape.kv_heads * shape.head_dim_k)
            + 4 * (shape.heads + 1) * ubatch * num_ctx
        )
    feed_forward = ubatch * 4 * (3 * shape.ffn + 2 * shape.embd + shape.q_dim) + mask
    if kv_type == "f16":
        return feed_forward
    dequantised = 2 * shape.kv_heads * (shape.head_dim_k + shape.head_dim_v) * num_ctx
    return max(feed_forward, dequantised + mask + 16 * shape.embd * ubatch)


def need(
    shape: ModelShape, num_ctx: int, vram: int, kv_type: str = "f16", flash: bool = True
) -> Need:
    """GPU memory for `num_ctx` (clamped to the trained context, as Ollama does)."""
    if kv_type not in KV_TYPES:
        raise InputError(f"unknown KV cache type {kv_type!r}: use one of {', '.join(KV_TYPES)}")
    if kv_type != "f16" and not flash:
        raise InputError(f"a {kv_type} KV cache needs flash attention")
    ctx = min(num_ctx, shape.context_length)
    cells = -(-ctx // CONTEXT_STEP) * CONTEXT_STEP
    ubatch = ollama_ubatch(shape, ctx, vram - CUDA_CONTEXT, flash)  # the daemon's view
    kv_cache = int(shape.layers * cells * shape.kv_dim * KV_TYPES[kv_type])
    return Need(
        ctx,
        kv_type,
        flash,
        ubatch,
        shape.weights_gpu,
        kv_cache,
        compute_buffer(shape, cells, ubatch, kv_type, flash),
    )


def budget(vram: int) -> int:
    return vram - CUDA_CONTEXT - FIT_MARGIN


def largest_context(
    shape: ModelShape, vram: int, kv_type: str = "f16", flash: bool = True, headroom: int = 0
) -> int:
    """The largest num_ctx (a multiple of 256, up to the trained context) wholly on the GPU,
    with `headroom` bytes left beside --fit's margin."""
    best = 0
    for ctx in range(CONTEXT_STEP, shape.context_length + 1, CONTEXT_STEP):
        if need(shape, ctx, vram, kv_type, flash).total <= budget(vram) - headroom:
            best = ctx  # not monotonic: a longer context can get a larger batch
    return best


def plan(
    shape: ModelShape, num_ctx: int, vram: int, kv_type: str = "f16", flash: bool = True
) -> Plan:
    return Plan(
        need(shape, num_ctx, vram, kv_type, flash),
        vram,
        budget(vram),
        largest_context(shape, vram, kv_type, flash),
        largest_context(shape, vram, kv_type, flash, RELOAD_HEADROOM),
    )


MAX_MEMORY = 1 << 50  # no GPU has a pebibyte: a size beyond it is a typo (or 1e309)


def parse_size(text: str) -> int:
    """`24GiB`, `24G`, `80 GB`, `24576MiB` or plain GiB (`24`) -> bytes."""
    units = {
        "": GIB,
        "g": GIB,
        "gib": GIB,
        "gb": 10**9,
        "m": MIB,
        "mib": MIB,
        "mb": 10**6,
        "t": 1 << 40,
        "tib": 1 << 40,
    }
    raw = text.strip().lower().replace(" ", "")
    number = raw.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = raw[len(number) :]
    try:
        value = float(number)
    except ValueError:
        raise InputError(f"not a memory size: {text[:40]!r} (e.g. 24GiB)") from None
    if unit not in units or not 0 < value * units.get(unit, 0) <= MAX_MEMORY:
        raise InputError(f"not a memory size: {text[:40]!r} (e.g. 24GiB; at most 1 PiB)")
    return int(value * units[unit])


def local_gpu_free() -> int | None:
    """Free memory of this machine's first NVIDIA GPU (nvidia-smi), None if there is none."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return None
    try:
        out = subprocess.run(
            [tool, "--query-gpu=memory.free", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        return int(out.split()[0]) * MIB
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def shape_from_files(paths: list[Path], where: str) -> ModelShape:
    """The shape of a GGUF given as its parts (one file, or every shard of a split one, the
    first holding the metadata): the tensors of all, the metadata of the first."""
    from qwq_ollama.artifacts.gguf import _check_magic, _open_reader, _value

    kv: dict[str, Any] = {}
    sizes: dict[str, int] = {}
    total = 0
    for index, path in enumerate(paths):
        reader = _open_reader(path, _check_magic(path))
        if index == 0:
            kv = {key: _value(reader.fields, key) for key in reader.fields}
        sizes.update({t.name: int(t.n_bytes) for t in reader.tensors})
        total += path.stat().st_size
    return _shape(kv, sizes, total, where)


def _local_parts(path: Path) -> list[Path]:
    """A local split GGUF's parts, given its first; any other file alone."""
    from qwq_ollama.artifacts.gguf_header import split_parts

    split = split_parts(path.name)
    if split is None or split[0] != 1:
        return [path]
    parts = [path.with_name(name) for name in split[1]]
    missing = [p.name for p in parts if not p.is_file()]
    if missing:
        raise InputError(f"split GGUF parts missing beside it: {', '.join(missing)}", file=path)
    return parts


@dataclass
class ShapeSource:
    """Where a plan's model shape was read, and what that cost over the network."""

    where: str
    network_bytes: int = 0


def weights_shape(
    weights: Weights | None, gguf: str | Path | None, source: ShapeSource | None = None
) -> ModelShape:
    """The shape of `gguf` (a file, `hf://...` or an https URL), else of the weights: their
    file when it is on disk, else the header of their Hugging Face file, range-read."""
    from qwq_ollama.artifacts import gguf_header

    text = str(gguf) if gguf is not None else None
    if (
        text is None
        and weights is not None
        and weights.file_on_disk is None
        and weights.source == "hf"
    ):
        text = f"hf://{weights.hf_repo}@{weights.hf_quant}"
    if text is not None and gguf_header.is_remote(text):
        fetched = gguf_header.Fetched()
        with tempfile.TemporaryDirectory(prefix="qwq-ollama-header-") as tmp:
            parts = gguf_header.read_header(text, Path(tmp), fetched)
            shape = shape_from_files(parts, text)
        if source is not None:
            source.where, source.network_bytes = text, fetched.network_bytes
        return shape
    path = Path(text) if text is not None else (weights.file_on_disk if weights else None)
    if path is None:
        name = weights.name if weights else "?"
        raise InputError(
            f"weights {name} are not on this machine and not on the Hugging Face "
            "Hub: pass --gguf FILE, hf://OWNER/REPO/FILE.gguf or a URL"
        )
    if source is not None:
        source.where = str(path)
    return shape_from_files(_local_parts(path), str(path))


def catalog_plans(
    catalog: Catalog,
    names: list[str] | None,
    vram: int,
    kv_type: str = "f16",
    flash: bool = True,
    gguf: str | Path | None = None,
    weights_name: str | None = None,
    source: ShapeSource | None = None,
    shape: ModelShape | None = None,
) -> list[tuple[str, Plan]]:
    """(variant, plan) for each variant, from `shape` (e.g. a model on the daemon), else from
    `gguf` or the header of its catalog weights (read where it lies when it is not on disk)."""
    shapes: dict[str, ModelShape] = {}
    rows = []
    for variant in catalog.chosen(names):
        used = shape
        if used is None:
            weights = catalog.weights_named(weights_name or variant.weights)
            key = str(gguf) if gguf is not None else weights.name
            if key not in shapes:
                shapes[key] = weights_shape(weights, gguf, source)
            used = shapes[key]
        num_ctx = variant.parameters.num_ctx or DAEMON_DEFAULT_CONTEXT
        rows.append((variant.name, plan(used, num_ctx, vram, kv_type, flash)))
    return rows


def download_verdict(
    catalog: Catalog, repo_id: str, quant: str, vram_text: str | None
) -> str | None:
    """Before a download, one line: will this quant fit the GPU at the first variant's num_ctx?

    The GPU is `vram_text`, else nvidia-smi's free memory; None when neither is known. The
    header is range-read from the Hub; if that fails the line says why and the download goes on.
    """
    from qwq_ollama.errors import QwqOllamaError

    vram = parse_size(vram_text) if vram_text is not None else local_gpu_free()
    if vram is None:
        return None
    variant = catalog.chosen()[0]
    num_ctx = variant.parameters.num_ctx or DAEMON_DEFAULT_CONTEXT
    try:
        shape = weights_shape(None, f"hf://{repo_id}@{quant}")
    except QwqOllamaError as exc:
        return f"plan: not known before the download ({exc})"
    result = plan(shape, num_ctx, vram)
    where = (
        f"all on the GPU (up to num_ctx {result.max_ctx}; {result.recommended_ctx} "
        "with room for a reload)"
        if result.fits
        else f"not all on the GPU: layers move to the CPU (num_ctx {result.recommended_ctx} "
        "would fit, with room for a reload; see `qwq-ollama plan --ctx`)"
    )
    return (
        f"plan: {quant} at num_ctx {num_ctx} ({variant.name}) needs "
        f"{result.need.total / GIB:.1f} GiB of the {result.budget / GIB:.1f} llama-server "
        f"may use on {vram / GIB:.1f} GiB free: {where}"
    )


# Decode on the H200 with every layer on the GPU (docs/gpu.md): f16 fastest, then q8_0, q4_0.
KV_BY_SPEED = ("f16", "q8_0", "q4_0")


@dataclass(frozen=True)
class ContextChoice:
    """For a wanted num_ctx: each KV cache type's plan, and which to set."""

    num_ctx: int
    plans: dict[str, Plan]
    trained: int  # the model's training context: Ollama runs a longer num_ctx at this one

    @property
    def beyond_training(self) -> bool:
        return self.num_ctx > self.trained

    @property
    def fitting(self) -> list[str]:
        """The cache types that keep num_ctx on the GPU through a reload (the recommended)."""
        return [kv for kv in KV_BY_SPEED if self.plans[kv].reload_safe]

    @property
    def fastest(self) -> str | None:
        return self.fitting[0] if self.fitting else None


def choose_kv_cache(shape: ModelShape, num_ctx: int, vram: int) -> ContextChoice:
    """Which of f16 / q8_0 / q4_0 (flash attention on) keeps `num_ctx` wholly on the GPU."""
    return ContextChoice(
        num_ctx,
        {kv: plan(shape, num_ctx, vram, kv, True) for kv in KV_BY_SPEED},
        shape.context_length,
    )


def model_shape(api: OllamaAPI, model: str) -> ModelShape:
    """The shape of a registered model, from the daemon's verbose /api/show."""
    shown = api.show(model, verbose=True)
    if shown is None:
        raise InputError(f"{model} is not registered", file=api.host)
    try:
        return shape_from_show(shown, f"{api.host} model {model}")
    except KeyError as exc:
        raise InputError(
            f"{model}: tensor type {exc} unknown to this planner", file=api.host
        ) from None
    except (TypeError, ValueError, AttributeError) as exc:  # a daemon's answer, not Ollama's
        raise InputError(
            f"{model}: its tensor list is not Ollama's ({type(exc).__name__})", file=api.host
        ) from None


def daemon_vram(api: OllamaAPI) -> int | None:
    """What a daemon on this machine has to load into: the GPU's free memory plus what its
    loaded models hold (they make way). None for a remote daemon or without nvidia-smi."""
    from qwq_ollama.daemon.daemon_process import local_daemon
    from qwq_ollama.errors import DaemonError

    if local_daemon(api.host) is None:
        return None
    free = local_gpu_free()
    if free is None:
        return None
    try:
        return free + sum(m.size_vram for m in api.loaded_models())
    except DaemonError:  # an unreachable daemon is doctor's own first finding
        return free


def verdict(name: str, result: Plan) -> tuple[bool, str, str | None]:
    """(passes, message, fix) for one variant, in words: it passes when it stays on the GPU
    through a reload; one that fits only without the reload headroom is a warning."""
    n = result.need
    parts = (
        f"weights {n.weights / GIB:.1f} + KV cache {n.kv_cache / GIB:.1f} ({n.kv_type}) "
        f"+ compute {n.compute / GIB:.1f}"
    )
    usable = f"the {result.budget / GIB:.1f} GiB llama-server may use of {result.vram / GIB:.1f}"
    limits = (
        f"largest num_ctx {result.max_ctx}, recommended {result.recommended_ctx} (leaves "
        f"{RELOAD_HEADROOM // MIB} MiB for a reload)"
    )
    if result.reload_safe:
        return (
            True,
            (
                f"{name}: num_ctx {n.num_ctx} needs {n.total / GIB:.1f} GiB ({parts}), "
                f"within {usable}: all on the GPU, also after a reload; {limits}"
            ),
            None,
        )
    if result.fits:
        spare = (result.budget - n.total) // MIB
        return (
            False,
            (
                f"{name}: num_ctx {n.num_ctx} needs {n.total / GIB:.1f} GiB ({parts}), "
                f"within {usable} with only {spare} MiB to spare: all on the GPU, but a "
                f"reload can spill a layer to the CPU; {limits}"
            ),
            (f"set num_ctx to {result.recommended_ctx} or less for {name}"),
        )
    fix = (
        f"set num_ctx to {result.recommended_ctx} or less for {name}"
        if result.recommended_ctx
        else "use a smaller quantisation or a larger GPU"
    )
    if n.kv_type != "q4_0":
        fix += ", or quantise the KV cache (OLLAMA_KV_CACHE_TYPE=q8_0; see `qwq-ollama plan`)"
    return (
        False,
        (
            f"{name}: num_ctx {n.num_ctx} needs {n.total / GIB:.1f} GiB ({parts}), "
            f"more than {usable}: Ollama moves layers to the CPU and decoding slows "
            f"several-fold; {limits}"
        ),
        fix,
    )
