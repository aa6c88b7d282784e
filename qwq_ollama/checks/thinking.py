"""Thinking requests, what each means for a variant, and the live proof of it (validate's
`thinking` check).

A client asks for thinking in two ways: Ollama's `think` on /api/chat, and `reasoning_effort` on
/v1/chat/completions, which every pinned Ollama (openai/openai.go in v0.24.0, v0.32.15, v0.34.4)
turns into `think`: "none" into false, a level into that level, which a Go template sees as
`.Think` true (only `.ThinkLevel`, which no template of ours reads, tells the levels apart).
The family declares what each request does (templates/<family>/family.yaml, `think_requests`);
`resolve_think` is what `chat` sends for one, and `check_thinking` proves the declaration on the
daemon: the prompt built, where the reasoning arrives (message.thinking on /api/chat,
`reasoning` on /v1, streamed and not), and that no think tag reaches the answer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from qwq_ollama.catalog.family import THINK_REQUESTS, ThinkRequest
from qwq_ollama.catalog.schema import Variant
from qwq_ollama.checks.findings import Finding
from qwq_ollama.daemon.client import OllamaAPI, ThinkValue
from qwq_ollama.errors import InputError

# The `think` each request reaches the template as: sent as such on /api/chat, and what Ollama's
# /v1 turns reasoning_effort into.
THINK_SENT: dict[str, ThinkValue] = {
    "think_on": True,
    "think_off": False,
    "effort_none": False,
    "effort_low": "low",
    "effort_medium": "medium",
    "effort_high": "high",
}
PROMPT = "Say hello in one short sentence."
_WORDS = {
    "think_on": "think: true",
    "think_off": "think: false",
    "effort_none": "reasoning_effort none",
    "effort_low": "reasoning_effort low",
    "effort_medium": "reasoning_effort medium",
    "effort_high": "reasoning_effort high",
}


def request_name(think: bool | None = None, effort: str | None = None) -> str | None:
    """The family.THINK_REQUESTS name of a `think` flag or a reasoning effort (None: neither)."""
    if effort is not None:
        name = f"effort_{effort}"
        if name not in THINK_REQUESTS:
            raise InputError(
                f"unknown reasoning effort {effort!r} (known: none, low, medium, high)",
                field="--effort",
            )
        return name
    if think is None:
        return None
    return "think_on" if think else "think_off"


def resolve_think(variant: Variant, request: str | None) -> tuple[bool | None, str | None]:
    """What to send as `think` for a request, and a note for the user when the request is
    ignored. A refused request raises InputError with the family's reason (exit code 2)."""
    if request is None:
        return None, None
    meaning = variant.think_request(request)
    asked = _WORDS[request]
    if meaning.does == "refuse":
        raise InputError(
            f"{variant.name} refuses {asked}: {meaning.why}",
            field="--effort" if request.startswith("effort") else "--think",
        )
    if meaning.does == "ignore":
        return None, f"{asked} is ignored for {variant.name}: {meaning.why}"
    return meaning.wants_thinking, None


@dataclass
class RequestResult:
    """One request on the daemon: the prompt it built and the replies, streamed and not."""

    request: str
    does: str
    endpoint: str
    prompt_ok: bool
    replies: dict[str, dict[str, Any]] = field(default_factory=dict)  # "stream"/"once" -> text
    problems: list[str] = field(default_factory=list)


def _expected_prompt_end(variant: Variant, meaning: ThinkRequest) -> str | None:
    """How the prompt must end for a request the variant switches; None: as without it."""
    if meaning.does != "switch":
        return None
    return variant.family.generation_prompt(
        prefill=variant.think_prefill, thinking=meaning.wants_thinking
    )


def _thinks(variant: Variant, meaning: ThinkRequest) -> bool:
    """Whether the model reasons under this request (ignored ones keep the variant's mode)."""
    return meaning.wants_thinking if meaning.does == "switch" else variant.enable_thinking


def _judge_reply(variant: Variant, meaning: ThinkRequest, thinking: str, content: str) -> list[str]:
    family = variant.family
    problems = []
    if family.think_open in content or family.think_close in content:
        problems.append("a think tag leaked into the answer")
    if meaning.does == "refuse":
        # What the refusal spares the user: the daemon keeps the reasoning in the answer.
        if thinking:
            problems.append(
                "the daemon split the reasoning off after all: the refusal's reason no longer holds"
            )
    elif not _thinks(variant, meaning):
        if thinking:
            problems.append(f"thinking arrived ({len(thinking)} chars) with thinking off")
    elif variant.prefills_reasoning and content and not thinking:
        problems.append("the prefilled reasoning arrived as the answer, not apart from it")
    return problems


