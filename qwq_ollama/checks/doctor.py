"""`qwq-ollama doctor`: is this daemon set up to run the catalog's variants well?

Checks the daemon (reachable, version), every variant (registered, identical to the catalog,
context long enough for reasoning) and every loaded model (how much of it sits in VRAM, the
context it was loaded with). Returns findings as data; an unreachable daemon is one error
finding, never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import httpx

from qwq_ollama.catalog.schema import Catalog, Variant
from qwq_ollama.server.client import OllamaAPI, blob_digest_of, parse_show_parameters
from qwq_ollama.errors import DaemonError, InputError
from qwq_ollama.server.registry import base_digest, desired_state, drift, parameters_equal

Level = Literal["ok", "warn", "error"]
SUPPORTED_SERIES = "0.24."
# Ollama v0.24.0 picks this when OLLAMA_CONTEXT_LENGTH is unset and VRAM is under 23 GiB
# (CPU-only too): server/routes.go:1899-1914.
DAEMON_DEFAULT_CONTEXT = 4096
# Below this a QwQ thinking trace (thousands of tokens) is routinely cut off.
MIN_REASONING_CONTEXT = 8192


@dataclass(frozen=True)
class Finding:
    level: Level
    topic: str
    message: str
    fix: str | None = None


def diagnose(api: OllamaAPI, catalog: Catalog, weights_name: str | None = None,
             vram: int | None = None) -> list[Finding]:
    """Every finding: the daemon first, then each variant, then the loaded models.

    With `vram` (bytes free on the GPU), also whether each variant's num_ctx fits on it."""
    version = _version(api)
    if isinstance(version, Finding):
        return [version]
    findings = [_version_finding(api, version)]
    if weights_name is not None:
        catalog.weights_named(weights_name)  # an unknown name is bad input, not a finding
    try:
        bases = _base_digests(api, catalog)
        shown_by_name: dict[str, dict[str, Any] | None] = {}
        for variant in catalog.variants.values():
            shown = shown_by_name[variant.name] = api.show(variant.name)
            findings.append(_registration(catalog, variant, shown, bases, weights_name))
            findings.append(_context(variant, shown))
            if vram is not None and shown is not None:
                findings.append(_gpu_memory(api, variant, vram))
    except DaemonError as exc:  # the daemon went away or refused a request mid-way
        return [*findings, Finding("error", "daemon", str(exc))]
    findings += _loaded(api, catalog, shown_by_name)
    return findings


def _version(api: OllamaAPI) -> str | Finding:
    try:
        return api.version()
    except DaemonError:
        return Finding("error", "daemon", f"no Ollama daemon answers at {api.host}",
                       "start one (`ollama serve`) or point --host / OLLAMA_HOST at it")
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        return Finding("error", "daemon", f"{api.host} does not answer like Ollama "
                       f"(/api/version: {type(exc).__name__})",
                       "point --host / OLLAMA_HOST at an Ollama daemon")


def _version_finding(api: OllamaAPI, version: str) -> Finding:
    if version.startswith(SUPPORTED_SERIES):
        return Finding("ok", "daemon", f"Ollama {version} at {api.host}")
    return Finding("warn", "daemon", f"Ollama {version} at {api.host}; this tool is built and "
                   "tested against v0.24.x (templates, parameters and defaults differ between "
                   "releases)", "run Ollama v0.24.0 (`qwq-ollama install-ollama` builds it)")


def _base_digests(api: OllamaAPI, catalog: Catalog) -> dict[str, str | None]:
    """Each catalog weights name -> the blob digest of its base model here (None if absent)."""
    return {name: base_digest(api, weights) for name, weights in catalog.weights.items()}


def _create_fix(name: str, weights_name: str | None) -> str:
    return f"qwq-ollama create {name}" + (f" --weights {weights_name}" if weights_name else "")


def _registration(catalog: Catalog, variant: Variant, shown: dict[str, Any] | None,
                  bases: dict[str, str | None], weights_name: str | None) -> Finding:
    if shown is None:
        return Finding("warn", "registration", f"{variant.name} is not registered",
                       _create_fix(variant.name, weights_name))
    expected = weights_name or variant.weights
    actual = expected
    live = blob_digest_of(shown.get("modelfile", ""))
    if weights_name is None and live and bases.get(expected) != live:
        # Registered over other catalog weights (`create --weights`): compare against those,
        # so the finding says so instead of listing the fields that follow from it.
        actual = next((name for name, digest in bases.items() if digest == live), expected)
    want = desired_state(catalog, variant, catalog.weights_named(actual))
    diffs = drift(want, shown, bases.get(actual))
    details = "; ".join(_parameter_detail(want.parameters, shown) if d == "parameters" else d
                        for d in diffs)
    if actual != expected:
        message = (f"{variant.name} is registered over weights {actual}, not its catalog "
                   f"weights {expected}")
        if diffs:
            return Finding("error", "registration", f"{message}, and differs in {details}",
                           _create_fix(variant.name, actual))
        return Finding("warn", "registration", message,
                       f"`qwq-ollama create {variant.name}` for the catalog's weights, or pass "
                       f"--weights {actual} if these are meant")
    if diffs:
        return Finding("error", "registration", f"{variant.name} differs from the catalog in "
                       f"{details}", _create_fix(variant.name, weights_name))
    return Finding("ok", "registration", f"{variant.name} is registered and matches the catalog")


