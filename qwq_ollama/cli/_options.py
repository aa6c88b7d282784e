"""The options several commands share, defined once so each means the same everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from qwq_ollama.catalog.schema import Catalog


def _host_checked(value: str | None) -> str | None:
    """Refuse a bad --host, or $OLLAMA_HOST without one, before the command does any work."""
    from qwq_ollama.daemon.host import check_tls_variables, resolve_host

    resolve_host(value)
    check_tls_variables()
    return value


def _hosts_checked(values: list[str] | None) -> list[str] | None:
    for value in values or ():
        _host_checked(value)
    if not values:
        _host_checked(None)
    return values


def seconds_checked(value: float) -> float:
    """A number of seconds: finite and positive (click lets `nan` and `inf` through a range)."""
    import math

    from qwq_ollama.errors import InputError

    if not (math.isfinite(value) and 0 < value <= 7 * 86400):
        raise InputError(f"{value!r} is not a number of seconds in (0, 604800]", field="--timeout")
    return value


CatalogOpt = Annotated[
    Path | None,
    typer.Option(
        "--catalog",
        help="The catalog YAML (default: $QWQ_OLLAMA_CATALOG or modelfiles/models.yaml).",
    ),
]
HostOpt = Annotated[
    str | None,
    typer.Option(
        "--host",
        help="Ollama daemon (default: $OLLAMA_HOST or 127.0.0.1:11434).",
        callback=_host_checked,
    ),
]
# create, list, doctor and validate: --host more than once, or --fleet, runs on every host.
HostsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--host",
        help="Ollama daemon (default: "
        "$OLLAMA_HOST or 127.0.0.1:11434); give it more than once for a fleet.",
        callback=_hosts_checked,
    ),
]
FleetOpt = Annotated[
    Path | None,
    typer.Option(
        "--fleet",
        help="A YAML file `hosts: [...]`: run on every daemon it names (with any --host).",
    ),
]
ParallelOpt = Annotated[
    int, typer.Option("--parallel", min=1, help="With a fleet: hosts worked on at once.")
]
FLEET_COMMANDS = ("create", "list", "doctor", "validate")
WeightsOpt = Annotated[
    str | None,
    typer.Option(
        "--weights",
        help="Register/render over these catalog weights instead of each variant's own.",
    ),
]
LlamaServerOpt = Annotated[
    str | None,
    typer.Option(
        "--llama-server",
        help="With the "
        "llama-cpp engine: a running llama-server (URL), started with the "
        "command `export llama-cpp VARIANT --binary llama-server` prints.",
    ),
]
GgufOpt = Annotated[
    Path | None,
    typer.Option(
        "--gguf",
        help="With the llama-cpp engine: "
        "start a private llama-server (Ollama's own) with the exported command over "
        "this GGUF instead.",
    ),
]
JsonOpt = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print one JSON document on stdout "
        "(schema_version 1, see docs/reference.md); progress stays on stderr.",
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")]
OutOpt = Annotated[
    Path,
    typer.Option(
        "--out", help="Folder to write into (created if missing; every file or none is written)."
    ),
]


def catalog_at(path: Path | None) -> Catalog:
    from qwq_ollama.catalog.schema import load_catalog

    return load_catalog(path)


def first_host(hosts: list[str] | None) -> str | None:
    """The one daemon of a one-host run (None: $OLLAMA_HOST)."""
    return hosts[0] if hosts else None


# Every command that takes variant names: none named is the catalog's one default set.
VariantsArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="Variants (default: the catalog's default_variants, what `make models` registers)."
    ),
]
