"""Commands that prove variants right on an engine: validate, compare, fidelity-table."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from qwq_ollama.cli._options import (
    CatalogOpt,
    FleetOpt,
    GgufOpt,
    HostOpt,
    HostsOpt,
    JsonOpt,
    LlamaServerOpt,
    ParallelOpt,
    QuietOpt,
    VariantsArg,
    WeightsOpt,
    catalog_at,
    first_host,
    seconds_checked,
)
from qwq_ollama.cli._output import (
    err,
    print_findings,
    print_fleet,
    print_json,
    progress_lines,
    say,
    write_json,
)

if TYPE_CHECKING:
    from qwq_ollama.catalog.schema import Catalog
    from qwq_ollama.checks.engines import ValidateOptions
    from qwq_ollama.checks.validate import ValidationReport

ReportOpt = Annotated[
    Path | None,
    typer.Option(
        "--report",
        help="Write a report: HTML for "
        "F.html (prompts side by side, differences marked), else Markdown.",
    ),
]


def _is_html(report: Path) -> bool:
    return report.suffix.lower() in (".html", ".htm")


def validate(
    variants: VariantsArg = None,
    weights: WeightsOpt = None,
    catalog: CatalogOpt = None,
    host: HostsOpt = None,
    fleet: FleetOpt = None,
    parallel: ParallelOpt = 4,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="ollama, or llama-cpp (each "
            "variant on a llama-server: see --llama-server, --gguf).",
        ),
    ] = "ollama",
    llama_server: LlamaServerOpt = None,
    gguf: GgufOpt = None,
    checks: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated: fidelity, "
            "registration, thinking (each think/reasoning_effort request, "
            "docs/thinking.md), generation, code (the Flappy Bird program); "
            "with "
            "llama-cpp: fidelity, settings, context, generation, code. "
            "Default: all but code."
        ),
    ] = None,
    json_: JsonOpt = False,
    json_file: Annotated[
        Path | None,
        typer.Option(
            "--json-file",
            help="Also write the findings as JSON to this file (also when a step fails).",
        ),
    ] = None,
    report: ReportOpt = None,
    num_predict: Annotated[int, typer.Option(help="Token cap for generation checks.")] = 256,
    seed: Annotated[
        int | None, typer.Option(help="Fix the sampling seed of generation checks.")
    ] = None,
    code_prompt: Annotated[str, typer.Option(help="Prompt for the code check.")] = "flappy-bird",
    timeout: Annotated[
        float,
        typer.Option(
            callback=seconds_checked, help="Seconds to wait for the daemon in any one step."
        ),
    ] = 600.0,
) -> int:
    """Prove each variant right against the live daemon; exit 1 if any check fails."""
    from qwq_ollama.checks.engines import EngineChoice, ValidateOptions, checks_for, validate_on
    from qwq_ollama.checks.validate import ValidationReport
    from qwq_ollama.daemon.fleet import fleet_hosts

    if "code" in (checks or ""):
        from qwq_ollama.extras import require_extra

        require_extra("game", "validate --checks code")
    cat = catalog_at(catalog)
    cat.chosen(variants)  # a misspelt name is bad input, said before any request
    options = ValidateOptions(checks_for(engine, checks), weights, num_predict, code_prompt, seed)
    hosts = fleet_hosts(host, fleet)
    if hosts is not None:
        return _validate_fleet(
            hosts, parallel, cat, variants, engine, report, timeout, json_, json_file, options
        )
    findings = ValidationReport()
    where = EngineChoice(first_host(host), llama_server, gguf, timeout)
    try:
        validate_on(
            engine, where, cat, variants or None, findings, options, progress_lines("checking")
        )
    finally:
        if json_:
            print_json(findings.to_dict())
        if json_file:
            write_json(json_file, findings.to_dict())
        if report:
            _write_validate_report(report, findings)
    return _validate_verdict(findings, json_)


def _validate_verdict(findings: ValidationReport, as_json: bool) -> int:
    """The table (unless --json printed the findings), and the report's exit code."""
    if not as_json:
        print_findings(findings.findings)
    broken = [f for f in findings.findings if f.status == "error"]
    if findings.step_errors and broken:  # a step that could not run is not a verdict
        err(f"Error: {broken[0].subject} {broken[0].check}: {broken[0].message}")
    return findings.exit_code


