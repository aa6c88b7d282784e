"""A fleet of daemons: three private ones on loopback ports (one at the other pinned Ollama
version, one stopped mid-run); the table, the JSON and what each daemon holds afterwards."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from qwq_ollama.catalog.schema import Catalog
from qwq_ollama.daemon.client import OllamaAPI
from qwq_ollama.daemon.fleet import create_cells, load_fleet, run_fleet
from qwq_ollama.daemon.quick_create import parse_create_args
from qwq_ollama.daemon.registry import status
from qwq_ollama.engines.install import CURRENT, PREVIOUS, OllamaBinary, ensure_ollama
from qwq_ollama.engines.private_daemon import OllamaDaemon
from qwq_ollama.errors import InputError
from tests.conftest import run_cli

SMALL = "smollm2-135m"


@pytest.fixture()
def three(
    ollama_binary: OllamaBinary, small_gguf: Path, tmp_path: Path
) -> Iterator[list[OllamaDaemon]]:
    """Two daemons at the version under test, the third at the other pinned version."""
    other = ensure_ollama(PREVIOUS if ollama_binary.version == CURRENT else CURRENT)
    with ExitStack() as stack:
        yield [
            stack.enter_context(OllamaDaemon(binary.path, tmp_path / f"models-{i}"))
            for i, binary in enumerate([ollama_binary, ollama_binary, other])
        ]


def _all_up_to_date(host: str, catalog: Catalog) -> bool:
    return all(row.up_to_date for row in status(OllamaAPI(host), catalog, SMALL))


def test_a_host_stopped_mid_run_is_unreachable_and_the_others_complete(
    three: list[OllamaDaemon], catalog: Catalog
) -> None:
    first, second, stopped = three

    def progress(host: str, _name: str, _update: object) -> None:
        if host == first.host and stopped.api is not None:
            stopped.stop()  # one at a time: the third has not started when the first reports
            stopped.api = None

    report = run_fleet(
        [d.host for d in three], create_cells(catalog, None, SMALL, progress), parallel=1
    )
    states = {r.host: r.state for r in report.hosts}
    assert states == {first.host: "ok", second.host: "ok", stopped.host: "unreachable"}
    assert report.failed
    for daemon in (first, second):
        assert _all_up_to_date(daemon.host, catalog)
    again = run_fleet([first.host, second.host], create_cells(catalog, None, SMALL))
    assert not again.failed
    assert {c.state for r in again.hosts for c in r.cells} == {"up to date"}


def test_fleet_commands_print_one_table_and_rerun_touch_nothing(
    three: list[OllamaDaemon], catalog: Catalog, tmp_path: Path
) -> None:
    hosts = [d.host for d in three]
    fleet_file = tmp_path / "hosts.yaml"
    fleet_file.write_text("hosts:\n" + "".join(f"  - {h}\n" for h in hosts))
    created = run_cli("create", "--weights", SMALL, "--fleet", str(fleet_file), "-q")
    assert created.returncode == 0, created.stderr
    lines = created.stdout.splitlines()
    assert lines[0].split() == ["HOST", "VARIANT", "STATE"]
    defaults = [v.name for v in catalog.chosen()]  # none named: what `make models` registers
    for host in hosts:
        for name in defaults:
            assert f"{host:<28} {name:<22} created" in lines
        assert _all_up_to_date(host, catalog)
    rerun = run_cli("create", "--weights", SMALL, *[a for h in hosts for a in ("--host", h)])
    assert rerun.returncode == 0, rerun.stderr
    assert "created" not in rerun.stdout
    assert rerun.stdout.count("up to date") == len(hosts) * len(defaults)

    checked = run_cli(
        "validate",
        "--weights",
        SMALL,
        "--fleet",
        str(fleet_file),
        "--checks",
        "fidelity,registration",
        "--json",
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    document = json.loads(checked.stdout)
    assert document["failed"] is False and [h["host"] for h in document["hosts"]] == hosts

    three[1].stop()
    listed = run_cli("list", "--weights", SMALL, "--fleet", str(fleet_file), "--json")
    assert listed.returncode == 1
    by_host = {h["host"]: h for h in json.loads(listed.stdout)["hosts"]}
    assert by_host[hosts[1]]["state"] == "unreachable"
    for host in (hosts[0], hosts[2]):
        assert by_host[host]["ok"] and len(by_host[host]["variants"]) == len(defaults)


def test_a_fleet_file_error_names_file_line_and_field(tmp_path: Path) -> None:
    fleet_file = tmp_path / "hosts.yaml"
    fleet_file.write_text("hosts:\n  - 127.0.0.1:11434\n  - 127.0.0.1:99999\n")
    with pytest.raises(InputError) as caught:
        load_fleet(fleet_file)
    assert f"{fleet_file}:3" in str(caught.value) and "hosts.1" in str(caught.value)
    result = run_cli("list", "--fleet", str(fleet_file))
    assert result.returncode == 2
    assert f"{fleet_file}:3: hosts.1" in result.stderr and result.stdout == ""


def test_unreachable_hosts_fill_the_table_and_fail_the_command() -> None:
    result = run_cli("doctor", "--host", "127.0.0.1:9", "--host", "127.0.0.1:7")
    assert result.returncode == 1
    rows = result.stdout.splitlines()[1:]
    assert [row.split()[0] for row in rows] == ["http://127.0.0.1:9", "http://127.0.0.1:7"]
    assert all("unreachable: cannot reach Ollama" in row for row in rows)


def test_a_fleet_create_is_never_answered_by_the_one_host_stamp() -> None:
    assert parse_create_args(["create", "--host", "a:1", "--host", "b:1"]) is None
    assert parse_create_args(["create", "--fleet", "hosts.yaml"]) is None
    assert parse_create_args(["create", "--host", "a:1"]) is not None


def test_the_same_daemon_spelled_twice_is_worked_on_once(tmp_path: Path) -> None:
    from qwq_ollama.daemon.fleet import fleet_hosts

    spellings = ["127.0.0.1:9", "http://127.0.0.1:9/", "0.0.0.0:9"]
    assert fleet_hosts(spellings, None) == ["127.0.0.1:9"]
    result = run_cli(
        "doctor", *[a for h in spellings for a in ("--host", h)], "--host", "127.0.0.1:7"
    )
    rows = result.stdout.splitlines()[1:]
    assert [row.split()[0] for row in rows] == ["http://127.0.0.1:9", "http://127.0.0.1:7"]
    fleet_file = tmp_path / "hosts.yaml"
    fleet_file.write_text("hosts:\n  - LOCALHOST:9\n  - http://localhost:9\n")
    with pytest.raises(
        InputError,
        match=r"hosts\.yaml:3: hosts\.1: http://localhost:9 names "
        r"a daemon named before it",
    ):
        load_fleet(fleet_file)


def test_a_fleet_file_with_credentials_that_others_can_read_gets_a_warning(tmp_path: Path) -> None:
    fleet_file = tmp_path / "hosts.yaml"
    fleet_file.write_text("hosts:\n  - http://alice:s3cret@127.0.0.1:9\n  - 127.0.0.1:7\n")
    fleet_file.chmod(0o644)
    result = run_cli("list", "--fleet", str(fleet_file))
    warning = f"warning: {fleet_file} holds credentials and other users can read it (mode 0644)"
    assert warning in result.stderr and "s3cret" not in result.stderr + result.stdout
    fleet_file.chmod(0o600)
    assert "warning" not in run_cli("list", "--fleet", str(fleet_file)).stderr
