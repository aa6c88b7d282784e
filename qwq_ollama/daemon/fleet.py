"""One command over several Ollama daemons at once: a bounded number in flight, one host's
failure never stopping the others, and one table of host x variant as the answer. The work that
registers runs here; the work that judges (doctor, validate) is in checks/fleet.py.

Each host gets its own OllamaAPI, and Registrar's per-host lock keeps two runs on one daemon
apart; the weights are still imported once per host (Registrar skips a base model already
there), so a re-run only touches what differs.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qwq_ollama.catalog.load import load_yaml_with_lines
from qwq_ollama.catalog.schema import Catalog
from qwq_ollama.daemon.answers import ProgressUpdate
from qwq_ollama.daemon.client import OllamaAPI
from qwq_ollama.daemon.host import parse_host, redact
from qwq_ollama.errors import DaemonError, InputError, QwqOllamaError, RefusedError

DEFAULT_PARALLEL = 4
HostProgress = Callable[[str, str, ProgressUpdate], None]  # host, model, its update


@dataclass(frozen=True)
class Cell:
    """One variant (or other subject) on one host."""

    variant: str
    state: str  # created, Registration.describe() (up to date, ...), pass, FAIL: ...
    ok: bool

    def to_dict(self) -> dict[str, Any]:
        return {"variant": self.variant, "state": self.state, "ok": self.ok}


@dataclass
class HostResult:
    host: str
    state: str = "ok"  # ok, unreachable (the daemon did not answer), error (it refused)
    error: str | None = None
    cells: list[Cell] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.state == "ok" and all(c.ok for c in self.cells)

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "state": self.state,
            "ok": self.ok,
            "error": self.error,
            "variants": [c.to_dict() for c in self.cells],
        }


@dataclass
class FleetReport:
    hosts: list[HostResult]

    @property
    def failed(self) -> bool:
        return not all(h.ok for h in self.hosts)

    def to_dict(self) -> dict[str, Any]:
        """What the fleet commands print with --json (docs/reference.md: JSON output)."""
        return {"failed": self.failed, "hosts": [h.to_dict() for h in self.hosts]}


def load_fleet(file: Path) -> list[str]:
    """The daemons a `hosts.yaml` names (`hosts: [host, ...]`), each checked as --host is."""
    located = load_yaml_with_lines(file)
    data = located.data
    if not isinstance(data, dict) or set(data) != {"hosts"}:
        raise located.error("a fleet file holds one key, `hosts:`, a list of daemons", ())
    hosts = data["hosts"]
    if not isinstance(hosts, list) or not hosts:
        raise located.error("`hosts` must be a non-empty list of daemons", ("hosts",))
    for index, host in enumerate(hosts):
        if not isinstance(host, str):
            raise located.error("each host is a string such as 10.0.0.5:11434", ("hosts", index))
        try:
            parse_host(host, f"{file}")
        except InputError as exc:
            raise located.error(exc.detail, ("hosts", index)) from None
    _warn_if_readable(file, hosts)
    return _unique(hosts, located)


def _warn_if_readable(file: Path, hosts: list[str]) -> None:
    """A fleet file holding a password or token that other users can read says so, on stderr,
    once: the command still runs (the file is the user's to fix)."""
    import stat
    import sys

    from qwq_ollama.redaction import holds_secret

    try:
        mode = file.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRGRP | stat.S_IROTH) and any(holds_secret(h) for h in hosts):
        print(
            f"warning: {file} holds credentials and other users can read it "
            f"(mode {stat.S_IMODE(mode):04o}): chmod 600 {file}",
            file=sys.stderr,
        )


def fleet_hosts(hosts: list[str] | None, fleet_file: Path | None) -> list[str] | None:
    """Every host a command runs on as a fleet (the file's, then each --host, once each); None
    for the one-host run (a single --host, or none)."""
    if fleet_file is None and len(hosts or []) <= 1:
        return None
    named = [*(load_fleet(fleet_file) if fleet_file else []), *(hosts or [])]
    once: dict[str, str] = {}
    for host in named:  # the same daemon, however it is spelled, is worked on once
        once.setdefault(same_daemon(host), host)
    return list(once.values())


def same_daemon(host: str) -> str:
    """What identifies a daemon: the URL connected to (`localhost`, `http://localhost:11434`
    and `localhost:11434/` are one), host names compared without case.

    >>> same_daemon("LocalHost") == same_daemon("http://localhost:11434/")
    True
    """
    address = parse_host(host, "--host")
    return f"{address.scheme}://{address.netloc.lower()}{address.path}"


def _unique(hosts: list[str], located: Any) -> list[str]:
    seen: set[str] = set()
    for index, host in enumerate(hosts):
        key = same_daemon(host)
        if key in seen:
            raise located.error(f"{redact(host)} names a daemon named before it", ("hosts", index))
        seen.add(key)
    return hosts


def run_fleet(
    hosts: list[str],
    work: Callable[[OllamaAPI], list[Cell]],
    parallel: int = DEFAULT_PARALLEL,
    timeout: float = 600.0,
) -> FleetReport:
    """`work` on every host, at most `parallel` at a time; results in the order given."""

    def one(host: str) -> HostResult:
        api = OllamaAPI(host, timeout=timeout)
        try:
            return HostResult(api.host, cells=work(api))
        except RefusedError as exc:
            return HostResult(api.host, "error", str(exc))
        except DaemonError as exc:
            return HostResult(api.host, "unreachable", str(exc))
        except InputError:
            raise  # bad input is the same on every host: the command stops, exit 2
        except QwqOllamaError as exc:
            return HostResult(api.host, "error", str(exc))

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        return FleetReport(list(pool.map(one, hosts)))


def create_cells(
    catalog: Catalog,
    variants: list[str] | None,
    weights: str | None,
    progress: HostProgress | None = None,
) -> Callable[[OllamaAPI], list[Cell]]:
    """Per host: register the variants; each cell says created or up to date.

    The GGUFs on disk are hashed here, once, before any host asks: hosts starting together
    would otherwise each hash a file the digest index does not know yet.
    """
    from qwq_ollama.daemon.digests import file_digest
    from qwq_ollama.daemon.registry import Registrar

    for weights_file in {w.file_on_disk for w in catalog.weights_of(variants, weights)}:
        if weights_file is not None:
            file_digest(weights_file)

    def work(api: OllamaAPI) -> list[Cell]:
        say = (lambda name, update: progress(api.host, name, update)) if progress else None
        report = Registrar(api, catalog, say).create(variants, weights)
        return [
            Cell(v, "created" if v in report.created else "up to date", True)
            for v in report.variants
        ]

    return work


def status_cells(
    catalog: Catalog, weights: str | None, names: list[str] | None = None
) -> Callable[[OllamaAPI], list[Cell]]:
    """Per host: each variant up to date, drifted (which fields), or not registered."""
    from qwq_ollama.daemon.registry import status

    def work(api: OllamaAPI) -> list[Cell]:
        return [
            Cell(row.variant, row.describe(), row.up_to_date)
            for row in status(api, catalog, weights, names)
        ]

    return work
