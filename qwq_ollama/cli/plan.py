"""Commands that answer "will it fit?" from a GGUF header: plan, and download (which says so
before it fetches)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from qwq_ollama.cli._options import (
    CatalogOpt,
    HostOpt,
    JsonOpt,
    VariantsArg,
    WeightsOpt,
    catalog_at,
)
from qwq_ollama.cli._output import err, print_json, say

if TYPE_CHECKING:
    from qwq_ollama.checks.memory_plan import ContextChoice, Plan, ShapeSource


def plan(
    variants: VariantsArg = None,
    vram: Annotated[
        str,
        typer.Option(
            "--vram",
            help="Free GPU memory before the model loads, e.g. 24GiB (a headless card: its size).",
        ),
    ] = "24GiB",
    kv_cache: Annotated[
        str,
        typer.Option("--kv-cache", help="f16, q8_0 or q4_0 (the daemon's OLLAMA_KV_CACHE_TYPE)."),
    ] = "f16",
    flash: Annotated[
        bool,
        typer.Option(
            "--flash-attention/--no-flash-attention",
            help="OLLAMA_FLASH_ATTENTION (on by default on CUDA).",
        ),
    ] = True,
    gguf: Annotated[
        str | None,
        typer.Option(
            "--gguf",
            help="Read this GGUF instead of "
            "the variants' catalog weights: a file, hf://OWNER/REPO/FILE.gguf, "
            "hf://OWNER/REPO@QUANT or an https URL (only its header is read).",
        ),
    ] = None,
    ctx: Annotated[
        int | None,
        typer.Option(
            "--ctx",
            min=1,
            max=1 << 24,
            help="Answer the reverse "
            "question: which KV cache type keeps this num_ctx on the GPU, and "
            "which of those decodes fastest.",
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="Plan a model already on the daemon at --host (its verbose /api/show) instead.",
        ),
    ] = None,
    host: HostOpt = None,
    weights: WeightsOpt = None,
    catalog: CatalogOpt = None,
    json_: JsonOpt = False,
) -> int:
    """GPU memory each variant needs at its num_ctx under Ollama v0.32 and v0.34, from the GGUF
    header: the file, or its header read where it lies (Hugging Face, a URL) before any download."""
    from qwq_ollama.checks.memory_plan import (
        GIB,
        KV_TYPES,
        MIB,
        RELOAD_HEADROOM,
        ShapeSource,
        catalog_plans,
        choose_kv_cache,
        model_shape,
        parse_size,
        weights_shape,
    )
    from qwq_ollama.errors import InputError
    from qwq_ollama.facts import DAEMON_DEFAULT_CONTEXT

    free = parse_size(vram)
    if kv_cache not in KV_TYPES:  # before any header is read
        raise InputError(
            f"unknown KV cache type {kv_cache!r}: use one of {', '.join(KV_TYPES)}",
            field="--kv-cache",
        )
    cat = catalog_at(catalog)
    source = ShapeSource("")
    on_daemon = None
    if model is not None:
        from qwq_ollama.daemon.client import OllamaAPI

        on_daemon = model_shape(OllamaAPI(host), model)
    if ctx is not None:
        if json_:
            raise InputError("--json answers the table form; with --ctx it is not offered yet")
        if on_daemon is None:
            first = cat.variant((variants or list(cat.variants))[0])
            on_daemon = weights_shape(cat.weights_named(weights or first.weights), gguf, source)
        _say_source(source)
        _print_context_choice(choose_kv_cache(on_daemon, ctx, free))
        return 0
    rows = catalog_plans(cat, variants, free, kv_cache, flash, gguf, weights, source, on_daemon)
    _say_source(source)
    first_plan = rows[0][1]
    asked = {
        name: cat.variant(name).parameters.num_ctx or DAEMON_DEFAULT_CONTEXT for name, _ in rows
    }
    if json_:
        print_json(_plan_document(rows, asked, kv_cache, flash))
        return 0
    if first_plan.budget > 0:
        may_use = (
            f"llama-server may use {first_plan.budget / GIB:.1f} (its CUDA context and "
            "--fit's 1 GiB margin aside)"
        )
    else:  # a negative budget is no budget: say why
        may_use = (
            "less than llama-server's CUDA context and --fit's 1 GiB margin take "
            f"({(first_plan.vram - first_plan.budget) / GIB:.1f} GiB), so no layer goes on it"
        )
    say(
        f"{first_plan.vram / GIB:.1f} GiB free: {may_use}; KV cache {kv_cache}, flash "
        f"attention {'on' if flash else 'off'}; RECOMMENDED leaves "
        f"{RELOAD_HEADROOM // MIB} MiB more for a reload"
    )
    say(
        f"{'VARIANT':<16} {'NUM_CTX':>7} {'WEIGHTS':>8} {'KV':>6} {'COMPUTE':>7} "
        f"{'TOTAL':>6}  {'ON GPU':<7} {'MAX':>7} RECOMMENDED"
    )
    for name, p in rows:
        n = p.need
        say(
            f"{name:<16} {n.num_ctx:>7} {n.weights / GIB:>8.1f} {n.kv_cache / GIB:>6.1f} "
            f"{n.compute / GIB:>7.2f} {n.total / GIB:>6.1f}  "
            f"{_on_gpu(p):<7} {p.max_ctx:>7} {p.recommended_ctx}"
        )
    for line in _plan_notes(rows, asked):  # on stderr, as --ctx's: stdout stays the table
        err(line)
    return 0


def _plan_notes(rows: list[tuple[str, Plan]], asked: dict[str, int]) -> list[str]:
    """What the table cannot say by itself: a num_ctx planned shorter than the catalog's (the
    training context), and why MAX is 0."""
    from qwq_ollama.checks.memory_plan import GIB

    notes = []
    for name, p in rows:
        if p.need.num_ctx < asked[name]:
            notes.append(
                f"{name}: num_ctx {asked[name]} is beyond the model's training context: Ollama "
                f"runs it at {p.need.num_ctx}, and the row is planned at that"
            )
        if p.max_ctx == 0:
            room = max(p.budget, 0) / GIB
            notes.append(
                f"{name}: MAX 0: no num_ctx keeps every layer on the GPU (the weights alone "
                f"need {p.need.weights / GIB:.1f} GiB, the GPU can hold {room:.1f}); Ollama "
                "puts layers on the CPU and decodes slower: a larger GPU or a smaller quant"
            )
    return notes


def _plan_document(
    rows: list[tuple[str, Plan]], asked: dict[str, int], kv_cache: str, flash: bool
) -> dict[str, Any]:
    first = rows[0][1]
    return {
        "vram": first.vram,
        "budget": first.budget,
        "kv_cache": kv_cache,
        "flash_attention": flash,
        "variants": [
            {
                "variant": name,
                "num_ctx_asked": asked[name],
                "num_ctx": p.need.num_ctx,
                "weights": p.need.weights,
                "kv": p.need.kv_cache,
                "compute": p.need.compute,
                "total": p.need.total,
                "on_gpu": _on_gpu(p),
                "max_ctx": p.max_ctx,
                "recommended_ctx": p.recommended_ctx,
            }
            for name, p in rows
        ],
        "notes": _plan_notes(rows, asked),
    }


def _on_gpu(p: Plan) -> str:
    """all: on the GPU, also after a reload; tight: on the GPU, but a reload may spill."""
    return "all" if p.reload_safe else "tight" if p.fits else "partial"


def _say_source(source: ShapeSource) -> None:
    """On stderr: where a remote header came from and what it cost (stdout stays the table)."""
    read, where = source.network_bytes, source.where
    if where and where.startswith(("hf://", "http")):
        cost = f"{read / 1e6:.1f} MB over the network" if read else "from the header cache"
        from qwq_ollama.redaction import redact

        err(f"header of {redact(where)}: {cost}")


def _print_context_choice(choice: ContextChoice) -> None:
    from qwq_ollama.checks.memory_plan import GIB, KV_BY_SPEED, MIB, RELOAD_HEADROOM

    plans = choice.plans
    first = plans[KV_BY_SPEED[0]]
    if choice.beyond_training:
        err(
            f"num_ctx {choice.num_ctx} is beyond the model's training context "
            f"({choice.trained}): Ollama runs it at {choice.trained}, and the plan below is "
            "for that"
        )
    say(
        f"num_ctx {choice.num_ctx} on {first.vram / GIB:.1f} GiB free (llama-server may "
        f"use {first.budget / GIB:.1f}), flash attention on; fits means with "
        f"{RELOAD_HEADROOM // MIB} MiB left for a reload (RECOMMENDED)"
    )
    say(
        f"{'KV CACHE':<9} {'WEIGHTS':>8} {'KV':>6} {'COMPUTE':>7} {'TOTAL':>6}  "
        f"{'ON GPU':<7} {'MAX':>7} RECOMMENDED"
    )
    for kv in KV_BY_SPEED:
        p = plans[kv]
        n = p.need
        say(
            f"{kv:<9} {n.weights / GIB:>8.1f} {n.kv_cache / GIB:>6.1f} "
            f"{n.compute / GIB:>7.2f} {n.total / GIB:>6.1f}  "
            f"{_on_gpu(p):<7} {p.max_ctx:>7} {p.recommended_ctx}"
        )
    fitting, fastest = choice.fitting, choice.fastest
    if fastest is None:
        say(
            "fits: none of them; layers move to the CPU and decode slows to about a "
            "quarter with 10 of 65 layers there (docs/gpu.md): lower num_ctx, or a "
            "smaller quant or a larger GPU"
        )
        return
    setting = "the default" if fastest == "f16" else f"OLLAMA_KV_CACHE_TYPE={fastest}"
    say(
        f"fits: {', '.join(fitting)}; fastest that fits: {fastest} ({setting}; on the "
        "H200, f16 decoded fastest and each quantised cache a little slower)"
    )


def download(
    quant: Annotated[str, typer.Option(help="Quantisation, e.g. Q4_K_M.")] = "Q4_K_M",
    repo: Annotated[str, typer.Option(help="Hugging Face repository.")] = "unsloth/QwQ-32B-GGUF",
    dir_: Annotated[
        Path | None,
        typer.Option(
            "--dir", help="Download into this folder (default: the Hugging Face cache, $HF_HOME)."
        ),
    ] = None,
    vram: Annotated[
        str | None,
        typer.Option(
            "--vram",
            help="Free GPU memory, e.g. "
            "24GiB (default: nvidia-smi's, when there is a GPU): first say in "
            "one line whether the file will fit.",
        ),
    ] = None,
    catalog: CatalogOpt = None,
) -> int:
    """Fetch the GGUF (resumable; honours HF_HOME, HF_TOKEN, HF_HUB_OFFLINE)."""
    from qwq_ollama.artifacts.download import check_quant, download_gguf
    from qwq_ollama.checks.memory_plan import download_verdict

    said = download_verdict(catalog_at(catalog), repo, check_quant(quant), vram)
    if said:
        err(said)
    for path in download_gguf(repo, quant, dir_):
        say(str(path))
    return 0