def check_request(
    api: OllamaAPI,
    variant: Variant,
    request: str,
    default_prompt: str,
    *,
    seed: int,
    num_predict: int,
) -> RequestResult:
    meaning = variant.think_request(request)
    messages = [{"role": "user", "content": PROMPT}]
    think = THINK_SENT[request]
    prompt = api.render_prompt(variant.name, messages, think=think)
    end = _expected_prompt_end(variant, meaning)
    prompt_ok = prompt.endswith(end) if end is not None else prompt == default_prompt
    on_v1 = request.startswith("effort_")
    result = RequestResult(
        request, meaning.does, "/v1/chat/completions" if on_v1 else "/api/chat", prompt_ok
    )
    if not prompt_ok:
        result.problems.append(
            f"the prompt does not end with {end!r}"
            if end is not None
            else "the prompt differs from the one built without the request"
        )
    for mode in ("once", "stream"):
        if on_v1:
            v1 = api.openai_chat(
                variant.name,
                messages,
                reasoning_effort=request[7:],
                seed=seed,
                max_tokens=num_predict,
                stream=mode == "stream",
            )
            thinking, content = v1.reasoning, v1.content
        else:
            options = {"seed": seed, "num_predict": num_predict}
            if mode == "once":
                reply = api.chat_once(variant.name, messages, options=options, think=think)
                thinking, content = reply.message.thinking or "", reply.message.content or ""
            else:
                thinking = content = ""
                for part in api.chat_stream(
                    variant.name, messages, options=options, think=bool(think)
                ):
                    thinking += part.message.thinking or ""
                    content += part.message.content or ""
        result.replies[mode] = {
            "thinking_chars": len(thinking),
            "content_chars": len(content),
            "thinking": thinking[:200],
            "content": content[:200],
        }
        result.problems += [
            f"{mode}: {p}" for p in _judge_reply(variant, meaning, thinking, content)
        ]
    once, streamed = result.replies["once"], result.replies["stream"]
    if (once["thinking"], once["content"]) != (streamed["thinking"], streamed["content"]):
        result.problems.append("the streamed reply differs from the one in one piece")
    return result


def check_thinking(
    api: OllamaAPI, variant: Variant, *, seed: int | None = None, num_predict: int = 48
) -> Finding:
    """Every thinking request on the daemon against what the family declares for it."""
    default_prompt = api.render_prompt(variant.name, [{"role": "user", "content": PROMPT}])
    results = [
        check_request(
            api, variant, request, default_prompt, seed=seed or 1, num_predict=min(num_predict, 48)
        )
        for request in THINK_REQUESTS
    ]
    details = {"requests": [asdict(r) for r in results]}
    problems = [
        f"{r.request} ({r.endpoint}, declared {r.does}): {p}" for r in results for p in r.problems
    ]
    if problems:
        return Finding(variant.name, "thinking", "fail", "; ".join(problems), details=details)
    summary = ", ".join(f"{r.request} {r.does}" for r in results)
    # A model that writes nothing under a request shows no reasoning to place: said, not failed
    # (the generation check fails a run without an answer).
    silent = [
        r.request
        for r in results
        if not any(t["thinking_chars"] or t["content_chars"] for t in r.replies.values())
    ]
    return Finding(
        variant.name,
        "thinking",
        "pass",
        f"as declared on /api/chat and /v1, streamed and not: {summary}"
        + (f" (the model wrote nothing for {', '.join(silent)})" if silent else ""),
        details=details,
    )


def outcome_words(variant: Variant, request: str) -> str:
    """One cell of docs/thinking.md's table: what the user gets for a request."""
    meaning = variant.think_request(request)
    if meaning.does == "refuse":
        return "refused"
    mode = "thinks" if _thinks(variant, meaning) else "no thinking"
    return mode if meaning.does == "switch" else f"ignored ({mode})"


def requests_table(variants: list[Variant]) -> str:
    """The Markdown table of what each variant does with each thinking request."""
    columns = {
        "think: true": "think_on",
        "think: false": "think_off",
        "reasoning_effort none": "effort_none",
        "reasoning_effort low/medium/high": "effort_low",
    }
    lines = ["| variant | " + " | ".join(columns) + " |", "|" + " --- |" * (len(columns) + 1)]
    for variant in variants:
        lines.append(
            f"| {variant.name} | "
            + " | ".join(outcome_words(variant, r) for r in columns.values())
            + " |"
        )
    return "\n".join(lines) + "\n"
