"""Parse-back: what a pinned Ollama makes of model output in a variant's format.

The prompt is proven byte for byte elsewhere (checks/fidelity.py); this is the way back. A model
writes text; Ollama's chat handler splits it into thinking, content and tool calls with Go code
of its own (thinking.Parser, tools.Parser, primed from the TEMPLATE and the prompt). That code
is not reimplemented here: a small Go program (data/parseback/main.go) is built against the
pinned release's module, github.com/ollama/ollama@vX, and runs those parsers exactly as the
handler calls them, chunk by chunk. A scripted engine started by the real daemon would test the
same parsers plus the HTTP layer, but v0.24 embeds its runner (no llama-server to stand in for),
so the helper is the one approach that covers every pinned release alike.

The build needs Go and the Go module proxy (or a warm module cache); it is cached in the tools
folder per release and source hash, like the template checker (catalog/gotemplate.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TypedDict

from qwq_ollama.go_helpers import GoHelper


class ParseBackUnavailable(Exception):
    """The helper cannot be built or run here; the message says why, in one line."""


class ToolCallOut(TypedDict):
    name: str
    arguments: dict[str, object]


class PartOut(TypedDict):
    content: str
    thinking: str
    tool_calls: list[ToolCallOut] | None
    done: bool


@dataclass(frozen=True)
class ParsedMessage:
    """One assistant message as a client assembles it from the handler's parts."""

    content: str
    thinking: str
    tool_calls: tuple[tuple[str, str], ...] = field(default=())  # (name, arguments as JSON)


@dataclass(frozen=True)
class ParseCase:
    """Model output, and the message it encodes."""

    name: str
    output: str
    want: ParsedMessage
    split_at: tuple[int, ...] = ()  # where the stream splits the text, besides every 3 chars


WEATHER_TOOL: dict[str, object] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
_CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
_CODE = "```python\nprint('<think>x</think>')\n```"
_ANSWER = ParsedMessage("4", "Two and two.")
_OSLO = (("get_weather", '{"city": "Oslo"}'),)


def output_cases(
    generation_prompt: str, think_open: str, think_close: str, with_tools: bool
) -> list[ParseCase]:
    """The shapes a model writes after this generation prompt, each with the message it means.

    A prompt that ends inside the reasoning (a `<think>` prefill) is answered without the
    opening tag; one that leaves it to the model, with it; one that closes it (thinking off),
    with an answer. The other opening (a prefilled model that opens again, a self-opening one
    that does not), a bare closing tag and a tool call written inside the reasoning come too:
    real models write them."""
    stripped = generation_prompt.rstrip()
    if stripped.endswith(think_close):
        cases = [
            ParseCase("answer", "4", ParsedMessage("4", "")),
            ParseCase("code-with-think-tags", _CODE, ParsedMessage(_CODE, "")),
            ParseCase("tool-call", _CALL, ParsedMessage("", "", _OSLO)),
        ]
    else:
        opened = "" if stripped.endswith(think_open) else think_open + "\n"
        reasoning = f"{opened}Two and two.\n{think_close}\n\n4"
        cases = [
            ParseCase("as-prompted", reasoning, _ANSWER),
            ParseCase(
                "think-closed-across-chunks", reasoning, _ANSWER, split_at=(len(opened) + 17,)
            ),  # inside the closing tag
            ParseCase("cut-by-num-predict", opened + "Two and tw", ParsedMessage("", "Two and tw")),
            ParseCase(
                "code-with-think-tags",
                f"{opened}Code.\n{think_close}\n\n{_CODE}",
                ParsedMessage(_CODE, "Code."),
            ),
            ParseCase(
                "thinking-then-tool-call",
                f"{opened}Need it.\n{think_close}\n\n{_CALL}",
                ParsedMessage("", "Need it.", _OSLO),
            ),
            ParseCase(  # the call written before the reasoning closes; the model then stops
                "tool-call-inside-thinking",
                f"{opened}Need it.\n{_CALL}",
                ParsedMessage("", "Need it.", _OSLO),
            ),
            ParseCase(
                "other-opening",
                ("" if opened else think_open + "\n") + f"Two and two.\n{think_close}\n\n4",
                _ANSWER,
            ),
            ParseCase("close-first", f"{think_close}\n\n4", ParsedMessage("4", "")),
        ]
        if opened:  # a model left to open the reasoning may answer at once
            cases.append(ParseCase("no-reasoning", "4", ParsedMessage("4", "")))
    return [c for c in cases if with_tools or "tool" not in c.name]


def normal(message: ParsedMessage) -> ParsedMessage:
    """Whitespace around the reasoning is the format's, not the message's."""
    return ParsedMessage(message.content, message.thinking.strip(), message.tool_calls)


def assemble(parts: list[PartOut]) -> ParsedMessage:
    calls = tuple(
        (c["name"], json.dumps(c["arguments"], sort_keys=True))
        for p in parts
        for c in p["tool_calls"] or []
    )
    return ParsedMessage(
        "".join(p["content"] for p in parts),
        "".join(p["thinking"] for p in parts),
        calls,
    )


def chunks_of(text: str, split_at: tuple[int, ...] = (), every: int = 3) -> list[str]:
    """The text as a stream hands it over: pieces of `every` characters, also cut at each of
    `split_at` (to split a tag exactly where a test wants it)."""
    cuts = sorted({*range(every, len(text), every), *(i for i in split_at if 0 < i < len(text))})
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]


def parse_back(
    version: str,
    template: str,
    prompt: str,
    outputs: list[list[str]],
    *,
    tools: list[dict[str, object]] | None = None,
    think: bool = True,
    parser: str = "",
    last_message: dict[str, object] | None = None,
) -> list[ParsedMessage]:
    """Each output (a list of streamed pieces) through release `version`'s parsers: those the
    TEMPLATE implies, or the built-in `parser` a Modelfile's PARSER names."""
    cases = [
        {
            "template": template,
            "prompt": prompt,
            "tools": tools or [],
            "think": think,
            "chunks": chunks,
            "parser": parser,
            "last_message": last_message or {"role": "user", "content": ""},
        }
        for chunks in outputs
    ]
    results = helper(version).run(cases)
    for result in results:
        if result.get("error"):
            raise ParseBackUnavailable(
                f"Ollama {version} cannot parse the template: {result['error']}"
            )
    return [assemble(result["parts"]) for result in results]


def helper(version: str) -> GoHelper:
    """The parse-back program built against Ollama `version`'s module (the Go proxy or a warm
    module cache fetches it on the first build)."""
    return GoHelper(
        "parseback",
        "the parse-back helper",
        ParseBackUnavailable,
        requires=f"github.com/ollama/ollama v{version}",
        build_timeout=600.0,
    )
