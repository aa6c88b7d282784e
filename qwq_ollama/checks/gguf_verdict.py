"""`inspect`'s verdict: a GGUF's header, and whether its embedded chat template behaves like a
variant's. Same behaviour, not same text: equivalent templates may be written differently."""

from __future__ import annotations

from pathlib import Path

from qwq_ollama.artifacts.gguf import GGUFReport, inspect_gguf
from qwq_ollama.catalog.render import render_variant
from qwq_ollama.catalog.schema import Catalog
from qwq_ollama.checks.fidelity import template_behaviour_diff


def inspect_for_variant(path: Path, catalog: Catalog, variant_name: str) -> GGUFReport:
    """The header of `path`, judged against `variant_name`'s template and reasoning prefill."""
    variant = catalog.variant(variant_name)
    report = inspect_gguf(path, expect_prefill=variant.think_prefill)
    if report.chat_template is not None:
        diff = template_behaviour_diff(render_variant(catalog, variant).hf_template,
                                       report.chat_template)
        report.template_matches, report.template_diff = diff is None, diff
    return report
