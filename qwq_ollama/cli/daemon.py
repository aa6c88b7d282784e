"""Commands that work one daemon (or a fleet of them): create, list, doctor, chat, prompt."""

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
)
from qwq_ollama.cli._output import (
    Progress,
    answer_printer,
    err,
    print_chat_end,
    print_findings,
    print_fleet,
    print_json,
    print_registrations,
    say,
    thinking_printer,
    write_raw,
)

if TYPE_CHECKING:
    from qwq_ollama.checks.generation import ChatResult


def create(
    variants: VariantsArg = None,
    weights: WeightsOpt = None,
    catalog: CatalogOpt = None,
    host: HostsOpt = None,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
    fleet: FleetOpt = None,
    parallel: ParallelOpt = 4,
) -> int:
    """Register variants with the Ollama daemon; unchanged ones are skipped."""
    from qwq_ollama.daemon.digests import hash_ahead

    cat = catalog_at(catalog)
    # Hash the weights on another core while the ollama client is being imported.
    hash_ahead(
        path
        for w in cat.weights_of(variants or None, weights)
        if (path := w.file_on_disk) is not None
    )
    from qwq_ollama.daemon.client import OllamaAPI
    from qwq_ollama.daemon.fleet import create_cells, fleet_hosts, run_fleet
    from qwq_ollama.daemon.quick_create import request_for
    from qwq_ollama.daemon.registry import Registrar, stamp_create

    hosts = fleet_hosts(host, fleet)
    with Progress(quiet) as progress:
        if hosts is not None:
            work = create_cells(
                cat,
                variants or None,
                weights,
                lambda h, name, update: progress(f"{h} {name}", update),
            )
            return print_fleet(run_fleet(hosts, work, parallel), json_)
        api = OllamaAPI(first_host(host))
        report = Registrar(api, cat, progress).create(variants or None, weights)
    if json_:
        print_json(report.to_dict())
    else:
        for name in report.created:
            say(f"created {name}")
        for name in report.up_to_date:
            say(f"{name} is up to date")
    stamp_create(api, cat, report, request_for(variants, weights, catalog, first_host(host)))
    return 0


def list_(
    variants: VariantsArg = None,
    weights: WeightsOpt = None,
    catalog: CatalogOpt = None,
    host: HostsOpt = None,
    json_: JsonOpt = False,
    fleet: FleetOpt = None,
    parallel: ParallelOpt = 4,
) -> int:
    """The catalog's variants, and whether each is registered and up to date."""
    from qwq_ollama.daemon.client import OllamaAPI
    from qwq_ollama.daemon.fleet import fleet_hosts, run_fleet, status_cells
    from qwq_ollama.daemon.registry import status

    cat = catalog_at(catalog)
    cat.chosen(variants)  # a misspelt name is bad input, said before any request
    hosts = fleet_hosts(host, fleet)
    if hosts is not None:
        work = status_cells(cat, weights, variants or None)
        return print_fleet(run_fleet(hosts, work, parallel), json_)
    rows = status(OllamaAPI(first_host(host)), cat, weights, variants or None)
    if json_:
        print_json({"variants": [row.to_dict() for row in rows]})
    else:
        print_registrations(rows)
    return 0


def doctor(
    weights: WeightsOpt = None,
    catalog: CatalogOpt = None,
    host: HostsOpt = None,
    vram: Annotated[
        str | None,
        typer.Option(
            "--vram",
            help="Free GPU memory, e.g. "
            "24GiB: also check each num_ctx fits (default: this machine's "
            "GPU when the daemon runs here).",
        ),
    ] = None,
    json_: JsonOpt = False,
    fleet: FleetOpt = None,
    parallel: ParallelOpt = 4,
) -> int:
    """Check the daemon, each variant's registration and context, and loaded models' offload."""
    from qwq_ollama.checks.doctor import diagnose
    from qwq_ollama.checks.findings import failed
    from qwq_ollama.checks.fleet import doctor_cells
    from qwq_ollama.checks.memory_plan import daemon_vram, parse_size
    from qwq_ollama.daemon.client import OllamaAPI
    from qwq_ollama.daemon.fleet import fleet_hosts, run_fleet

    hosts = fleet_hosts(host, fleet)
    given = parse_size(vram) if vram else None
    if hosts is not None:
        work = doctor_cells(catalog_at(catalog), weights, given)
        return print_fleet(run_fleet(hosts, work, parallel, timeout=60.0), json_)
    api = OllamaAPI(first_host(host), timeout=60.0)
    findings = diagnose(
        api, catalog_at(catalog), weights, given if given is not None else daemon_vram(api)
    )
    if json_:
        print_json({"failed": failed(findings), "findings": [f.to_dict() for f in findings]})
    else:
        print_findings(findings)
    for finding in findings:  # the daemon's own failure: the code every command gives for it
        if finding.check == "daemon" and "exit_code" in finding.details:
            return int(finding.details["exit_code"])
    return 1 if failed(findings) else 0


ThinkOpt = Annotated[
    bool | None,
    typer.Option(
        "--think/--no-think",
        help="Ask for thinking on or off (Ollama's `think`); what each "
        "variant does with it: docs/thinking.md.",
    ),
]
EffortOpt = Annotated[
    str | None,
    typer.Option("--effort", help="Ask as /v1's reasoning_effort would: none, low, medium, high."),
]
BudgetOpt = Annotated[
    int | None,
    typer.Option(
        "--think-budget",
        help="Cap the thinking at N tokens, then answer (default: the variant's think_budget).",
    ),
]


