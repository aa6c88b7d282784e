"""Conversation files: JSON in the Ollama/OpenAI chat shape, checked before any engine sees them."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qwq_ollama.catalog.load import load_json
from qwq_ollama.errors import InputError

ROLES = ("system", "user", "assistant", "tool")
MESSAGE_KEYS = {"role", "content", "thinking", "tool_calls", "tool_name", "tool_call_id", "images"}


@dataclass(frozen=True)
class Conversation:
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    name: str = ""


def load_conversation(path: Path) -> Conversation:
    """A list of messages, or an object with `messages` and optional `tools`.

    Read bounded in size and depth (catalog/load.py): a hostile file is one InputError.
    """
    return parse_conversation(load_json(Path(path)), source=path)


def parse_conversation(data: Any, source: Path | str = "<conversation>") -> Conversation:
    if isinstance(data, list):
        data = {"messages": data}
    if not isinstance(data, dict):
        raise InputError("expected a list of messages or an object with `messages`", file=source)
    unknown = set(data) - {"messages", "tools", "name"}
    if unknown:
        raise InputError(f"unknown key {sorted(unknown)[0]!r}", file=source)
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InputError("`messages` must be a non-empty list", file=source, field="messages")
    for index, message in enumerate(messages):
        _check_message(message, f"messages[{index}]", source)
    tools = data.get("tools")
    if tools is not None:
        if not isinstance(tools, list) or not all(_is_tool(t) for t in tools):
            raise InputError("`tools` must be a list of {type: function, function: {name, ...}}",
                             file=source, field="tools")
    return Conversation(messages, tools or None, str(data.get("name", "")))


def _is_tool(tool: Any) -> bool:
    return (isinstance(tool, dict) and isinstance(tool.get("function"), dict)
            and isinstance(tool["function"].get("name"), str))


def _check_message(message: Any, where: str, source: Path | str) -> None:
    if not isinstance(message, dict):
        raise InputError("each message must be an object", file=source, field=where)
    extra = set(message) - MESSAGE_KEYS
    if extra:
        raise InputError(f"unknown key {sorted(extra)[0]!r}", file=source, field=where)
    role = message.get("role")
    if role not in ROLES:
        raise InputError(f"role must be one of {', '.join(ROLES)} (got {role!r})",
                         file=source, field=f"{where}.role")
    if not isinstance(message.get("content"), str):
        raise InputError("content must be a string", file=source, field=f"{where}.content")
    for key in ("thinking", "tool_name", "tool_call_id"):
        if key in message and not isinstance(message[key], str):
            raise InputError(f"{key} must be a string", file=source, field=f"{where}.{key}")
    calls = message.get("tool_calls")
    if calls is None:
        return
    if role != "assistant" or not isinstance(calls, list):
        raise InputError("tool_calls must be a list on an assistant message", file=source,
                         field=f"{where}.tool_calls")
    for number, call in enumerate(calls):
        fn = call.get("function") if isinstance(call, dict) else None
        if not (isinstance(fn, dict) and isinstance(fn.get("name"), str)
                and isinstance(fn.get("arguments"), dict)):
            raise InputError("each tool call needs function.name (string) and "
                             "function.arguments (object)", file=source,
                             field=f"{where}.tool_calls[{number}]")


def load_corpus() -> list[Conversation]:
    """The built-in conversations `validate` checks template fidelity with."""
    from importlib.resources import files

    data = json.loads(files("qwq_ollama").joinpath("data/corpus.json").read_text("utf-8"))
    return [parse_conversation(c, source="corpus.json") for c in data["conversations"]]


# Properties of a conversation that decide whether an engine's prompt may differ from the
# official template's; a family's declared divergences name them (`when:` in family.yaml).
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


CONDITIONS: dict[str, Callable[[Conversation], bool]] = {
    "always": lambda c: True,
    "has_tools": lambda c: bool(c.tools),
    "tool_call_arguments_unsorted_or_nested": _args_differ_in_go,
    "reasoning_in_assistant_content": lambda c: any("</think>" in m["content"]
                                                    for m in _assistants(c)),
    "assistant_content_leading_newline": lambda c: any(m["content"].startswith("\n")
                                                       for m in _assistants(c)),
    "consecutive_same_role": _consecutive_same_role,
}


def as_hf_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same messages as a Hugging Face client sends them: reasoning in `reasoning_content`
    (what transformers' and vLLM's templates read), where an Ollama client sends `thinking`."""
    return [{**m, "reasoning_content": m["thinking"]} if m.get("thinking") else m
            for m in messages]
