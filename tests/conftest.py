"""Shared fixtures: a real Ollama daemon on a free loopback port, once per pinned version (every
live test runs on each), the small model, and a copy of the project's catalog and templates that
tests may edit.

Tiers: a test is `live` exactly when its fixtures reach the real daemon or the Ollama binary
(LIVE_FIXTURES); the marker is added here, so it cannot be forgotten. `pytest -m "not live"`
runs the rest without building Ollama or starting a daemon.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pluggy
import pytest
from pytest_httpserver import HTTPServer

from qwq_ollama.catalog.builtin_weights import ensure_smollm2
from qwq_ollama.catalog.schema import Catalog, load_catalog
from qwq_ollama.checks.fidelity_table import over_stand_ins
from qwq_ollama.daemon.client import OllamaAPI
from qwq_ollama.daemon.registry import (
    BASE_NAMESPACE,
    Registrar,
    base_model_name,
    desired_state,
)
from qwq_ollama.engines.install import COMPAT, CURRENT, PREVIOUS, OllamaBinary, ensure_ollama
from qwq_ollama.engines.private_daemon import OllamaDaemon

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
OFFICIAL_TEMPLATE = (DATA / "official" / "qwq-32b.chat_template.jinja").read_text()
# A test that uses any of these (directly or through another fixture) needs Ollama itself.
LIVE_FIXTURES = frozenset(
    {"ollama_binary", "daemon", "api", "registered", "llama_server_binary", "exported", "upstream"}
)


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `live` every test whose fixture closure reaches the daemon or the binary."""
    for item in items:
        if LIVE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.live)


# Suites CI depends on whose tools `make test` installs (nginx, Chromium): a skip there means the
# proof did not run. Under CI (CI=true, as CI services set it, or QWQ_OLLAMA_NO_SKIP=1, as
# .ci/run sets it) such a skip is a failure, so the build cannot pass green without them.
REQUIRED_SUITES = frozenset({"test_remote_proxy.py", "test_report_browser.py"})


def skips_fail() -> bool:
    return any(
        os.environ.get(name, "").strip().lower() in ("1", "true", "yes")
        for name in ("CI", "QWQ_OLLAMA_NO_SKIP")
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pluggy.Result[pytest.TestReport], None]:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and item.path.name in REQUIRED_SUITES and skips_fail():
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"a suite CI depends on was skipped (CI is set): {reason}"


