"""Template fidelity: the prompt Ollama builds against the variant's Hugging Face template.

Every difference is a failure unless a known divergence below explains it. The divergences are
what Ollama's Go templates cannot express; they are listed here, in one place, with the reason,
and `validate` reports them as such rather than hiding them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qwq_ollama.catalog.chat_template import render_chat
from qwq_ollama.catalog.conversation import Conversation


@dataclass(frozen=True)
class Divergence:
    key: str
    reason: str
    applies: Callable[[Conversation], bool]
    # Masks the differing span in both prompts; if the masked prompts agree, the difference is
    # proven to lie there. None: the divergence cannot be isolated textually.
    mask: Callable[[str], str] | None = None


def _assistants(conv: Conversation) -> list[dict[str, Any]]:
    return [m for m in conv.messages if m["role"] == "assistant"]


def _args_differ_in_go(conv: Conversation) -> bool:
    """Go prints arguments with sorted keys, compact nested JSON and HTML-escaped <, >, &."""
    for message in _assistants(conv):
        for call in message.get("tool_calls") or []:
            args = call["function"]["arguments"]
            if list(args) != sorted(args):
                return True
            for value in args.values():
                if isinstance(value, (dict, list)) or re.search(r"[<>&]", str(value)):
                    return True
    return False


def _consecutive_same_role(conv: Conversation) -> bool:
    roles = [m["role"] for m in conv.messages]
    return any(a == b and a != "tool" for a, b in zip(roles, roles[1:], strict=False))


KNOWN_DIVERGENCES: tuple[Divergence, ...] = (
    Divergence(
        "tool-schema-json",
        "Go's json prints tool schemas compactly, in Ollama's struct field order and with <, >, "
        "& escaped; transformers' tojson uses ', ' and ': ' and the client's key order",
        lambda c: bool(c.tools),
        lambda text: re.sub(r"<tools>.*?\n</tools>", "<tools>…</tools>", text, flags=re.S),
    ),
    Divergence(
        "tool-call-arguments-json",
        "Go templates print tool-call arguments with sorted keys and compact nested JSON",
        _args_differ_in_go,
        lambda text: re.sub(r'"arguments": .*?\}\n</tool_call>', '"arguments": …}</tool_call>',
                            text, flags=re.S),
    ),
    Divergence(
        "reasoning-in-history-content",
        "the HF template cuts assistant content up to the last </think>; Go templates have no "
        "string functions and Ollama strips think tags only for qwen3/deepseek-r1 models. "
        "Clients should send reasoning in `thinking`, which both leave out",
        lambda c: any("</think>" in m["content"] for m in _assistants(c)),
    ),
    Divergence(
        "assistant-leading-newlines",
        "the HF template strips leading newlines from assistant content; Go templates cannot",
        lambda c: any(m["content"].startswith("\n") for m in _assistants(c)),
    ),
    Divergence(
        "merged-consecutive-roles",
        "Ollama joins consecutive messages of the same role with a blank line before the "
        "template runs; the HF template renders each as its own turn",
        _consecutive_same_role,
    ),
)


@dataclass(frozen=True)
class FidelityResult:
    conversation: str
    status: str  # "pass", "known", "fail"
    divergences: tuple[str, ...]
    detail: str
    hf_prompt: str
    ollama_prompt: str


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
                  known: tuple[Divergence, ...] = KNOWN_DIVERGENCES,
                  engine: str = "Ollama") -> FidelityResult:
    """Classify one conversation's two prompts; `known` are the engine's explained divergences."""
    if hf == live:
        return FidelityResult(name, "pass", (), "identical", hf, live)
    applicable = [d for d in known if d.applies(conv)]
    if not applicable:
        return FidelityResult(name, "fail", (), first_difference(hf, live, engine), hf, live)
    keys = tuple(d.key for d in applicable)
    masks = [d.mask for d in applicable if d.mask is not None]
    unmaskable = any(d.mask is None for d in applicable)
    if masks and not unmaskable:
        masked_hf, masked_live = hf, live
        for mask in masks:
            masked_hf, masked_live = mask(masked_hf), mask(masked_live)
        if masked_hf != masked_live:
            return FidelityResult(name, "fail", keys,
                                  "differs outside the known divergences: "
                                  + first_difference(masked_hf, masked_live, engine), hf, live)
    reasons = "; ".join(d.reason for d in applicable)
    return FidelityResult(name, "known", keys, reasons, hf, live)


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
