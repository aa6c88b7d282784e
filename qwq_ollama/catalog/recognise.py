"""Which catalog family a chat template belongs to, judged by what it renders, not its text.

A GGUF carries its chat template; people rarely know whether it is the official one, a
quantiser's edit, or another family's. Two templates written differently can render the same
prompts, so the test is behaviour: the corpus rendered by the template and by each variant's
Hugging Face template. A variant that renders every conversation identically is a match;
otherwise the variant sharing the longest prompt prefixes is named as the nearest, with the
first difference.
"""

from __future__ import annotations

from dataclasses import dataclass

from qwq_ollama.catalog.chat_template import RenderJob, render_chat, render_untrusted
from qwq_ollama.catalog.conversation import as_hf_messages, load_corpus
from qwq_ollama.catalog.render import render_variant
from qwq_ollama.catalog.schema import Catalog, Variant
from qwq_ollama.errors import InputError


@dataclass(frozen=True)
class FamilyMatch:
    """`family`/`variant` when a variant renders exactly like the template; otherwise the
    nearest one and where it first differs (`nearest` None when the template fails)."""

    family: str | None
    variant: str | None
    nearest_family: str | None
    nearest_variant: str | None
    difference: str | None

    def describe(self) -> str:
        if self.variant is not None:
            return f"{self.family} (renders exactly as {self.variant})"
        if self.nearest_variant is None:
            return f"none ({self.difference})"
        return (
            f"none; nearest {self.nearest_family} ({self.nearest_variant}), "
            f"first difference {self.difference}"
        )


def _prompts(template: str, variant: Variant) -> list[str | None]:
    """Each corpus prompt, None where the template fails on that conversation."""
    tokens = variant.family.template_tokens
    prompts: list[str | None] = []
    for conv in load_corpus():
        try:
            prompts.append(
                render_chat(
                    template,
                    as_hf_messages(conv.messages),
                    tools=conv.tools,
                    add_generation_prompt=True,
                    **tokens,
                )
            )
        except InputError:
            prompts.append(None)
    return prompts


def _common_prefix(a: str, b: str) -> int:
    return next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )


def _first_difference(ours: list[str | None], theirs: list[str | None]) -> str:
    names = [c.name for c in load_corpus()]
    for name, a, b in zip(names, ours, theirs, strict=True):
        if b is None:
            return f"in {name}: the template fails"
        if a is not None and a != b:
            at = _common_prefix(a, b)
            return f"in {name} at char {at}: {a[at : at + 30]!r} vs {b[at : at + 30]!r}"
    return "none"


def recognise_family(catalog: Catalog, template: str) -> FamilyMatch:
    """The catalog variant (and so family) whose Hugging Face template renders the corpus as
    `template` does, or the nearest one (the most prompt text in common)."""
    best: tuple[int, Variant, str] | None = None
    variants = list(catalog.variants.values())
    corpus = load_corpus()
    # the template under test is untrusted (a GGUF's): every rendering of it in one bounded
    # child process; our own variants' templates render here
    jobs = [
        RenderJob(
            as_hf_messages(conv.messages), conv.tools, extra=dict(variant.family.template_tokens)
        )
        for variant in variants
        for conv in corpus
    ]
    rendered = render_untrusted(template, jobs, what="the GGUF's chat template")
    for index, variant in enumerate(variants):
        theirs = rendered[index * len(corpus) : (index + 1) * len(corpus)]
        ours = _prompts(render_variant(catalog, variant).hf_template, variant)
        if theirs == ours and None not in theirs:
            return FamilyMatch(variant.template, variant.name, None, None, None)
        shared = sum(
            _common_prefix(a, b)
            for a, b in zip(ours, theirs, strict=True)
            if a is not None and b is not None
        )
        if shared and (best is None or shared > best[0]):
            best = (shared, variant, _first_difference(ours, theirs))
    if best is None:
        return FamilyMatch(
            None, None, None, None, "it renders none of the test conversations like any variant"
        )
    return FamilyMatch(None, None, best[1].template, best[1].name, best[2])
