"""`doctor` against the real daemon: registration, drift, context, loaded models, no daemon."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import ollama
import pytest

from qwq_ollama.catalog.schema import Catalog
from qwq_ollama.checks.doctor import diagnose
from qwq_ollama.checks.findings import Finding
from qwq_ollama.daemon.client import OllamaAPI
from qwq_ollama.daemon.registry import Registrar

from .conftest import catalog_with_copies, run_cli

WEIGHTS = "smollm2-135m"
NO_DAEMON = "127.0.0.1:9"


@pytest.fixture()
def in_sync(api: OllamaAPI, registered: Catalog) -> Iterator[Catalog]:
    """Every variant as the catalog says (other tests may have changed one), before and after."""
    Registrar(api, registered).create(weights_name=WEIGHTS)
    yield registered
    Registrar(api, registered).create(weights_name=WEIGHTS)


def by_check(findings: list[Finding], check: str) -> list[Finding]:
    return [f for f in findings if f.check == check]


def test_registered_variants_are_all_ok(api: OllamaAPI, in_sync: Catalog) -> None:
    findings = diagnose(api, in_sync, WEIGHTS)
    assert findings[0].check == "daemon" and api.host in findings[0].message
    assert findings[0].message.startswith(f"Ollama {api.version()} at ")
    assert by_check(findings, "registration") == [
        Finding(name, "registration", "pass", f"{name} is registered and matches the catalog")
        for name in [v.name for v in in_sync.chosen()]
    ]
    assert [f.status for f in findings if f.status in ("fail", "error")] == []


def own_copy(api: OllamaAPI, project: Path, variant: str, prefix: str) -> tuple[Catalog, str]:
    """A catalog with its own copy of `variant`, everything in it registered as it says: a test
    changes or deletes the copy, never a variant other tests rely on, whatever the order."""
    catalog = catalog_with_copies(project, variant, prefix=prefix)
    Registrar(api, catalog).create(weights_name=WEIGHTS)
    return catalog, f"{prefix}-{variant}"


def test_changed_parameters_are_named_with_both_values(
    api: OllamaAPI, daemon, registered, project_copy: Path
) -> None:
    catalog, name = own_copy(api, project_copy, "qwq-fixed", "drift")
    for _ in api.create(name, from_=name, parameters={"temperature": 0.9}):
        pass
    findings = diagnose(api, catalog, WEIGHTS)
    errors = [f for f in findings if f.status in ("fail", "error")]
    assert errors == [
        Finding(
            name,
            "registration",
            "fail",
            f"{name} differs from the catalog in parameters (temperature: catalog 0.6, live 0.9)",
            f"qwq-ollama create {name} --weights smollm2-135m",
        )
    ]
    result = run_cli(
        "doctor", "--host", daemon.host, "--weights", WEIGHTS, "--catalog", str(catalog.path)
    )
    assert result.returncode == 1, result.stderr
    assert (
        f"FAIL   registration  {name:<22} {name} differs from the catalog in parameters "
        f"(temperature: catalog 0.6, live 0.9)  (fix: qwq-ollama create {name} --weights "
        "smollm2-135m)"
    ) in result.stdout.splitlines()
    Registrar(api, catalog).create([name], WEIGHTS)
    assert [f for f in diagnose(api, catalog, WEIGHTS) if f.status in ("fail", "error")] == []


def test_unregistered_variant_is_a_warning_with_the_create_command(
    api: OllamaAPI, registered, project_copy: Path
) -> None:
    catalog, name = own_copy(api, project_copy, "qwq-minp", "gone")
    api.delete(name)
    findings = {f.subject: f for f in by_check(diagnose(api, catalog, WEIGHTS), "registration")}
    assert findings[name] == Finding(
        name,
        "registration",
        "warn",
        f"{name} is not registered",
        f"qwq-ollama create {name} --weights smollm2-135m",
    )
    assert {f.status for s, f in findings.items() if s != name} == {"pass"}


def test_without_weights_it_says_which_weights_a_variant_runs_over(
    api: OllamaAPI, in_sync: Catalog
) -> None:
    findings = by_check(diagnose(api, in_sync), "registration")
    assert findings == [
        Finding(
            name,
            "registration",
            "warn",
            f"{name} is registered over weights smollm2-135m, not its "
            f"catalog weights {variant.weights}",
            f"`qwq-ollama create {name}` for the catalog's "
            "weights, or pass --weights smollm2-135m if these are meant",
        )
        for name, variant in [(v.name, v) for v in in_sync.chosen()]
    ]


def test_context_above_the_models_own_is_reported(api: OllamaAPI, in_sync: Catalog) -> None:
    # SmolLM2-135M was trained for 8192 tokens; the catalog asks for 16384, which Ollama clamps.
    context = by_check(diagnose(api, in_sync, WEIGHTS), "context")
    assert [f.message for f in context] == [
        f"{name}: num_ctx 16384 is above the model's trained context 8192; Ollama clamps it to 8192"
        for name in [v.name for v in in_sync.chosen()]
    ]
    assert {f.status for f in context} == {"warn"}


def unload_everything(api: OllamaAPI) -> None:
    """Empty the daemon's memory and wait until /api/ps says so.

    Every variant over the same weights shares one runner, which /api/ps lists under the name
    of whichever model loaded it: without this the name depends on which test chatted last.
    """
    client = ollama.Client(host=api.host)
    for model in api.loaded_models():
        client.generate(model=model.name, keep_alive=0)
    deadline = time.monotonic() + 60
    while api.loaded_models():
        assert time.monotonic() < deadline, api.loaded_models()
        time.sleep(0.2)


def test_a_loaded_model_shows_its_offload_and_context(api: OllamaAPI, in_sync: Catalog) -> None:
    unload_everything(api)
    for _ in api.chat_stream(
        "qwq-fixed", [{"role": "user", "content": "Hi"}], options={"num_predict": 1, "seed": 1}
    ):
        pass
    loaded = {m.name: m for m in api.loaded_models()}
    assert "qwq-fixed:latest" in loaded
    model = loaded["qwq-fixed:latest"]
    findings = [
        f
        for f in by_check(diagnose(api, in_sync, WEIGHTS), "loaded")
        if f.message.startswith("qwq-fixed:latest: ")
    ]
    gib = f"{model.size / 2**30:.1f} GiB"
    size, vram = model.size, model.size_vram
    expected = (
        f"qwq-fixed:latest: {gib}, none of it in VRAM (CPU only)"
        if vram == 0
        else f"qwq-fixed:latest: all {gib} in VRAM (full GPU offload)"
        if vram >= size
        else f"qwq-fixed:latest: {100 * vram / size:.0f}% of {gib} in VRAM, the rest runs "
        "on the CPU (partial offload, much slower)"
    )
    assert expected in [f.message for f in findings]
    assert (
        Finding(
            "qwq-fixed:latest",
            "loaded",
            "warn",
            "qwq-fixed:latest: loaded with a "
            "context of 8192 tokens, "
            "the model's trained maximum (num_ctx 16384 clamped)",
        )
        in findings
    )
    assert model.context_length == 8192


def test_no_daemon_is_one_error_finding(catalog: Catalog) -> None:
    findings = diagnose(OllamaAPI(NO_DAEMON, timeout=5.0), catalog)
    assert findings == [
        Finding(
            "http://127.0.0.1:9",
            "daemon",
            "error",
            "no Ollama daemon answers at http://127.0.0.1:9",
            "start one (`ollama serve`) or point --host / OLLAMA_HOST at it",
        )
    ]


def test_cli_exit_codes(daemon, in_sync: Catalog) -> None:
    down = run_cli("doctor", "--host", NO_DAEMON)
    assert down.returncode == 3  # no daemon answers: the code every command gives for it
    assert down.stdout.splitlines()[1:] == [
        "ERROR  daemon        http://127.0.0.1:9     no Ollama daemon answers at "
        "http://127.0.0.1:9  (fix: start one (`ollama serve`) or point --host / OLLAMA_HOST at it)"
    ]
    healthy = run_cli("doctor", "--host", daemon.host, "--weights", WEIGHTS)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    lines = healthy.stdout.splitlines()
    assert len(lines) >= 1 + 1 + 2 * len(in_sync.variants) + 1  # header, daemon, variants, loaded
    assert (
        "pass   registration  qwq-fixed              qwq-fixed is registered and matches the "
        "catalog"
    ) in lines


def test_settings_of_a_daemon_on_this_machine_are_read_and_judged(
    ollama_binary, small_gguf, catalog: Catalog, tmp_path
) -> None:
    """A daemon started with a quantized KV cache but flash attention off, and (from 0.30 on)
    the Go TEMPLATE switched off: doctor reads both from its process and says what to do."""
    from qwq_ollama.engines.private_daemon import OllamaDaemon

    settings = {
        "OLLAMA_KV_CACHE_TYPE": "q8_0",
        "OLLAMA_FLASH_ATTENTION": "0",
        "OLLAMA_GO_TEMPLATE": "0",
    }
    with OllamaDaemon(ollama_binary.path, tmp_path / "models", env=settings) as own:
        findings = {f.check: f for f in diagnose(OllamaAPI(own.host), catalog)}
    assert findings["kv-cache"].status == "warn"
    assert findings["kv-cache"].message.startswith("KV cache q8_0, flash attention off")
    assert "OLLAMA_FLASH_ATTENTION=1" in (findings["kv-cache"].fix or "")
    assert findings["disk"].status == "pass"
    assert str(tmp_path / "models") in findings["disk"].message
    if ollama_binary.version.startswith("0.24."):
        assert findings["template"].status == "pass"  # no GGUF template path before 0.30
    else:
        assert findings["template"].status == "fail"
        assert findings["template"].fix == "unset OLLAMA_GO_TEMPLATE and restart the daemon"
