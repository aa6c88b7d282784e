"""`inspect`'s verdict: a GGUF's header, which catalog family its embedded chat template renders
like, and whether it behaves like a variant's. Same behaviour, not same text: equivalent
templates may be written differently."""

from __future__ import annotations

from pathlib import Path

from qwq_ollama.artifacts.gguf import GGUFReport, inspect_gguf, prefill_warning
from qwq_ollama.catalog.recognise import recognise_family
from qwq_ollama.catalog.render import render_variant
from qwq_ollama.catalog.schema import Catalog
from qwq_ollama.checks.fidelity import template_behaviour_diff


def inspect_for_variant(
    path: Path, catalog: Catalog, variant_name: str | None = None
) -> GGUFReport:
    """The header of `path` (read once), judged against `variant_name`'s template and reasoning
    prefill; without a name, against the variant of the family the embedded template renders
    like (or the nearest). A family's own warning (the prefill) is given only when the file is
    of that family or the variant was named: a Llama or Qwen3 file is not held to QwQ's."""
    report = inspect_gguf(path)
    embedded = report.chat_template
    match = recognise_family(catalog, embedded) if embedded is not None else None
    named = variant_name is not None
    if variant_name is None:
        found = match and (match.variant or match.nearest_variant)
        variant_name = found or next(iter(catalog.variants))
    variant = catalog.variant(variant_name)
    if named or (match is not None and match.variant is not None):
        expect = variant.prefills_reasoning if variant.family.switch == "prefill" else None
        prefill = prefill_warning(report, expect)
        if prefill:
            report.warnings.append(prefill)
    report.variant = variant.name
    if match is not None:
        report.family, report.family_match = match.family, match.describe()
    if report.chat_template is not None:
        diff = template_behaviour_diff(
            render_variant(catalog, variant).hf_template, report.chat_template
        )
        report.template_matches, report.template_diff = diff is None, diff
    return report
