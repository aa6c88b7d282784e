"""docs/fidelity.md: each corpus conversation, per daemon version and variant, identical to the
Hugging Face rendering or a named known divergence. Regenerated with `qwq-ollama fidelity-table`;
a live test checks that the committed table still says what each daemon does."""

from __future__ import annotations

from qwq_ollama.catalog.conversation import load_corpus
from qwq_ollama.catalog.render import hf_prompter
from qwq_ollama.catalog.schema import Catalog
from qwq_ollama.checks.fidelity import KNOWN_DIVERGENCES, judge_prompts, template_source
from qwq_ollama.server.client import OllamaAPI

# Variants whose templates differ: the others share qwq-fixed's and only change sampling.
TABLE_VARIANTS = ("qwq-fixed", "qwq-noprefill")

HEADER = """# Prompt fidelity per Ollama release

For every conversation of the test corpus (`qwq_ollama/data/corpus.json`), the prompt each
daemon builds (`_debug_render_only`) against the variant's Hugging Face template rendered as
transformers does. *identical* means byte for byte; otherwise the cell names the known
divergences that explain the difference, each proven by masking where it can be (see
`qwq_ollama/checks/fidelity.py`). A *FAIL* would be a bug. Regenerate with
`qwq-ollama fidelity-table --out docs/fidelity.md` (it builds and starts every pinned daemon);
`make test` checks each section against the live daemon of its version. Which template a
daemon uses, and why the catalog chooses the Go TEMPLATE: [template-selection.md](template-selection.md).
"""


def version_section(api: OllamaAPI, catalog: Catalog, version: str) -> str:
    """The table for one daemon, whose variants are registered as the catalog says."""
    corpus = load_corpus()
    columns: dict[str, dict[str, str]] = {}
    sources = set()
    for name in TABLE_VARIANTS:
        variant = catalog.variant(name)
        prompt = hf_prompter(catalog, variant)
        results = [judge_prompts(c.name, c, prompt(c.messages, c.tools),
                                 api.render_prompt(name, c.messages, c.tools)) for c in corpus]
        sources.add(template_source(results, corpus))
        columns[name] = {r.conversation: _cell(r.status, r.divergences) for r in results}
    lines = [f"## Ollama {version}", "",
             f"Template in effect: {', '.join(sorted(sources))}.", "",
             "| conversation | " + " | ".join(TABLE_VARIANTS) + " |",
             "| --- |" + " --- |" * len(TABLE_VARIANTS)]
    for conv in corpus:
        cells = " | ".join(columns[name][conv.name] for name in TABLE_VARIANTS)
        lines.append(f"| {conv.name} | {cells} |")
    return "\n".join(lines) + "\n"


def _cell(status: str, divergences: tuple[str, ...]) -> str:
    if status == "pass":
        return "identical"
    if status == "known":
        return "known: " + ", ".join(divergences)
    return "FAIL"


def document(sections: list[str]) -> str:
    """The whole file: the header, one section per daemon version, the divergences explained."""
    reasons = [f"- **{d.key}**: {d.reason}." for d in KNOWN_DIVERGENCES]
    return "\n".join([HEADER, *sections, "## The known divergences", "", *reasons, ""])
