"""Conversation files: JSON in the Ollama/OpenAI chat shape, checked before any engine sees them."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qwq_ollama.catalog.load import load_json
from qwq_ollama.errors import InputError

ROLES = ("system", "user", "assistant", "tool")
MESSAGE_KEYS = {"role", "content", "thinking", "tool_calls", "tool_name", "tool_call_id", "images"}
# The same message as OpenAI and Hugging Face clients send it: read at the one door below and
# turned into the keys above, as Ollama's /v1 endpoint reads them (openai/openai.go
# FromChatRequest, the same at v0.24.0, v0.32.15 and v0.34.4).
CLIENT_KEYS = {"name", "reasoning_content"}


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
    messages = [
        _check_message(
            _from_client_shape(message, messages, f"messages[{index}]", source),
            f"messages[{index}]",
            source,
        )
        for index, message in enumerate(messages)
    ]
    tools = data.get("tools")
    if tools is not None:
        if not isinstance(tools, list) or not all(_is_tool(t) for t in tools):
            raise InputError(
                "`tools` must be a list of {type: function, function: {name, ...}}",
                file=source,
                field="tools",
            )
    return Conversation(messages, tools or None, str(data.get("name", "")))


def _is_tool(tool: Any) -> bool:
    return (
        isinstance(tool, dict)
        and isinstance(tool.get("function"), dict)
        and isinstance(tool["function"].get("name"), str)
    )


def _from_client_shape(message: Any, messages: list[Any], where: str, source: Path | str) -> Any:
    """One message in the keys Ollama's /api/chat takes, from the shapes OpenAI and Hugging
    Face clients send (each as Ollama's /v1 reads it):

    - `name` on a tool message is its `tool_name` (on another role no engine or official
      template reads it, so it is dropped); a tool message with only `tool_call_id` takes the
      name of the call with that id, as /v1 does;
    - `reasoning_content` (transformers, vLLM) is `thinking`;
    - content as a list of text parts is their texts joined by a blank line: /v1 makes one
      message per part and Ollama joins same-role neighbours so (template.go `collate`);
    - `type: function` and `id` on a tool call are kept (Ollama reads the id)."""
    if not isinstance(message, dict):
        return message
    unnamed_result = message.get("role") == "tool" and "tool_name" not in message
    if not (
        CLIENT_KEYS & set(message) or isinstance(message.get("content"), list) or unnamed_result
    ):
        return message
    out = {k: v for k, v in message.items() if k not in CLIENT_KEYS}
    name = message.get("name")
    if name is not None and not isinstance(name, str):
        raise InputError("name must be a string", file=source, field=f"{where}.name")
    if message.get("role") == "tool":
        named = name or _call_name(messages, message.get("tool_call_id"))
        if named and out.setdefault("tool_name", named) != named:
            raise InputError(
                "name and tool_name differ: which tool answered?",
                file=source,
                field=f"{where}.name",
            )
    reasoning = message.get("reasoning_content")
    if reasoning is not None:
        if not isinstance(reasoning, str):
            raise InputError(
                "reasoning_content must be a string",
                file=source,
                field=f"{where}.reasoning_content",
            )
        if out.setdefault("thinking", reasoning) != reasoning:
            raise InputError(
                "reasoning_content and thinking differ: send one",
                file=source,
                field=f"{where}.reasoning_content",
            )
    content = message.get("content")
    if isinstance(content, list):
        texts = []
        for number, part in enumerate(content):
            if not (
                isinstance(part, dict)
                and part.get("type") == "text"
                and isinstance(part.get("text"), str)
            ):
                raise InputError(
                    "a content part must be {type: text, text: <string>} (images and audio "
                    "are not read here)",
                    file=source,
                    field=f"{where}.content[{number}]",
                )
            texts.append(part["text"])
        if not texts:
            raise InputError("content has no parts", file=source, field=f"{where}.content")
        out["content"] = "\n\n".join(texts)
    return out


def _call_name(messages: list[Any], call_id: Any) -> str:
    """The function name of the tool call with `call_id` in the conversation ("" if none)."""
    for message in messages:
        for call in (message.get("tool_calls") if isinstance(message, dict) else None) or []:
            if isinstance(call, dict) and call.get("id") == call_id and call_id:
                function = call.get("function")
                if isinstance(function, dict) and isinstance(function.get("name"), str):
                    return str(function["name"])
    return ""


def _check_message(message: Any, where: str, source: Path | str) -> dict[str, Any]:
    if not isinstance(message, dict):
        raise InputError("each message must be an object", file=source, field=where)
    extra = set(message) - MESSAGE_KEYS
    if extra:
        raise InputError(f"unknown key {sorted(extra)[0]!r}", file=source, field=where)
    role = message.get("role")
    if role not in ROLES:
        raise InputError(
            f"role must be one of {', '.join(ROLES)} (got {role!r})",
            file=source,
            field=f"{where}.role",
        )
    content = message.get("content")
    # An OpenAI client sends `content: null` beside an assistant's tool calls.
    if not (isinstance(content, str) or (content is None and message.get("tool_calls"))):
        raise InputError(
            "content must be a string (or null beside tool calls)",
            file=source,
            field=f"{where}.content",
        )
    for key in ("thinking", "tool_name", "tool_call_id"):
        if key in message and not isinstance(message[key], str):
            raise InputError(f"{key} must be a string", file=source, field=f"{where}.{key}")
    calls = message.get("tool_calls")
    if calls is None:
        return message
    if role != "assistant" or not isinstance(calls, list):
        raise InputError(
            "tool_calls must be a list on an assistant message",
            file=source,
            field=f"{where}.tool_calls",
        )
    for number, call in enumerate(calls):
        fn = call.get("function") if isinstance(call, dict) else None
        if not (
            isinstance(fn, dict)
            and isinstance(fn.get("name"), str)
            and isinstance(_arguments(fn.get("arguments")), dict)
        ):
            raise InputError(
                "each tool call needs function.name (string) and "
                "function.arguments (an object, or a string holding one as "
                "OpenAI clients send it)",
                file=source,
                field=f"{where}.tool_calls[{number}]",
            )
        if not isinstance(call.get("id", ""), str):
            raise InputError(
                "a tool call's id must be a string",
                file=source,
                field=f"{where}.tool_calls[{number}].id",
            )
        if call.get("type", "function") != "function":
            raise InputError(
                "a tool call's type must be function",
                file=source,
                field=f"{where}.tool_calls[{number}].type",
            )
    return message


def _arguments(value: Any) -> Any:
    """Tool-call arguments as an object: OpenAI clients send them as a JSON string."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def as_ollama_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages as Ollama's /api/chat takes them: tool-call arguments as objects (its
    OpenAI-compatible endpoint decodes a client's JSON string the same way)."""
    out = []
    for message in messages:
        calls = message.get("tool_calls")
        if calls and any(isinstance(c["function"]["arguments"], str) for c in calls):
            calls = [
                {
                    **c,
                    "function": {
                        **c["function"],
                        "arguments": _arguments(c["function"]["arguments"]),
                    },
                }
                for c in calls
            ]
            message = {**message, "tool_calls": calls}
        out.append(message)
    return out


def load_corpus() -> list[Conversation]:
    """The built-in conversations `validate` checks template fidelity with."""
    from importlib.resources import files

    data = json.loads(files("qwq_ollama").joinpath("data/corpus.json").read_text("utf-8"))
    return [parse_conversation(c, source="corpus.json") for c in data["conversations"]]


# Properties of a conversation that decide whether an engine's prompt may differ from the
# official template's; a family's declared divergences name them (`when:` in family.yaml).
def _assistants(conv: Conversation) -> list[dict[str, Any]]:
    return [m for m in conv.messages if m["role"] == "assistant"]


def _args_print_differently(conv: Conversation) -> bool:
    """A call whose arguments a Go TEMPLATE sees other than as sent: keys out of sorted order,
    a whole float, or a JSON string (which Ollama decodes)."""
    for message in _assistants(conv):
        for call in message.get("tool_calls") or []:
            sent = call["function"]["arguments"]
            args = _arguments(sent)
            if isinstance(sent, str) or json.dumps(args) != json.dumps(_as_go_holds_it(args)):
                return True
    return False


def _consecutive_same_role(conv: Conversation) -> bool:
    roles = [m["role"] for m in conv.messages]
    return any(a == b and a != "tool" for a, b in zip(roles, roles[1:], strict=False))


def _earlier_assistants(conv: Conversation) -> list[dict[str, Any]]:
    """Assistant messages other than the conversation's last message: the ones a template
    guarded by `not loop.last` (QwQ's current text) cuts, where the final one is kept whole."""
    return [m for m in conv.messages[:-1] if m["role"] == "assistant"]


CONDITIONS: dict[str, Callable[[Conversation], bool]] = {
    "always": lambda c: True,
    "has_tools": lambda c: bool(c.tools),
    "integral_float_in_arguments": lambda c: any(
        _has_integral_float(call["function"]["arguments"])
        for m in _assistants(c)
        for call in m.get("tool_calls") or []
    ),
    "tool_without_description": lambda c: any(
        "description" not in (t.get("function") or {}) for t in c.tools or []
    ),
    "tool_call_arguments_print_differently": _args_print_differently,
    "reasoning_in_assistant_content": lambda c: any(
        "</think>" in (m["content"] or "") for m in _assistants(c)
    ),
    "assistant_content_leading_newline": lambda c: any(
        (m["content"] or "").startswith("\n") for m in _assistants(c)
    ),
    "null_content": lambda c: any(m["content"] is None for m in c.messages),
    "tool_call_arguments_as_string": lambda c: any(
        isinstance(call["function"]["arguments"], str)
        for m in _assistants(c)
        for call in m.get("tool_calls") or []
    ),
    "reasoning_in_earlier_assistant_content": lambda c: any(
        "</think>" in (m["content"] or "") for m in _earlier_assistants(c)
    ),
    "earlier_assistant_content_leading_newline": lambda c: any(
        (m["content"] or "").startswith("\n") for m in _earlier_assistants(c)
    ),
    "consecutive_same_role": _consecutive_same_role,
}


def as_hf_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same messages as a Hugging Face client sends them: reasoning in `reasoning_content`
    (what transformers' and vLLM's templates read), where an Ollama client sends `thinking`."""
    return [{**m, "reasoning_content": m["thinking"]} if m.get("thinking") else m for m in messages]


# How Ollama changes a conversation before (or instead of) what the official template does: every
# divergence names one (`expect:` in family.yaml; no mask hides any span), and the engine's
# prompt must then equal, byte for byte, the official rendering of the conversation so
# transformed. Each takes the conversation, the model's architecture as the daemon reports it
# (Ollama decides some of this by architecture; "" when unknown) and the family's bos_token
# ("" if none), and returns the conversation to render and what to apply to that rendering.
Restore = Callable[[str], str]
Expectation = Callable[[Conversation, str, str], tuple[Conversation, Restore]]


def unchanged(text: str) -> str:
    """The restore of an expectation that leaves the rendered text as it is (checks/fidelity.py
    tells by it which expectations changed nothing)."""
    return text


def ollama_merges_roles(
    conv: Conversation,
    architecture: str = "",
    bos_token: str = "",
) -> tuple[Conversation, Restore]:
    """Ollama's `collate` (template/template.go, v0.24 to v0.34): a message whose role equals
    the previous one's, tool results apart, is appended to its content after a blank line, and
    its other fields are dropped."""
    merged: list[dict[str, Any]] = []
    for message in conv.messages:
        role = message["role"]
        if merged and merged[-1]["role"] == role and role != "tool":
            previous = merged[-1]
            merged[-1] = {
                **previous,
                "content": (previous["content"] or "") + "\n\n" + (message["content"] or ""),
            }
        else:
            merged.append(dict(message))
    return Conversation(merged, conv.tools, conv.name), unchanged


def content_printed_whole(
    conv: Conversation,
    architecture: str = "",
    bos_token: str = "",
) -> tuple[Conversation, Restore]:
    """A Go template prints an assistant message's `.Content` as it came, where the official
    template cuts it up to the last `</think>` and strips leading newlines: each such content
    is rendered through a placeholder the template cannot cut, then put back whole."""
    messages: list[dict[str, Any]] = []
    kept: dict[str, str] = {}
    for number, message in enumerate(conv.messages):
        content = message["content"]
        cuttable = isinstance(content, str) and ("</think>" in content or content.startswith("\n"))
        if message["role"] == "assistant" and cuttable:
            placeholder = f"\u2063content-of-message-{number}\u2063"
            kept[placeholder] = content
            messages.append({**message, "content": placeholder})
        else:
            messages.append(message)

    def restore(text: str) -> str:
        for placeholder, content in kept.items():
            text = text.replace(placeholder, content)
        return text

    return Conversation(messages, conv.tools, conv.name), restore


def _ollama_think_filter(content: str) -> str:
    """What Ollama's thinking parser leaves of a content that opens with `<think>` (after
    whitespace): the text after the FIRST `</think>`, its leading whitespace trimmed; nothing if
    the reasoning never closes. Other content is left alone (thinking/parser.go)."""
    trimmed = content.lstrip()
    if not trimmed.startswith("<think>"):
        return content
    after = trimmed.split("<think>", 1)[1].lstrip()
    if "</think>" not in after:
        return ""
    return after.split("</think>", 1)[1].lstrip()


def ollama_strips_earlier_reasoning(
    conv: Conversation,
    architecture: str = "",
    bos_token: str = "",
) -> tuple[Conversation, Restore]:
    """Ollama's `filterThinkTags` (server/routes.go): for a qwen3-architecture model the
    assistant messages before the last user message lose their think block; for any other, the
    template prints every content as it came."""
    if architecture != "qwen3":
        return content_printed_whole(conv)
    last_user = max((i for i, m in enumerate(conv.messages) if m["role"] == "user"), default=-1)
    messages = [
        {**m, "content": _ollama_think_filter(m["content"])}
        if m["role"] == "assistant" and i < last_user and isinstance(m["content"], str)
        else m
        for i, m in enumerate(conv.messages)
    ]
    return Conversation(messages, conv.tools, conv.name), unchanged


def string_arguments_decoded(
    conv: Conversation,
    architecture: str = "",
    bos_token: str = "",
) -> tuple[Conversation, Restore]:
    """Tool-call arguments sent as a JSON string reach the template as the object they hold:
    Ollama's /v1 decodes them (/api/chat takes only objects), and llama-server decodes them for
    a template that prints arguments with `tojson`."""
    return Conversation(as_ollama_messages(conv.messages), conv.tools, conv.name), unchanged


def null_content_read_as_empty(
    conv: Conversation,
    architecture: str = "",
    bos_token: str = "",
) -> tuple[Conversation, Restore]:
    """`content: null` reaches the template as the empty string, so it cannot tell it from `""`:
    in Ollama because Go's JSON decoding leaves a string field empty, in llama-server because
    it reads a null content as empty."""
    messages = [{**m, "content": ""} if m["content"] is None else m for m in conv.messages]
    return Conversation(messages, conv.tools, conv.name), unchanged


def _placeholder(kind: str, *numbers: int) -> str:
    """Text no conversation holds, which a template prints as it is (or `tojson` quotes)."""
    return "\u2063" + "-".join([kind, *map(str, numbers)]) + "\u2063"


def _put_back(kept: dict[str, str]) -> Restore:
    """Each placeholder, quoted by `tojson` or printed as it is, replaced by its text."""

    def restore(text: str) -> str:
        for placeholder, printed in kept.items():
            text = text.replace(json.dumps(placeholder, ensure_ascii=False), printed)
            text = text.replace(placeholder, printed)
        return text

    return restore


def _as_go_holds_it(value: Any) -> Any:
    """A JSON value as a TEMPLATE prints it from Go's `any`: maps with their keys sorted,
    numbers as float64 (a whole one without `.0`)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    if isinstance(value, dict):
        return {k: _as_go_holds_it(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_as_go_holds_it(v) for v in value]
    return value


def _property_kept(schema: Any) -> dict[str, Any]:
    """One property schema as Ollama's `ToolProperty` keeps it and our TEMPLATE prints it:
    anyOf, type (one type as a string), description, enum, items, properties (the client's
    order), required; empty ones and every other key gone."""
    schema = schema if isinstance(schema, dict) else {}
    kept: dict[str, Any] = {}
    if schema.get("anyOf"):
        kept["anyOf"] = [_property_kept(p) for p in schema["anyOf"]]
    types = schema.get("type")
    types = [types] if isinstance(types, str) else types
    if isinstance(types, list) and types:
        kept["type"] = types[0] if len(types) == 1 else list(types)
    for key in ("description", "enum", "items"):
        if schema.get(key):
            kept[key] = _as_go_holds_it(schema[key])
    if isinstance(schema.get("properties"), dict):
        kept["properties"] = {k: _property_kept(v) for k, v in schema["properties"].items()}
    if schema.get("required"):
        kept["required"] = list(schema["required"])
    return kept


def tool_as_ollama_keeps_it(tool: dict[str, Any]) -> dict[str, Any]:
    """A tool as a TEMPLATE sees it and ours prints it: `type`, `function` (`name`, a
    non-empty `description`, `parameters`: `type`, `properties` with top-level names sorted,
    `required`, `$defs` and `items` if any); schema keys outside Ollama's structs dropped."""
    function = tool.get("function") or {}
    parameters = function.get("parameters") or {}
    properties = parameters.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    kept_parameters: dict[str, Any] = {
        "type": parameters.get("type") or "",
        "properties": {k: _property_kept(properties[k]) for k in sorted(properties)},
    }
    for key in ("required", "$defs", "items"):
        if parameters.get(key):
            kept_parameters[key] = _as_go_holds_it(parameters[key])
    kept_function: dict[str, Any] = {"name": function.get("name", "")}
    if function.get("description"):
        kept_function["description"] = function["description"]
    kept_function["parameters"] = kept_parameters
    return {"type": tool.get("type", ""), "function": kept_function}


def tools_as_ollama_keeps_them(
    conv: Conversation,
    architecture: str = "",
    bos_token: str = "",
) -> tuple[Conversation, Restore]:
    """The official rendering of the tools as a Go TEMPLATE sees them (tool_as_ollama_keeps_it):
    our TEMPLATE prints them as transformers' `tojson` does, so only what the data cannot carry
    differs: the client's order of top-level property names, of a tool's own fields and of a
    property's keys, empty fields and the schema keys Ollama drops."""
    if not conv.tools:
        return conv, unchanged
    tools = [tool_as_ollama_keeps_it(t) for t in conv.tools]
    return Conversation(conv.messages, tools, conv.name), unchanged


def arguments_sorted(
    conv: Conversation,
    architecture: str = "",
    bos_token: str = "",
) -> tuple[Conversation, Restore]:
    """The official rendering of each tool call's arguments as a Go TEMPLATE sees them: decoded
    from a client's JSON string, keys sorted at every level, whole floats without `.0`."""
    messages = [
        {
            **m,
            "tool_calls": [
                {
                    **c,
                    "function": {
                        **c["function"],
                        "arguments": _as_go_holds_it(_arguments(c["function"]["arguments"])),
                    },
                }
                for c in m["tool_calls"]
            ],
        }
        if m.get("tool_calls")
        else m
        for m in conv.messages
    ]
    return Conversation(messages, conv.tools, conv.name), unchanged


def bos_left_to_tokenizer(
    conv: Conversation,
    architecture: str = "",
    bos_token: str = "",
) -> tuple[Conversation, Restore]:
    """The official rendering without the bos_token text it opens with: an Ollama template
    leaves BOS to the tokenizer, which adds it as a token (add_bos_token)."""

    def restore(text: str) -> str:
        return text.removeprefix(bos_token) if bos_token else text

    return conv, restore


def tool_description_defaulted(
    conv: Conversation,
    architecture: str = "",
    bos_token: str = "",
) -> tuple[Conversation, Restore]:
    """A tool sent without a description reaches llama-server's template with `description: ""`
    after its name (its OpenAI-compatible parsing fills it in; measured on b11076)."""
    if not conv.tools:
        return conv, unchanged
    tools = []
    for tool in conv.tools:
        function = tool.get("function")
        if isinstance(function, dict) and "description" not in function:
            filled = {"name": function.get("name"), "description": ""}
            filled.update({k: v for k, v in function.items() if k != "name"})
            tool = {**tool, "function": filled}
        tools.append(tool)
    return Conversation(conv.messages, tools, conv.name), unchanged


def _integral_floats_as_ints(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral_floats_as_ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral_floats_as_ints(v) for v in value]
    return value


def _has_integral_float(value: Any) -> bool:
    return json.dumps(value) != json.dumps(_integral_floats_as_ints(value))


def integral_floats_printed_whole(
    conv: Conversation,
    architecture: str = "",
    bos_token: str = "",
) -> tuple[Conversation, Restore]:
    """A tool-call argument like 1500.0 reaches llama-server's template as the number 1500,
    which tojson prints without `.0` (measured on b11076); transformers prints `1500.0`."""
    messages = [
        {
            **m,
            "tool_calls": [
                {
                    **c,
                    "function": {
                        **c["function"],
                        "arguments": _integral_floats_as_ints(c["function"]["arguments"]),
                    },
                }
                for c in m["tool_calls"]
            ],
        }
        if m.get("tool_calls")
        else m
        for m in conv.messages
    ]
    return Conversation(messages, conv.tools, conv.name), unchanged


EXPECTATIONS: dict[str, Expectation] = {
    "integral_floats_printed_whole": integral_floats_printed_whole,
    "tool_description_defaulted": tool_description_defaulted,
    "tools_as_ollama_keeps_them": tools_as_ollama_keeps_them,
    "arguments_sorted": arguments_sorted,
    "bos_left_to_tokenizer": bos_left_to_tokenizer,
    "null_content_read_as_empty": null_content_read_as_empty,
    "string_arguments_decoded": string_arguments_decoded,
    "ollama_strips_earlier_reasoning": ollama_strips_earlier_reasoning,
    "ollama_merges_roles": ollama_merges_roles,
    "content_printed_whole": content_printed_whole,
}
