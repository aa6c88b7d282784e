"""Commands over the catalog and files on disk, no daemon: render, inspect, fix-tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qwq_ollama.cli._options import CatalogOpt, WeightsOpt, catalog_at
from qwq_ollama.cli._output import err, print_json, say


def render(
    check: Annotated[
        bool, typer.Option("--check", help="Change nothing; exit 1 listing every stale output.")
    ] = False,
    catalog: CatalogOpt = None,
    weights: WeightsOpt = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Write into this folder instead of the catalog's (e.g. with --weights)."
        ),
    ] = None,
) -> int:
    """Render chat templates and Modelfiles from the catalog, atomically."""
    from qwq_ollama.catalog.render import render_all

    cat = catalog_at(catalog)
    chosen = cat.weights_named(weights) if weights else None
    result = render_all(cat, check=check, out_dir=out, weights=chosen)
    for note in result.notes:
        err(f"note: {note}")
    if check:
        for path in result.stale:
            say(f"stale: {path}")
        if result.stale:
            err(
                f"{len(result.stale)} output(s) are stale against {cat.path}: "
                "run `qwq-ollama render`"
            )
            return 1
        say(f"all {len(result.unchanged)} outputs are up to date")
        return 0
    for path in result.written:
        say(f"wrote {path}")
    say(f"{len(result.written)} written, {len(result.unchanged)} unchanged")
    return 0


_HEADER_FACTS = (
    "architecture",
    "name",
    "size_label",
    "quantization",
    "parameter_count",
    "context_length",
    "rope_scaling_type",
    "rope_scaling_factor",
    "rope_original_context_length",
    "rms_norm_eps",
    "special_tokens",
    "think_tokens",
    "generation_prompt",
    "family_match",
)


def inspect(
    path: Annotated[Path, typer.Argument(help="A GGUF file.")],
    variant: Annotated[
        str | None,
        typer.Option(
            help="Compare the embedded chat "
            "template with this variant's (default: the variant of the "
            "family it renders like)."
        ),
    ] = None,
    json_: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print one JSON document on stdout (schema_version 1, see docs/reference.md).",
        ),
    ] = False,
    catalog: CatalogOpt = None,
) -> int:
    """Read a GGUF's header (never its tensors): architecture, quant, context, tokens, template."""
    from qwq_ollama.checks.gguf_verdict import inspect_for_variant

    report = inspect_for_variant(path, catalog_at(catalog), variant)
    if json_:
        print_json(report.to_dict())
        return 0
    facts = report.to_dict()
    for key in _HEADER_FACTS:
        value = facts.get(key)
        say(f"{key + ':':<30} {value!r}" if isinstance(value, str) else f"{key + ':':<30} {value}")
    sampling = ", ".join(
        f"{k.removeprefix('general.sampling.')}={v}" for k, v in report.sampling.items()
    )
    say(f"{'sampling defaults:':<30} {sampling or 'none'}")
    same = {True: "same", False: "differs", None: "-"}[report.template_matches]
    say(f"{'chat template vs ' + str(report.variant) + ':':<30} {same}")
    if report.template_diff:
        say(f"  first difference: {report.template_diff}")
    for warning in report.warnings:
        say(f"warning: {warning}")
    return 0


def fix_tokenizer(
    path: Annotated[Path, typer.Argument(help="tokenizer_config.json")],
    out: Annotated[Path | None, typer.Option(help="Write here instead of in place.")] = None,
) -> int:
    """The guide's PAD fix: pad_token <|vision_pad|> instead of EOS; nothing else changes."""
    from qwq_ollama.artifacts.tokenizer_fix import fix_tokenizer_config

    result = fix_tokenizer_config(path, out)
    say(
        f"{result.status}: pad_token {result.old_pad!r} -> {result.new_pad!r}"
        + (f" (written to {result.out})" if result.written else "")
    )
    return 0