def _write_validate_report(report: Path, findings: ValidationReport) -> None:
    """The report's format follows its name: HTML for .html, Markdown otherwise."""
    from qwq_ollama.atomic import write_text_atomic

    if _is_html(report):
        from qwq_ollama.checks.report_html import validate_html

        write_text_atomic(report, validate_html(findings))
    else:
        from qwq_ollama.checks.validate import markdown_report

        write_text_atomic(report, markdown_report(findings))


def _validate_fleet(
    hosts: list[str],
    parallel: int,
    cat: Catalog,
    variants: list[str] | None,
    engine: str,
    report: Path | None,
    timeout: float,
    as_json: bool,
    json_file: Path | None,
    options: ValidateOptions,
) -> int:
    """validate on every host of a fleet: the fleet table, or its JSON."""
    from qwq_ollama.checks.fleet import validate_cells
    from qwq_ollama.daemon.fleet import run_fleet
    from qwq_ollama.errors import InputError

    if engine != "ollama" or report:
        raise InputError(
            "a fleet is validated on Ollama, without --report",
            field="--engine" if engine != "ollama" else "--report",
        )
    work = validate_cells(
        cat, variants or None, weights_name=options.weights, **options.generation()
    )
    result = run_fleet(hosts, work, parallel, timeout=timeout)
    if json_file:
        write_json(json_file, result.to_dict())
    return print_fleet(result, as_json)


def compare(
    variants: VariantsArg = None,
    prompt: Annotated[
        str,
        typer.Option(
            "--prompt", help="A built-in prompt: flappy-bird, add-function, sky, poem-loop."
        ),
    ] = "flappy-bird",
    seeds: Annotated[int, typer.Option(help="Runs per variant (seeds 1..N).")] = 3,
    num_predict: Annotated[int, typer.Option(help="Token cap per run.")] = 4096,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="Write a report: "
            "F.html is one file with the plot inline; else Markdown with "
            "the plot beside it.",
        ),
    ] = None,
    engines: Annotated[
        str,
        typer.Option("--engines", help="Comma-separated: ollama, llama-cpp; several side by side."),
    ] = "ollama",
    host: HostOpt = None,
    llama_server: LlamaServerOpt = None,
    gguf: GgufOpt = None,
    catalog: CatalogOpt = None,
    weights: WeightsOpt = None,
    think_budget: Annotated[
        int | None,
        typer.Option(
            "--think-budget",
            help="Cap the thinking at N tokens on Ollama, then answer "
            "(default: each variant's think_budget).",
        ),
    ] = None,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> int:
    """Run one prompt over variants and seeds: loop rate, speed, thinking, code that compiles."""
    from qwq_ollama.catalog.prompts import get_prompt
    from qwq_ollama.checks.ab import comparison_dict, summarise, table_rows
    from qwq_ollama.checks.engines import EngineChoice, compare_on, engines_named

    if report:
        from qwq_ollama.extras import require_extra

        require_extra("plot", "compare --report")
    chosen = get_prompt(prompt)
    variants = variants or [v.name for v in catalog_at(catalog).chosen()]
    if catalog or weights:
        from qwq_ollama.daemon.client import OllamaAPI
        from qwq_ollama.daemon.registry import require_registered

        require_registered(OllamaAPI(host), catalog_at(catalog), variants, weights)
    where = EngineChoice(host, llama_server, gguf)
    from qwq_ollama.checks.budget import check_budget

    runs = compare_on(
        engines_named(engines),
        where,
        lambda: catalog_at(catalog),
        variants,
        chosen,
        seeds,
        num_predict,
        progress_lines("running", quiet),
        think_budget=check_budget(think_budget),
    )
    summaries = summarise(runs)
    if json_:
        print_json(comparison_dict(chosen, summaries, runs))
    else:
        for row in table_rows(summaries):
            say("  ".join(f"{cell:<14}" for cell in row).rstrip())
    if report:
        (err if json_ else say)(_write_compare_report(report, chosen, summaries, runs))
    return 0


def _write_compare_report(report: Path, chosen, summaries, runs) -> str:  # type: ignore[no-untyped-def]
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


def fidelity_table(
    out: Annotated[Path, typer.Option("--out", help="Where to write the Markdown.")] = Path(
        "docs/fidelity.md"
    ),
    catalog: CatalogOpt = None,
) -> int:
    """Regenerate docs/fidelity.md on private daemons of every tested Ollama release."""
    from qwq_ollama.checks.every_release import write_fidelity_table

    written = write_fidelity_table(catalog_at(catalog), out, lambda m: err(f"  {m}"))
    say(f"wrote {written}")
    return 0