def _parameter_detail(want: dict[str, Any], shown: dict[str, Any]) -> str:
    """`parameters (temperature: catalog 0.6, live 0.9; ...)`."""
    live = parse_show_parameters(shown.get("parameters", ""))
    parts = []
    for key in sorted(set(want) | set(live)):
        mine, theirs = want.get(key), live.get(key)
        if mine is None or theirs is None or not parameters_equal({key: mine}, {key: theirs}):
            parts.append(f"{key}: catalog {_show(mine)}, live {_show(theirs)}")
    return f"parameters ({'; '.join(parts)})" if parts else "parameters"


def _show(value: Any) -> str:
    return "unset" if value is None else str(value)


def trained_context(shown: dict[str, Any] | None) -> int | None:
    """The GGUF's `<arch>.context_length` from /api/show, if known."""
    info = (shown or {}).get("model_info") or {}
    arch = info.get("general.architecture")
    value = info.get(f"{arch}.context_length") if arch else None
    return int(value) if isinstance(value, (int, float)) else None


def _context(variant: Variant, shown: dict[str, Any] | None) -> Finding:
    num_ctx = variant.parameters.num_ctx or DAEMON_DEFAULT_CONTEXT
    trained = trained_context(shown)
    if trained is not None and num_ctx > trained:
        return Finding("warn", "context", f"{variant.name}: num_ctx {num_ctx} is above the "
                       f"model's trained context {trained}; Ollama clamps it to {trained}",
                       f"use weights trained for {num_ctx} tokens or more (QwQ-32B: 32768)")
    if num_ctx < MIN_REASONING_CONTEXT:
        return Finding("warn", "context", f"{variant.name}: num_ctx {num_ctx} is short for "
                       "reasoning; thinking traces run to thousands of tokens and get cut",
                       f"set num_ctx to 16384 or more for {variant.name} in the catalog")
    return Finding("ok", "context", f"{variant.name}: num_ctx {num_ctx} set in the model "
                   f"(the daemon's own default is {DAEMON_DEFAULT_CONTEXT} on CPU-only and "
                   "small-GPU machines unless OLLAMA_CONTEXT_LENGTH is set)")


def _gpu_memory(api: OllamaAPI, variant: Variant, vram: int) -> Finding:
    """Whether llama-server (Ollama v0.32) keeps the variant wholly on a GPU with `vram` free."""
    from qwq_ollama.checks import memory_plan

    try:
        shape = memory_plan.model_shape(api, variant.name)
    except (InputError, httpx.HTTPError, ValueError) as exc:
        return Finding("warn", "gpu memory", f"{variant.name}: cannot read its tensors ({exc})")
    num_ctx = variant.parameters.num_ctx or DAEMON_DEFAULT_CONTEXT
    fits, message, fix = memory_plan.verdict(variant.name, memory_plan.plan(shape, num_ctx, vram))
    return Finding("ok" if fits else "warn", "gpu memory", message, fix)


def loaded_models(api: OllamaAPI) -> list[dict[str, Any]]:
    """GET /api/ps: the models the daemon has in memory now."""
    try:
        reply = api.http.get("/api/ps")
    except httpx.TransportError:
        raise DaemonError(f"cannot reach Ollama at {api.host}") from None
    reply.raise_for_status()
    return list(reply.json().get("models") or [])


def _loaded(api: OllamaAPI, catalog: Catalog,
            shown_by_name: dict[str, dict[str, Any] | None]) -> list[Finding]:
    try:
        models = loaded_models(api)
    except (DaemonError, httpx.HTTPError, ValueError) as exc:
        return [Finding("warn", "loaded", f"cannot list loaded models (/api/ps): {exc}")]
    if not models:
        return [Finding("ok", "loaded", "no model is loaded now; run one to check its GPU "
                        "offload and context")]
    findings = []
    for model in models:
        findings.append(_offload(model))
        context = _loaded_context(model, catalog, shown_by_name)
        if context is not None:
            findings.append(context)
    return findings


def _offload(model: dict[str, Any]) -> Finding:
    name = str(model.get("name", "?"))
    size, vram = int(model.get("size") or 0), int(model.get("size_vram") or 0)
    gib = f"{size / 2**30:.1f} GiB"
    if size > 0 and vram >= size:
        return Finding("ok", "loaded", f"{name}: all {gib} in VRAM (full GPU offload)")
    if vram > 0:
        share = 100 * vram / size
        return Finding("warn", "loaded", f"{name}: {share:.0f}% of {gib} in VRAM, the rest runs "
                       "on the CPU (partial offload, much slower)",
                       "lower num_ctx, use a smaller quantisation, or free GPU memory")
    return Finding("warn", "loaded", f"{name}: {gib}, none of it in VRAM (CPU only)",
                   "expected without a GPU; with one, check the `ollama serve` log "
                   "(OLLAMA_DEBUG=1) for why it is not used")


def _loaded_context(model: dict[str, Any], catalog: Catalog,
                    shown_by_name: dict[str, dict[str, Any] | None]) -> Finding | None:
    name = str(model.get("name", ""))
    variant = catalog.variants.get(name.removesuffix(":latest"))
    loaded = model.get("context_length")
    if variant is None or not isinstance(loaded, int) or variant.parameters.num_ctx is None:
        return None
    wanted = variant.parameters.num_ctx
    if loaded >= wanted:
        return Finding("ok", "loaded", f"{name}: loaded with a context of {loaded} tokens")
    if trained_context(shown_by_name.get(variant.name)) == loaded:
        return Finding("warn", "loaded", f"{name}: loaded with a context of {loaded} tokens, "
                       f"the model's trained maximum (num_ctx {wanted} clamped)")
    return Finding("warn", "loaded", f"{name}: loaded with a context of {loaded} tokens, below "
                   f"its num_ctx {wanted}: a client sent a smaller num_ctx with its request",
                   f"have the client leave num_ctx unset (or send {wanted}); reload with "
                   f"`ollama stop {name}`")
