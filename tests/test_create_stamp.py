"""`create` with nothing to do answers from its stamp; any change still reaches the daemon.

A private daemon and cache per module: these tests edit the catalog, touch the GGUF and change
models behind the tool's back, which the session daemon's other users must not see.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from qwq_ollama.catalog.builtin_weights import smollm2_path
from qwq_ollama.catalog.schema import load_catalog
from qwq_ollama.daemon.client import OllamaAPI
from qwq_ollama.daemon.quick_create import parse_create_args, request_for, stamp_path
from qwq_ollama.daemon.registry import CreateReport, stamp_create
from qwq_ollama.engines.install import OllamaBinary
from qwq_ollama.engines.private_daemon import OllamaDaemon

# `create` with no names registers the catalog's default set
VARIANTS = [v.name for v in load_catalog().chosen()]


@pytest.fixture(scope="module")
def own_cache(tmp_path_factory: pytest.TempPathFactory, small_gguf: Path) -> Path:
    """A cache holding its own copy of the small GGUF (so tests may touch it) and no stamps."""
    cache = tmp_path_factory.mktemp("cache")
    target = cache / "models" / smollm2_path().name
    target.parent.mkdir(parents=True)
    shutil.copyfile(small_gguf, target)
    return cache


@pytest.fixture(scope="module")
def own_daemon(
    ollama_binary: OllamaBinary, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OllamaDaemon]:
    with OllamaDaemon(ollama_binary.path, tmp_path_factory.mktemp("models")) as running:
        yield running


@pytest.fixture()
def project(project_copy: Path, own_daemon: OllamaDaemon) -> Path:
    """The folder a user runs `create` in: its catalog and templates are ours to edit. Each
    test starts with no variant on the module's daemon (the base model may stay), so none
    depends on what an earlier one registered or left in its stamps."""
    api = OllamaAPI(own_daemon.host)
    for name in VARIANTS:
        api.delete(name)
    return project_copy


def create(
    project: Path, cache: Path, host: str, *extra: str, trace_imports: bool = False
) -> subprocess.CompletedProcess[str]:
    """`qwq-ollama create` as a user runs it, from the project folder (default catalog)."""
    flags = ["-X", "importtime"] if trace_imports else []
    env = {**os.environ, "QWQ_OLLAMA_CACHE": str(cache)}
    env.pop("QWQ_OLLAMA_CATALOG", None)
    return subprocess.run(
        [
            sys.executable,
            *flags,
            "-m",
            "qwq_ollama",
            "create",
            "--weights",
            "smollm2-135m",
            "--host",
            host,
            *extra,
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=project,
        timeout=300,
    )


def loaded_client(result: subprocess.CompletedProcess[str]) -> bool:
    """Whether the run imported the ollama client, i.e. took the full path."""
    return any(
        line.startswith("import time:") and line.rsplit("|", 1)[-1].strip() == "ollama"
        for line in result.stderr.splitlines()
    )


def test_an_unchanged_rerun_answers_like_the_full_run_without_loading_the_client(
    project: Path, own_cache: Path, own_daemon: OllamaDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = create(project, own_cache, own_daemon.host)
    assert first.returncode == 0, first.stderr
    assert first.stdout == "".join(f"created {name}\n" for name in VARIANTS)
    quick = create(project, own_cache, own_daemon.host, trace_imports=True)
    assert quick.returncode == 0, quick.stderr
    assert quick.stdout == "".join(f"{name} is up to date\n" for name in VARIANTS)
    assert not loaded_client(quick)
    # Without its stamp the same re-run takes the full path, and prints the same.
    monkeypatch.chdir(project)
    monkeypatch.setenv("QWQ_OLLAMA_CACHE", str(own_cache))
    monkeypatch.delenv("QWQ_OLLAMA_CATALOG", raising=False)
    Path(stamp_path(request_for(None, "smollm2-135m", None, own_daemon.host))).unlink()
    full = create(project, own_cache, own_daemon.host, trace_imports=True)
    assert loaded_client(full)
    assert full.stdout == quick.stdout


def test_a_catalog_edit_reaches_the_daemon(
    project: Path, own_cache: Path, own_daemon: OllamaDaemon
) -> None:
    assert create(project, own_cache, own_daemon.host).returncode == 0
    catalog = project / "modelfiles" / "models.yaml"
    text = catalog.read_text()
    assert "      min_p: 0.1\n      top_k: 0\n" in text
    catalog.write_text(
        text.replace("      min_p: 0.1\n      top_k: 0\n", "      min_p: 0.07\n      top_k: 0\n")
    )
    edited = create(project, own_cache, own_daemon.host)
    assert edited.returncode == 0, edited.stderr
    assert "created qwq-minp" in edited.stdout and "qwq-fixed is up to date" in edited.stdout
    shown = OllamaAPI(own_daemon.host).show("qwq-minp")
    assert shown is not None
    assert shown.parameters["min_p"] == pytest.approx(0.07)
    again = create(project, own_cache, own_daemon.host, trace_imports=True)
    assert "qwq-minp is up to date" in again.stdout and not loaded_client(again)


def test_a_template_edit_is_checked_by_the_full_run(
    project: Path, own_cache: Path, own_daemon: OllamaDaemon
) -> None:
    assert create(project, own_cache, own_daemon.host).returncode == 0
    source = project / "templates" / "qwq" / "ollama.gotmpl.j2"
    source.write_text(source.read_text() + "(# a comment renders to nothing #)\n")
    result = create(project, own_cache, own_daemon.host, trace_imports=True)
    assert result.returncode == 0, result.stderr
    assert loaded_client(result)
    assert result.stdout.count("is up to date") == len(VARIANTS)


def test_models_changed_or_deleted_behind_its_back_are_recreated(
    project: Path, own_cache: Path, own_daemon: OllamaDaemon
) -> None:
    assert create(project, own_cache, own_daemon.host).returncode == 0
    api = OllamaAPI(own_daemon.host)
    for _ in api.create("qwq-fixed", from_="qwq-fixed", parameters={"repeat_penalty": 1.3}):
        pass
    api.delete("qwq-noprefill")
    result = create(project, own_cache, own_daemon.host)
    assert result.returncode == 0, result.stderr
    assert "created qwq-fixed" in result.stdout and "created qwq-noprefill" in result.stdout
    assert "qwq-minp is up to date" in result.stdout
    shown = api.show("qwq-fixed")
    assert shown is not None
    assert shown.parameters["repeat_penalty"] == 1.0


def test_touched_weights_take_the_full_run(
    project: Path, own_cache: Path, own_daemon: OllamaDaemon
) -> None:
    assert create(project, own_cache, own_daemon.host).returncode == 0
    gguf = next((own_cache / "models").glob("*.gguf"))
    info = gguf.stat()
    os.utime(gguf, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))
    result = create(project, own_cache, own_daemon.host, trace_imports=True)
    assert result.returncode == 0, result.stderr
    assert loaded_client(result) and result.stdout.count("is up to date") == len(VARIANTS)


def test_weights_from_the_hub_are_never_vouched_for_by_a_stamp(
    project: Path, own_cache: Path, own_daemon: OllamaDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert create(project, own_cache, own_daemon.host).returncode == 0
    monkeypatch.chdir(project)
    monkeypatch.setenv("QWQ_OLLAMA_CACHE", str(own_cache))
    monkeypatch.delenv("QWQ_OLLAMA_CATALOG", raising=False)
    request = request_for(None, "smollm2-135m", None, own_daemon.host)
    assert Path(stamp_path(request)).exists()
    report = CreateReport(variants=list(VARIANTS), from_hub=True)
    assert not stamp_create(OllamaAPI(own_daemon.host), load_catalog(), report, request)
    assert not Path(stamp_path(request)).exists()


def test_a_stopped_daemon_is_reported_not_answered_from_the_stamp(
    project: Path, own_cache: Path, ollama_binary: OllamaBinary, tmp_path: Path
) -> None:
    with OllamaDaemon(ollama_binary.path, tmp_path / "models") as short_lived:
        host = short_lived.host
        assert create(project, own_cache, host).returncode == 0
        assert create(project, own_cache, host).stdout.count("is up to date") == len(VARIANTS)
    result = create(project, own_cache, host)
    assert result.returncode == 3
    assert "cannot reach Ollama" in result.stderr and "up to date" not in result.stdout


@pytest.mark.parametrize(
    "args, taken",
    [
        (["create"], True),
        (["create", "qwq-fixed", "--weights=w", "--host", "h"], True),
        (["create", "--catalog", "c.yaml", "qwq-minp"], True),
        (["create", "--help"], False),
        (["create", "--host", "a", "--host", "b"], False),
        (["create", "--weights"], False),
        (["create", "--bogus"], False),
        (["list"], False),
    ],
)
def test_only_plain_create_requests_are_answered_early(args: list[str], taken: bool) -> None:
    assert (parse_create_args(args) is not None) is taken


def test_a_host_name_with_several_addresses_is_answered_early(
    project: Path, own_cache: Path, own_daemon: OllamaDaemon
) -> None:
    # A name for getaddrinfo to resolve, not an address.
    host = own_daemon.host.replace("127.0.0.1", "localhost")
    assert create(project, own_cache, host).returncode == 0
    quick = create(project, own_cache, host, trace_imports=True)
    assert quick.returncode == 0, quick.stderr
    assert quick.stdout.count("is up to date") == len(VARIANTS) and not loaded_client(quick)
