"""Template fidelity: the prompt an engine builds against the variant's Hugging Face template.

Every difference is a failure unless a known divergence explains it. The divergences are what
Ollama's Go templates cannot express; each template family declares its own, with the reason
(`divergences` in templates/<family>/family.yaml), and `validate` reports them as such rather
than hiding them.
"""

from __future__ import annotations

from dataclasses import dataclass

from qwq_ollama.catalog.chat_template import render_chat
from qwq_ollama.catalog.conversation import Conversation
from qwq_ollama.catalog.family import Divergence


@dataclass(frozen=True)
class FidelityResult:
    conversation: str
    status: str  # "pass", "known", "fail"
    divergences: tuple[str, ...]
    detail: str
    hf_prompt: str
    ollama_prompt: str
    reasons: tuple[str, ...] = ()  # one per divergence, as its family explains it


# How Ollama's Go `json` prints a tool schema: compact, in its own struct's field order. Jinja's
# `tojson` (transformers, llama.cpp) puts a space after `,` and `:`, so one tool conversation
# tells which engine built a prompt, on any daemon, through the API alone.
GO_TOOL_JSON = '{"type":"function","function":{"name":'


def template_source(results: list[FidelityResult], conversations: list[Conversation]) -> str:
    """Which template the daemon used: `go_template` (the Modelfile TEMPLATE), `jinja` (a
    chat template rendering exactly like the catalog's, e.g. a GGUF's own), `other`, or
    `unknown` when no conversation with tools was rendered."""
    with_tools = {c.name for c in conversations if c.tools}
    for result in results:
        if result.conversation in with_tools and "<tools>" in result.hf_prompt:
            if GO_TOOL_JSON in result.ollama_prompt:
                return "go_template"
            return "jinja" if result.ollama_prompt == result.hf_prompt else "other"
    return "unknown"


def first_difference(a: str, b: str, other: str = "Ollama") -> str:
    pairs = enumerate(zip(a, b, strict=False))  # up to the shorter one's end
    index = next((i for i, (x, y) in pairs if x != y), min(len(a), len(b)))
    return (f"first difference at char {index}: HF {a[index:index + 30]!r} vs "
            f"{other} {b[index:index + 30]!r}")


def judge_prompts(name: str, conv: Conversation, hf: str, live: str, *,
                  known: tuple[Divergence, ...], engine: str = "Ollama") -> FidelityResult:
    """Classify one conversation's two prompts; `known` are the engine's explained divergences
    (for Ollama, the variant's family's; none for an engine that runs the Jinja itself)."""
    if hf == live:
        return FidelityResult(name, "pass", (), "identical", hf, live)
    applicable = [d for d in known if d.applies(conv)]
    if not applicable:
        return FidelityResult(name, "fail", (), first_difference(hf, live, engine), hf, live)
    keys = tuple(d.key for d in applicable)
    masks = [d.mask for d in applicable if d.maskable]
    unmaskable = any(not d.maskable for d in applicable)
    if masks and not unmaskable:
        masked_hf, masked_live = hf, live
        for mask in masks:
            masked_hf, masked_live = mask(masked_hf), mask(masked_live)
        if masked_hf != masked_live:
            return FidelityResult(name, "fail", keys,
                                  "differs outside the known divergences: "
                                  + first_difference(masked_hf, masked_live, engine), hf, live)
    reasons = "; ".join(d.reason for d in applicable)
    return FidelityResult(name, "known", keys, reasons, hf, live,
                          tuple(d.reason for d in applicable))


def template_behaviour_diff(expected: str, actual: str) -> str | None:
    """None if two HF chat templates render every corpus conversation identically; else the
    first conversation that differs. Text comparison would call two equivalent templates
    written differently (ours and Qwen's) different."""
    from qwq_ollama.catalog.conversation import load_corpus
    from qwq_ollama.errors import InputError

    for conv in load_corpus():
        want = render_chat(expected, conv.messages, tools=conv.tools)
        try:
            got = render_chat(actual, conv.messages, tools=conv.tools)
        except InputError as exc:
            return f"{conv.name}: the embedded template fails: {exc}"
        if got != want:
            return f"{conv.name}: {first_difference(want, got, other='embedded')}"
    return None