def chat(
    variant: str,
    message: str,
    host: HostOpt = None,
    num_predict: Annotated[int, typer.Option(help="Token cap (-1: none).")] = 1024,
    think: ThinkOpt = None,
    effort: EffortOpt = None,
    think_budget: BudgetOpt = None,
    seed: Annotated[int | None, typer.Option(help="Sampling seed, for a run that repeats.")] = None,
    catalog: CatalogOpt = None,
    answer_only: Annotated[
        bool,
        typer.Option(
            "--answer-only", help="Print only the answer, as it streams (no thinking, no footer)."
        ),
    ] = False,
    json_: JsonOpt = False,
) -> int:
    """Chat once with a registered variant, showing its thinking and its answer apart."""
    from qwq_ollama.checks.budget import check_budget, run_budgeted_chat
    from qwq_ollama.checks.generation import run_chat
    from qwq_ollama.checks.thinking import request_name, resolve_think
    from qwq_ollama.daemon.client import OllamaAPI
    from qwq_ollama.errors import InputError

    if think is not None and effort is not None:
        raise InputError("give --think/--no-think or --effort, not both", field="--effort")
    request = request_name(think, effort)
    budget = check_budget(think_budget)
    asked = request is not None or budget is not None
    try:  # the catalog brings the variant's own budget; a plain chat needs none
        cat = catalog_at(catalog)
    except InputError:
        if asked:
            raise
        cat = None
    # not a catalog variant: bad input, said before any request reaches the daemon
    known = cat.variant(variant) if cat is not None else None
    sent, note = resolve_think(known, request) if known is not None else (None, None)
    if known is not None and budget is None:
        budget = known.think_budget
    api = OllamaAPI(host)
    api.supported_version()
    plain = not (json_ or answer_only)  # the headed, streamed form
    if note and plain:
        say(f"({note})")
    elif note:
        err(f"({note})")
    if plain:
        say("--- thinking ---")
    on_thinking = thinking_printer if plain else None
    on_content = answer_printer() if plain else (None if json_ else _answer_sink)
    messages = [{"role": "user", "content": message}]
    options = {"num_predict": num_predict} | ({} if seed is None else {"seed": seed})
    if budget is not None and known is not None and sent is not False:
        result, outcome = run_budgeted_chat(
            api,
            known,
            messages,
            budget=budget,
            options=options,
            on_thinking=on_thinking,
            on_content=on_content,
        )
        if not plain:
            return _chat_end(result, json_, variant, capped_at=budget if outcome.capped else None)
        if outcome.capped:
            say(
                f"\n--- the thinking reached its budget of {budget} tokens "
                f"({outcome.thinking_tokens}); the answer followed the early-stop text ---"
            )
        print_chat_end(result)
        return 0
    result = run_chat(
        api,
        variant,
        messages,
        options=options,
        think=sent,
        on_thinking=on_thinking,
        on_content=on_content,
    )
    if not plain:
        return _chat_end(result, json_, variant, capped_at=None)
    print_chat_end(result)
    return 0


def _answer_sink(text: str) -> None:
    say(text, nl=False)


def _chat_end(result: ChatResult, as_json: bool, variant: str, capped_at: int | None) -> int:
    """--json: one document; --answer-only: the answer ends with a newline."""
    if as_json:
        print_json(
            {
                "variant": variant,
                "thinking": result.thinking,
                "content": result.content,
                "done_reason": result.done_reason,
                "eval_count": result.eval_count,
                "tokens_per_second": round(result.tokens_per_second, 2),
                "thinking_capped_at": capped_at,
            }
        )
    else:
        say("")
    return 0


def prompt(
    variant: str,
    messages: Annotated[Path, typer.Option("--messages", help="Conversation JSON.")],
    engine: Annotated[str, typer.Option("--engine", help="hf, ollama or llama-cpp.")] = "hf",
    catalog: CatalogOpt = None,
    host: HostOpt = None,
    llama_server: LlamaServerOpt = None,
    gguf: GgufOpt = None,
) -> int:
    """Print, byte for byte, the prompt a variant builds for a conversation."""
    from qwq_ollama.catalog.conversation import load_conversation
    from qwq_ollama.checks.engines import EngineChoice, prompt_on

    cat = catalog_at(catalog)
    where = EngineChoice(host=host, llama_server=llama_server, gguf=gguf)
    write_raw(prompt_on(engine, where, cat, cat.variant(variant), load_conversation(messages)))
    return 0


def remove(
    variants: VariantsArg = None,
    weights: Annotated[
        bool,
        typer.Option(
            "--weights",
            help="Also remove the imported weights (qwq-ollama-weights/*), unless a variant "
            "left on the daemon runs over them.",
        ),
    ] = False,
    catalog: CatalogOpt = None,
    host: HostOpt = None,
    json_: JsonOpt = False,
) -> int:
    """Unregister variants that qwq-ollama created (never another model), and its weights."""
    from qwq_ollama.daemon.client import OllamaAPI
    from qwq_ollama.daemon.removal import remove as removing

    cat = catalog_at(catalog)
    cat.chosen(variants)  # a misspelt name is bad input, said before any request
    report = removing(OllamaAPI(host), cat, variants or None, weights)
    if json_:
        print_json(report.to_dict())
        return 0
    for name in report.removed:
        say(f"removed {name}")
    for name in report.absent:
        say(f"{name} is not registered")
    for name, why in report.kept.items():
        say(f"kept {name}: {why}")
    return 0
