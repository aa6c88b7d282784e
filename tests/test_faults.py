"""Faults: an absent daemon, a daemon killed mid-create, a refused variant, a full disk, two
creates at once. Each ends in a clear message, a non-zero exit, and a consistent state."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from qwq_ollama.catalog.schema import load_catalog
from qwq_ollama.daemon.answers import Shown
from qwq_ollama.daemon.client import OllamaAPI
from qwq_ollama.daemon.registry import Registrar, desired_state, drift
from qwq_ollama.engines.private_daemon import OllamaDaemon
from qwq_ollama.errors import DaemonError

from .conftest import ROOT, catalog_with_copies, run_cli, snapshot

DOWN = "127.0.0.1:9"


def test_daemon_down_before_the_run_is_one_clear_line() -> None:
    for args in (["create"], ["list"], ["validate", "qwq-fixed"]):  # unseeded: no daemon
        result = run_cli(*args, "--host", DOWN)
        assert result.returncode == 3, args
        assert result.stderr == (
            f"Error: cannot reach Ollama at http://{DOWN}: start it "
            "(`ollama serve`) or point OLLAMA_HOST / --host at a running "
            "daemon\n"
        )


def test_a_daemon_that_never_answers_is_exit_3_with_the_step_marked(
    silent_host: str, tmp_path: Path
) -> None:
    out = tmp_path / "partial.json"
    result = run_cli(
        "validate",
        "qwq-fixed",
        "--weights",
        "smollm2-135m",
        "--checks",
        "registration,generation",
        "--seed",
        "1",
        "--timeout",
        "0.5",
        "--host",
        silent_host,
        "--json-file",
        str(out),
    )
    assert result.returncode == 3, result.stdout + result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: ") and "did not answer within" in last, last
    assert silent_host in last
    saved = json.loads(out.read_text())
    assert saved["failed"] is True
    marked = [f for f in saved["findings"] if f["status"] == "error"]
    assert marked and "did not answer within" in marked[0]["message"], saved


def test_daemon_killed_during_create_leaves_each_variant_old_or_new(
    ollama_binary, project_copy: Path, tmp_path: Path
) -> None:
    catalog_file = project_copy / "modelfiles" / "models.yaml"
    new = load_catalog(catalog_file)
    old_file = project_copy / "modelfiles" / "old.yaml"
    old_file.write_text(catalog_file.read_text().replace("num_ctx: 16384", "num_ctx: 12288"))
    old = load_catalog(old_file)
    models = tmp_path / "models"
    weights = new.weights["smollm2-135m"]
    with OllamaDaemon(ollama_binary.path, models) as daemon:
        Registrar(OllamaAPI(daemon.host), old).create(None, "smollm2-135m")

        def kill_on_second_variant(name: str, _update: object) -> None:
            # Runs inside the create loop, on the daemon's first status line for the second
            # variant: the kill lands mid-run whatever the machine's load.
            if name == "qwq-noprefill" and daemon.process is not None:
                os.killpg(daemon.process.pid, signal.SIGKILL)

        with pytest.raises(DaemonError) as failure:
            Registrar(OllamaAPI(daemon.host), new, kill_on_second_variant).create(
                None, "smollm2-135m"
            )
    assert str(failure.value).startswith(("lost the connection to Ollama", "cannot reach Ollama"))
    assert "\n" not in str(failure.value)
    with OllamaDaemon(ollama_binary.path, models) as restarted:
        api = OllamaAPI(restarted.host)
        states = {}
        for name in [v.name for v in new.chosen()]:  # what create(None) registers
            shown = api.show(name)
            assert shown is not None, f"{name} vanished"
            is_new = not drift(desired_state(new, new.variant(name), weights), shown)
            is_old = not drift(desired_state(old, old.variant(name), weights), shown)
            assert is_new or is_old, (name, shown.parameters)
            states[name] = "new" if is_new else "old"
        assert states["qwq-fixed"] == "new"
        assert "old" in states.values()  # the kill landed before the last variant


def test_a_variant_the_daemon_refuses_is_not_registered(
    api: OllamaAPI, daemon, project_copy: Path
) -> None:
    family = project_copy / "templates" / "unparsable"
    family.mkdir()
    (family / "chat_template.jinja.j2").write_text("{{ messages }}")
    (family / "ollama.gotmpl.j2").write_text("{{ if .Messages }}unclosed")
    shutil.copyfile(project_copy / "templates" / "qwq" / "family.yaml", family / "family.yaml")
    catalog_file = project_copy / "modelfiles" / "models.yaml"
    catalog_file.write_text(
        catalog_file.read_text() + "  qwq-unparsable:\n    template: unparsable\n"
    )
    before = sorted(api.list_names())
    result = run_cli(
        "create",
        "qwq-unparsable",
        "--weights",
        "smollm2-135m",
        "--catalog",
        str(catalog_file),
        "--host",
        daemon.host,
    )
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: Ollama refused qwq-unparsable: template error")
    after = sorted(api.list_names())
    assert "qwq-unparsable:latest" not in after
    # Only the weights import may appear: the base model and the alias naming its file.
    new = set(after) - set(before)
    assert all(n.startswith("qwq-ollama-weights/smollm2-135m:") for n in new), new


def test_disk_full_during_render_writes_nothing(project_copy: Path) -> None:
    catalog_file = project_copy / "modelfiles" / "models.yaml"
    catalog_file.write_text(catalog_file.read_text().replace("num_ctx: 16384", "num_ctx: 16000"))
    before = snapshot(project_copy / "modelfiles")

    def small_disk() -> None:  # files may not grow past 2 KiB: like a disk that fills up
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))

    result = subprocess.run(
        [sys.executable, "-m", "qwq_ollama", "render", "--catalog", str(catalog_file)],
        capture_output=True,
        text=True,
        preexec_fn=small_disk,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("Error: ") and "cannot write: File too large" in result.stderr
    assert snapshot(project_copy / "modelfiles") == before  # no temp files, no partial files


def test_unwritable_output_dir_is_exit_2(project_copy: Path) -> None:
    blocker = project_copy / "blocker"
    blocker.write_text("a file, not a folder")
    result = run_cli(
        "render",
        "--weights",
        "smollm2-135m",
        "--out",
        str(blocker / "out"),
        "--catalog",
        str(project_copy / "modelfiles" / "models.yaml"),
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"Error: {blocker}")
    assert blocker.read_text() == "a file, not a folder"


LOCKED = "Error: another `qwq-ollama create` is registering models with "


def test_a_create_while_another_holds_the_lock_is_refused_and_changes_nothing(
    api: OllamaAPI, daemon, registered, project_copy: Path
) -> None:
    # Work to do (a variant not registered yet): an unchanged re-run is answered from its stamp
    # without the lock, so it would pass or fail by what earlier tests left behind.
    catalog = catalog_with_copies(project_copy, "qwq-minp", prefix="locked")
    args = (
        "create",
        "locked-qwq-minp",
        "--weights",
        "smollm2-135m",
        "--catalog",
        str(catalog.path),
        "--host",
        daemon.host,
    )
    with Registrar(api, catalog).creation_lock():
        held = run_cli(*args)
    assert (held.returncode, held.stderr.startswith(LOCKED + daemon.host)) == (2, True), held
    assert api.show("locked-qwq-minp") is None
    after = run_cli(*args)
    assert after.returncode == 0 and "created locked-qwq-minp" in after.stdout, after.stderr


def test_two_creates_at_once_end_consistent(
    api: OllamaAPI, daemon, registered, project_copy: Path
) -> None:
    catalog = catalog_with_copies(project_copy, "qwq-minp", "qwq-baseline", prefix="raced")
    names = ["raced-qwq-minp", "raced-qwq-baseline"]
    cmd = [
        sys.executable,
        "-m",
        "qwq_ollama",
        "create",
        *names,
        "--weights",
        "smollm2-135m",
        "--catalog",
        str(catalog.path),
        "--host",
        daemon.host,
    ]
    runs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        for _ in range(2)
    ]
    results = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in runs]  # type: ignore[union-attr]
    # Each run either registered both (or found them done), or was refused at once by the lock
    # with its one-line reason: never a half-done run, a traceback or a silent exit.
    for code, out, err in results:
        if code == 0:
            assert all(f"created {n}\n" in out or f"{n} is up to date\n" in out for n in names), out
        else:
            assert (code, err.startswith(LOCKED), err.count("\n")) == (2, True, 1), err
    assert any(code == 0 for code, _, _ in results)
    weights = catalog.weights["smollm2-135m"]
    for name in names:
        assert (
            drift(desired_state(catalog, catalog.variant(name), weights), api.show(name) or Shown())
            == {}
        ), name


def test_chat_with_an_unregistered_variant_suggests_create(daemon, tmp_path) -> None:
    # a catalog that names qwq-nowhere (a name outside every catalog is refused before any
    # request: tests/test_cli_contract.py), so that the daemon is asked and says no
    source = (ROOT / "modelfiles" / "models.yaml").read_text()
    nowhere = tmp_path / "models.yaml"
    nowhere.write_text(
        source.replace("templates: ../templates", f"templates: {ROOT / 'templates'}").replace(
            "qwq-fixed", "qwq-nowhere"
        )
    )
    result = run_cli(
        "chat", "qwq-nowhere", "hi", "--seed", "1", "--catalog", str(nowhere), "--host", daemon.host
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: model qwq-nowhere is not registered at {daemon.host}: "
        "run `qwq-ollama create qwq-nowhere`"
    )
