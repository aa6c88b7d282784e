"""docs/fidelity.md: each corpus conversation, per daemon version and variant, identical to the
Hugging Face rendering or a named known divergence. Regenerated with `qwq-ollama fidelity-table`;
a live test checks that the committed table still says what each daemon does."""

from __future__ import annotations

import dataclasses

from qwq_ollama.artifacts.stand_in import stand_in_for
from qwq_ollama.catalog.conversation import load_corpus
from qwq_ollama.catalog.family import Family
from qwq_ollama.catalog.render import hf_prompter
from qwq_ollama.catalog.schema import Catalog, Variant, Weights
from qwq_ollama.checks.fidelity import (
    FidelityResult,
    judge_prompts,
    official_renderer,
    template_source,
)
from qwq_ollama.daemon.client import OllamaAPI


def over_stand_ins(catalog: Catalog) -> Catalog:
    """The catalog with each variant's weights replaced by a tiny GGUF of its family's
    architecture, carrying the family's special tokens and BOS. Ollama picks behaviour by
    architecture (it strips earlier reasoning for qwen3 models, and v0.24 runs qwen3 on its own
    engine), so prompts checked over these are the prompts the real weights get."""
    weights = dict(catalog.weights)
    variants = {}
    for variant in catalog.variants.values():
        name = f"stand-in-{variant.family.name}"
        if name not in weights:
            weights[name] = Weights(
                name,
                "gguf",
                gguf_path=stand_in_for(variant.family),
                description=f"a tiny {variant.family.architectures[0]} "
                f"model standing in for {variant.family.name}",
            )
        variants[variant.name] = dataclasses.replace(variant, weights=name)
    # Every family is what these are for: no default subset.
    return dataclasses.replace(catalog, weights=weights, variants=variants, default_names=())


def table_variants(catalog: Catalog) -> dict[str, list[Variant]]:
    """Per family, the first variant of each distinct prompt (the others change sampling only)."""
    chosen: dict[str, dict[str, Variant]] = {}
    for variant in catalog.variants.values():
        prompts = chosen.setdefault(variant.template, {})
        prompts.setdefault(variant.generation_prompt, variant)
    return {family: list(prompts.values()) for family, prompts in chosen.items()}


HEADER = """# Prompt fidelity per Ollama release

For every conversation of the test corpus (`qwq_ollama/data/corpus.json`), the prompt each
daemon builds (`_debug_render_only`) against the variant's Hugging Face template rendered as
transformers does. One table per template family (`templates/<family>/`), with a column for
each distinct generation prompt. Every cell is a byte-for-byte comparison; it says what with.
*identical* alone: the official rendering (the variant's HF template, which renders as the
official template does). Otherwise the cell names the family's divergences (`divergences` in its
`family.yaml`, listed at the end) and the exact expectation the prompt equalled, *as Ollama
transforms it*: the official rendering of the conversation after what Ollama does to it
(consecutive same-role messages merged with a blank line, earlier reasoning stripped on qwen3,
an assistant's content printed whole where the official template would cut its reasoning, the
BOS left to the tokenizer, tools and tool-call arguments as a Go TEMPLATE sees them: top-level
property names and argument keys sorted, schema keys Ollama drops gone; our TEMPLATE prints them
as transformers does). Nothing is masked. A
*FAIL* would be a bug. Each family's line of counts is held exactly by `make test`. Where the
official templates come from, and what Ollama parses back from a model's output:
[oracles.md](oracles.md).

Each family's variants are registered over a tiny stand-in GGUF of the family's architecture
(qwen2 for QwQ and the R1 Qwen distills, qwen3 for Qwen3) with the family's special tokens,
because Ollama picks behaviour by architecture: it strips earlier reasoning from a qwen3 model's
history, and v0.24 runs qwen3 on its own engine. Regenerate with
`qwq-ollama fidelity-table --out docs/fidelity.md` (it builds and starts every pinned daemon);
`make test` checks each section against the live daemon of its version. Which template a
daemon uses, and why the catalog chooses the Go TEMPLATE: [template-selection.md](template-selection.md).
"""


def version_section(api: OllamaAPI, catalog: Catalog, version: str) -> str:
    """The tables for one daemon, whose variants are registered as the catalog says, over
    `over_stand_ins` weights."""
    lines = [f"## Ollama {version}", ""]
    for family, variants in table_variants(catalog).items():
        lines += [f"### {family}", "", *_family_table(api, catalog, variants), ""]
    return "\n".join(lines)


def _family_table(api: OllamaAPI, catalog: Catalog, variants: list[Variant]) -> list[str]:
    corpus = load_corpus()
    columns: dict[str, dict[str, str]] = {}
    counts: dict[str, list[FidelityResult]] = {}
    sources = set()
    for variant in variants:
        render = official_renderer(hf_prompter(catalog, variant))
        results = [
            judge_prompts(
                c.name,
                c,
                render(c),
                api.render_prompt(variant.name, c.messages, c.tools),
                known=variant.family.divergences,
                render=render,
                architecture=variant.family.architectures[0],
            )
            for c in corpus
        ]
        sources.add(template_source(results, corpus))
        columns[variant.name] = {r.conversation: _cell(r) for r in results}
        counts[variant.name] = results
    names = [v.name for v in variants]
    effect = ", ".join(sorted(sources))
    if effect == "unknown":
        effect += " (no conversation tells: the official template prints no tool schema)"
    lines = [
        f"Template in effect: {effect}.",
        "",
        "| conversation | " + " | ".join(names) + " |",
        "| --- |" + " --- |" * len(names),
    ]
    for conv in corpus:
        cells = " | ".join(columns[name][conv.name] for name in names)
        lines.append(f"| {conv.name} | {cells} |")
    lines += [
        "",
        "Compared byte for byte: "
        + "; ".join(f"{name} {len(corpus)} ({_counts(counts[name])})" for name in names)
        + ".",
    ]
    return lines


def _counts(results: list[FidelityResult]) -> str:
    """How many prompts equalled each kind of expectation (tests/test_families_live.py holds
    the same numbers)."""
    kinds = dict.fromkeys(("identical", "transformed", "fail"), 0)
    for r in results:
        kinds[
            "identical" if r.status == "pass" else "fail" if r.status == "fail" else r.compared_with
        ] += 1
    return (
        f"{kinds['identical']} identical, {kinds['transformed']} as transformed, "
        f"{kinds['fail']} failed"
    )


_COMPARED = {"transformed": "as Ollama transforms it"}


def _cell(result: FidelityResult) -> str:
    """What the daemon's prompt equalled, byte for byte: the official rendering (identical),
    or the official rendering of the conversation as Ollama transforms it."""
    if result.status == "pass":
        return "identical"
    if result.status == "known":
        return f"{', '.join(result.divergences)} ({_COMPARED[result.compared_with]}): identical"
    return "FAIL"


def document(sections: list[str], families: list[Family]) -> str:
    """The whole file: the header, one section per daemon version, each family's divergences
    explained."""
    reasons = []
    for family in families:
        reasons += [f"### {family.name}", ""]
        reasons += [f"- **{d.key}**: {d.reason}." for d in family.divergences] or ["- none"]
        reasons.append("")
    return "\n".join([HEADER, *sections, "## The known divergences", "", *reasons])
