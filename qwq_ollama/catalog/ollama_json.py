"""How Ollama's Go side prints tool JSON into a TEMPLATE: the exact text, not a mask.

A TEMPLATE never sees the client's JSON. Ollama decodes a request into its structs (api/types.go:
`Tool`, `ToolFunctionParameters`, `ToolProperty`; schema keys outside them are dropped, every
number becomes a float64) and hands the template copies whose property names and argument keys
are plain Go maps (template/template.go, `convertToolsForTemplate`, `convertMessagesForTemplate`).
Its `json` function is encoding/json's Marshal: compact, maps in sorted key order, `<`, `>`, `&`,
U+2028 and U+2029 escaped, structs in field order with their `omitempty` rules. Read at v0.24.0,
v0.32.15 and v0.34.4, where these structs and the `json` function are the same.

One owner for that text: the fidelity expectations render the official template and put this
text where the Go template prints it, so a prompt with tools is compared byte for byte.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

# encoding/json's string escapes (Go 1.22 and later write \b and \f short; the pinned builds use
# Go 1.26). HTML-sensitive characters and the two JavaScript line separators are escaped too.
_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def go_string(text: str) -> str:
    """A string as encoding/json writes it."""
    out = ['"']
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20:
            out.append(f"\\u{ord(char):04x}")
        elif 0xD800 <= ord(char) <= 0xDFFF:  # a lone surrogate is not UTF-8: Go writes U+FFFD
            out.append("\ufffd")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def go_number(value: float) -> str:
    """A JSON number as Go holds it (float64) and writes it: the shortest digits, no `.0` on a
    whole number, an exponent only below 1e-6 or from 1e21, `e-7` rather than `e-07`."""
    number = float(value)
    if math.isnan(number) or math.isinf(number):
        raise ValueError(f"JSON has no {number!r}")
    magnitude = abs(number)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        text = repr(number)  # Python's repr is also the shortest round-trip form
        return text[:-2] + text[-1] if re.search(r"e-0\d$", text) else text
    return format(Decimal(repr(number)).normalize(), "f")


def go_json(value: Any) -> str:
    """A decoded JSON value (Go's `any`) as encoding/json.Marshal writes it."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return go_string(value)
    if isinstance(value, (int, float)):
        return go_number(value)
    if isinstance(value, list):
        return "[" + ",".join(go_json(v) for v in value) + "]"
    if isinstance(value, dict):
        items = sorted(value.items())  # Go sorts map keys by their bytes: code point order
        return "{" + ",".join(f"{go_string(k)}:{go_json(v)}" for k, v in items) + "}"
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def _fields(pairs: list[tuple[str, str | None]]) -> str:
    return "{" + ",".join(f"{go_string(k)}:{v}" for k, v in pairs if v is not None) + "}"


def _omit_nil(value: Any) -> str | None:
    """An `any` field with omitempty: left out only when nil (JSON null or absent)."""
    return None if value is None else go_json(value)


def _omit_empty_list(value: Any) -> str | None:
    return go_json(value) if isinstance(value, list) and value else None


def _property_type(value: Any) -> str | None:
    """`PropertyType` ([]string, omitempty): one type prints as a string, more as a list."""
    types = [value] if isinstance(value, str) else value
    if not isinstance(types, list) or not types:
        return None
    return go_string(types[0]) if len(types) == 1 else go_json(types)


def _property(schema: Any) -> str:
    """`ToolProperty` in its field order: anyOf, type, items, description, enum, properties
    (an ordered map: the client's order), required. Every other key is dropped."""
    schema = schema if isinstance(schema, dict) else {}
    any_of = schema.get("anyOf")
    nested = schema.get("properties")
    description = schema.get("description")
    return _fields(
        [
            (
                "anyOf",
                "[" + ",".join(_property(p) for p in any_of) + "]"
                if isinstance(any_of, list) and any_of
                else None,
            ),
            ("type", _property_type(schema.get("type"))),
            ("items", _omit_nil(schema.get("items"))),
            ("description", go_string(description) if description else None),
            ("enum", _omit_empty_list(schema.get("enum"))),
            (
                "properties",
                "{" + ",".join(f"{go_string(k)}:{_property(v)}" for k, v in nested.items()) + "}"
                if isinstance(nested, dict)
                else None,
            ),
            ("required", _omit_empty_list(schema.get("required"))),
        ]
    )


def go_tool_json(tool: dict[str, Any]) -> str:
    """`{{ json . }}` of one of a template's `.Tools`: `templateTool` (template/template.go),
    its top-level property names sorted (a plain map), nested ones in the client's order."""
    function = tool.get("function") or {}
    parameters = function.get("parameters") or {}
    properties = parameters.get("properties")
    return _fields(
        [
            ("type", go_string(str(tool.get("type", "")))),
            ("items", _omit_nil(tool.get("items"))),
            (
                "function",
                _fields(
                    [
                        ("name", go_string(str(function.get("name", "")))),
                        ("description", go_string(str(function.get("description") or ""))),
                        (
                            "parameters",
                            _fields(
                                [
                                    ("type", go_string(str(parameters.get("type") or ""))),
                                    ("$defs", _omit_nil(parameters.get("$defs"))),
                                    ("items", _omit_nil(parameters.get("items"))),
                                    ("required", _omit_empty_list(parameters.get("required"))),
                                    (
                                        "properties",
                                        "{"
                                        + ",".join(
                                            f"{go_string(k)}:{_property(v)}"
                                            for k, v in sorted(properties.items())
                                        )
                                        + "}"
                                        if isinstance(properties, dict)
                                        else "null",
                                    ),
                                ]
                            ),
                        ),
                    ]
                ),
            ),
        ]
    )


def go_template_arguments(arguments: dict[str, Any]) -> str:
    """A tool call's arguments as our TEMPLATEs print them: `{`, then for each key in the sorted
    order a Go map ranges in, `json $k`, `": "`, `json $v`, joined by `", "`, then `}`."""
    return (
        "{" + ", ".join(f"{go_string(k)}: {go_json(v)}" for k, v in sorted(arguments.items())) + "}"
    )