@pytest.fixture(autouse=True)
def _no_user_daemon(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach a daemon it did not start: point the default at a closed port."""
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:9")


@pytest.fixture(scope="session", params=[CURRENT, PREVIOUS, COMPAT], ids=lambda v: f"ollama-{v}")
def ollama_version(request: pytest.FixtureRequest) -> str:
    """The Ollama version under test: everything below it (binary, daemon, api) follows."""
    return str(request.param)


@pytest.fixture(scope="session")
def ollama_binary(ollama_version: str) -> OllamaBinary:
    return ensure_ollama(ollama_version)


@pytest.fixture(scope="session")
def small_gguf() -> Path:
    return ensure_smollm2()


@pytest.fixture(scope="session")
def daemon(
    ollama_binary: OllamaBinary, small_gguf: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OllamaDaemon]:
    models = tmp_path_factory.mktemp("ollama-models")
    with OllamaDaemon(
        ollama_binary.path, models, env={"OLLAMA_KEEP_ALIVE": "10m", "OLLAMA_NUM_PARALLEL": "1"}
    ) as running:
        yield running


@pytest.fixture(scope="session")
def api(daemon: OllamaDaemon) -> OllamaAPI:
    return OllamaAPI(daemon.host)


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog(ROOT / "modelfiles" / "models.yaml")


@pytest.fixture(scope="session")
def registered(api: OllamaAPI, catalog: Catalog) -> Catalog:
    """Every catalog variant registered over the small model, once per session."""
    Registrar(api, catalog).create(list(catalog.variants), weights_name="smollm2-135m")
    return catalog


@pytest.fixture(scope="session")
def stand_ins(catalog: Catalog) -> Catalog:
    return over_stand_ins(catalog)


@pytest.fixture(scope="session")
def family_api(
    ollama_binary: OllamaBinary, stand_ins: Catalog, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OllamaAPI]:
    """A daemon of its own with every variant registered over its family's stand-in."""
    with OllamaDaemon(
        ollama_binary.path,
        tmp_path_factory.mktemp("family-models"),
        env={"OLLAMA_KEEP_ALIVE": "10m", "OLLAMA_NUM_PARALLEL": "1"},
    ) as daemon:
        api = OllamaAPI(daemon.host)
        Registrar(api, stand_ins).create()
        yield api


@pytest.fixture()
def silent_host() -> Iterator[str]:
    """A loopback port that accepts connections and never answers: a daemon that hangs."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)  # the kernel completes each handshake; nothing ever reads
        yield f"127.0.0.1:{listener.getsockname()[1]}"


@pytest.fixture()
def project_copy(tmp_path: Path) -> Path:
    """A throwaway copy of modelfiles/ and templates/ (what `render` reads and writes)."""
    for name in ("modelfiles", "templates"):
        shutil.copytree(ROOT / name, tmp_path / name)
    return tmp_path


def catalog_with_copies(project: Path, *names: str, prefix: str) -> Catalog:
    """The project copy's catalog plus `<prefix>-<name>` extending each named variant, and no
    `default_variants`, so that every variant, copies included, is the default set.

    A test that deletes or changes models works on its own copies, so the shared variants
    stay as the catalog says whatever order the tests run in.
    """
    catalog_file = project / "modelfiles" / "models.yaml"
    copies = "".join(f"  {prefix}-{name}:\n    extends: {name}\n" for name in names)
    text = re.sub(r"(?m)^default_variants:.*\n", "", catalog_file.read_text())
    catalog_file.write_text(text + copies)  # `variants:` comes last
    return load_catalog(catalog_file)


SMALL_BLOB = "sha256:" + "a" * 64  # a weights blob digest for a scripted daemon


def go_value(value: Any) -> str:
    """A parameter value as /api/show prints it (Go's %#v)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value) if isinstance(value, str) else repr(value)


def show_answer(
    catalog: Catalog, variant: str, weights: str, blob: str, **overrides: Any
) -> dict[str, Any]:
    """What Ollama's /api/show says of a variant created exactly as the catalog says."""
    want = desired_state(catalog, catalog.variant(variant), catalog.weights_named(weights))
    params = {**want.parameters, **overrides.pop("parameters", {})}
    lines = [
        f"{name:<30} {go_value(v)}"
        for name, value in params.items()
        for v in (value if isinstance(value, list) else [value])
    ]
    answer = {
        "template": want.template,
        "system": want.system or "",
        "parameters": "\n".join(lines),
        # as Ollama prints it: the PARSER only there (its own `parser` field stays unset)
        "modelfile": f"# Modelfile\nFROM /models/blobs/{blob.replace(':', '-')}\n"
        + (f"PARSER {want.parser}\n" if want.parser else ""),
        "license": [want.license] if want.license else [],
        "capabilities": ["completion", "tools", "thinking"],
        "model_info": {"general.architecture": "llama", "llama.context_length": 8192},
    }
    answer.update(overrides)
    return answer


class FakeDaemon:
    """Answers /api/version, /api/show (per model), /api/tags and /api/ps like Ollama."""

    def __init__(self, server: HTTPServer, version: str = "0.32.15") -> None:
        self.server = server
        self.models: dict[str, Any] = {}
        server.expect_request("/api/version").respond_with_json({"version": version})
        server.expect_request("/api/ps").respond_with_json({"models": []})
        server.expect_request("/api/show", method="POST").respond_with_handler(self._show)

    def _show(self, request: Any) -> Any:
        from werkzeug.wrappers import Response

        name = request.get_json()["model"]
        if name not in self.models:
            return Response(json.dumps({"error": f"model '{name}' not found"}), status=404)
        return Response(json.dumps(self.models[name]), content_type="application/json")

    def base(self, weights: str, blob: str) -> None:
        self.models[f"{BASE_NAMESPACE}/{weights}"] = {
            "modelfile": f"FROM /models/blobs/{blob.replace(':', '-')}\n",
            "parameters": "",
        }


@pytest.fixture()
def fake(httpserver: HTTPServer) -> FakeDaemon:
    """A scripted daemon on loopback, holding no model until a test adds some."""
    return FakeDaemon(httpserver)


@pytest.fixture()
def fake_api(httpserver: HTTPServer) -> Iterator[OllamaAPI]:
    """The client pointed at the scripted daemon (not named `api`: that one is live)."""
    client = OllamaAPI(httpserver.url_for("/").rstrip("/"), timeout=5.0)
    yield client
    client.close()


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under `root` and its bytes: to prove a failed command changed nothing."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def f32(x: float) -> float:
    """`x` as Ollama keeps a float parameter (float32)."""
    return float(struct.unpack("f", struct.pack("f", x))[0])


@pytest.fixture(scope="module")
def small_base(api: OllamaAPI, catalog: Catalog) -> str:
    """The small model as a base model on the daemon, for variants created by hand."""
    Registrar(api, catalog).create(["qwq-fixed"], "smollm2-135m")
    return base_model_name(catalog.weights["smollm2-135m"])


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """The real command line, as a user runs it."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "qwq_ollama", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd or ROOT,
        timeout=900,
    )


def load_generator():  # noqa: ANN201 - a module loaded from gpu/, untyped
    """gpu/make_qwq_shaped_gguf.py as a module (it is a script, not part of the package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "qwq_shaped", ROOT / "gpu" / "make_qwq_shaped_gguf.py"
    )
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = module  # type: ignore[union-attr]  # its dataclasses look it up
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture(scope="session")
def qwq_shaped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A full-size QwQ-32B-shaped Q4_K_M GGUF (19.85 GB, sparse: a few MB on disk), the file the
    H200 measurements used, with a tiny tokenizer padded to QwQ's vocabulary."""
    import gguf

    folder = tmp_path_factory.mktemp("qwq")
    tokenizer = folder / "tok.gguf"
    writer = gguf.GGUFWriter(tokenizer, "llama")
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "a", "b", "ab"])
    writer.add_token_types([3, 3, 3, 1, 1, 1])
    writer.add_token_merges(["a b"])
    for write in (
        writer.write_header_to_file,
        writer.write_kv_data_to_file,
        writer.write_ti_data_to_file,
    ):
        write()
    writer.close()
    out = folder / "qwq-32b-shaped.gguf"
    load_generator().write_qwq_shaped(out, tokenizer, mix="q4_k_m")
    return out
