"""Template fidelity: the prompt an engine builds against the variant's Hugging Face template.

Every difference is a failure unless a known divergence explains it. The divergences are what
Ollama's Go templates cannot express; each template family declares its own, with the reason
(`divergences` in templates/<family>/family.yaml), and `validate` reports them as such rather
than hiding them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from qwq_ollama.catalog.chat_template import render_chat
from qwq_ollama.catalog.conversation import EXPECTATIONS, Conversation, unchanged
from qwq_ollama.catalog.family import Divergence
from qwq_ollama.catalog.render import Prompter

# The official rendering of a conversation (the variant's HF template), for the transformed
# conversations an expectation asks for.
Renderer = Callable[[Conversation], str]


@dataclass(frozen=True)
class FidelityResult:
    conversation: str
    status: str  # "pass", "known", "fail"
    divergences: tuple[str, ...]
    detail: str
    hf_prompt: str
    ollama_prompt: str
    reasons: tuple[str, ...] = ()  # one per divergence, as its family explains it
    # What the engine's prompt was compared with, byte for byte: "official" (the HF rendering)
    # or "transformed" (the HF rendering of the conversation as the engine transforms it).
    compared_with: str = "official"


def official_renderer(prompt: Prompter) -> Renderer:
    """A conversation's official rendering, through a variant's `hf_prompter`."""

    def render(conversation: Conversation) -> str:
        return prompt(conversation.messages, conversation.tools)

    return render


def template_source(results: list[FidelityResult], conversations: list[Conversation]) -> str:
    """Which template the daemon used: `go_template` (the Modelfile TEMPLATE: a tool list equal
    to its exact expectation where that differs from the official rendering, as for a schema
    whose top-level property names are not sorted), `jinja` (a chat template rendering every
    tool conversation exactly like the official one, e.g. a GGUF's own), or `unknown`: no
    conversation with tools was rendered, or one matches neither (then the prompts are wrong,
    whichever template built them, and the fidelity verdict names the first difference)."""
    with_tools = {c.name for c in conversations if c.tools}
    statuses = set()
    for result in results:
        if result.conversation in with_tools and "<tools>" in result.hf_prompt:
            if result.status == "known" and "tool-schema-json" in result.divergences:
                return "go_template"
            # `known` by other divergences only (arguments decoded from strings) fits either
            statuses.add(result.status)
    return "jinja" if statuses and "fail" not in statuses and "pass" in statuses else "unknown"


def first_difference(a: str, b: str, other: str = "Ollama") -> str:
    pairs = enumerate(zip(a, b, strict=False))  # up to the shorter one's end
    index = next((i for i, (x, y) in pairs if x != y), min(len(a), len(b)))
    return (
        f"first difference at char {index}: HF {a[index : index + 30]!r} vs "
        f"{other} {b[index : index + 30]!r}"
    )


def judge_prompts(
    name: str,
    conv: Conversation,
    hf: str,
    live: str,
    *,
    known: tuple[Divergence, ...],
    engine: str = "Ollama",
    render: Renderer | None = None,
    architecture: str = "",
) -> FidelityResult:
    """Classify one conversation's two prompts; `known` are the engine's explained divergences
    (for Ollama, the variant's family's; none for an engine that runs the Jinja itself).

    A divergence never excuses a difference unseen: each says how the engine transforms the
    conversation (`expect`), and must give, through
    `render`, exactly the engine's prompt; `architecture` is the model's, as Ollama reports it
    (it strips earlier reasoning for qwen3 only)."""
    if hf == live:
        return FidelityResult(name, "pass", (), "identical", hf, live)
    applicable = [d for d in known if d.applies(conv)]
    if not applicable:
        return FidelityResult(name, "fail", (), first_difference(hf, live, engine), hf, live)
    if render is None:
        keys = tuple(d.key for d in applicable)
        return FidelityResult(
            name,
            "fail",
            keys,
            "no renderer to build the expected prompt of "
            + ", ".join(d.expect for d in applicable),
            hf,
            live,
        )
    transformed, restores, effective = conv, list[Callable[[str], str]](), set[str]()
    for divergence in {d.expect: d for d in applicable}.values():  # each once, in family order
        before = _as_sent(transformed)
        transformed, restore = EXPECTATIONS[divergence.expect](
            transformed, architecture, divergence.bos_token
        )
        restores.append(restore)
        if _as_sent(transformed) != before or restore is not unchanged:
            effective.add(divergence.expect)
    # only the divergences that changed something explain this prompt (a tool list already as
    # Ollama keeps it is no evidence of which template printed it: template_source)
    applicable = [d for d in applicable if d.expect in effective]
    keys = tuple(d.key for d in applicable)
    expected = render(transformed)
    for restore in reversed(restores):
        expected = restore(expected)
    how = "transformed"
    if expected != live:
        return FidelityResult(
            name,
            "fail",
            keys,
            f"differs from the expected prompt ({how}): "
            + first_difference(expected, live, engine),
            hf,
            live,
            compared_with=how,
        )
    reasons = "; ".join(d.reason for d in applicable)
    return FidelityResult(
        name,
        "known",
        keys,
        reasons,
        hf,
        live,
        tuple(d.reason for d in applicable),
        compared_with=how,
    )


def _as_sent(conv: Conversation) -> str:
    """A conversation's data in its own key order: what a template is handed, order included."""
    return json.dumps([conv.messages, conv.tools], ensure_ascii=False, default=str)


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
