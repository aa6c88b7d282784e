"""Modelfile values that survive Ollama's parser exactly, or are refused before anything is written.

Ollama's Modelfile lexer (parser/parser.go at v0.24.0) has no escapes: a value ends at the first
line break where its trimmed text is complete, `\"\"\"…\"\"\"` strips one pair of triple quotes,
and every rune that is not printable (other than space, tab, CR, LF) is silently dropped. So some
texts cannot be carried at all; those raise `Unrepresentable` instead of being corrupted.
"""

from __future__ import annotations

import math
import unicodedata

TRIPLE = '"""'
_KEPT_CONTROL = {" ", "\t", "\r", "\n"}
_PRINTABLE_CATEGORIES = ("L", "M", "N", "P", "S")


class Unrepresentable(ValueError):
    """The text cannot be written as a Modelfile value without Ollama changing it."""


def _dropped_rune(text: str) -> str | None:
    """The first character Ollama's lexer would drop (Go's strconv.IsPrint is false).

    A character unassigned in this Python's Unicode tables counts as dropped: Go's tables may
    be newer, but refusing is safe where guessing is not.
    """
    for ch in text:
        if ch in _KEPT_CONTROL:
            continue
        if not unicodedata.category(ch).startswith(_PRINTABLE_CATEGORIES):
            return ch
    return None


def _complete(buffer: str) -> bool:
    """Mirror of the lexer's test at each line break: would the value end here?"""
    s = buffer.strip()
    if s.startswith(TRIPLE):
        return len(s) >= 6 and s.endswith(TRIPLE)
    if s.startswith('"'):
        return len(s) >= 2 and s.endswith('"')
    return True


def quote_value(text: str) -> str:
    """The Modelfile spelling of `text`: bare when safe, else triple-quoted; or Unrepresentable.

    >>> quote_value("0.6")
    '0.6'
    >>> quote_value("<|im_end|>")
    '<|im_end|>'
    >>> quote_value('say "hi"\\n')
    '\"\"\"say "hi"\\n\"\"\"'
    """
    if text == "":
        raise Unrepresentable("is empty, and Ollama stores an empty value as no value at all")
    bad = _dropped_rune(text)
    if bad is not None:
        raise Unrepresentable(f"contains U+{ord(bad):04X} ({unicodedata.name(bad, 'unnamed')}),"
                              " which Ollama's Modelfile parser drops")
    bare_ok = (
        text == text.strip()
        and "\n" not in text
        and "\r" not in text
        and not text.startswith('"')
    )
    if bare_ok:
        return text
    quoted = TRIPLE + text + TRIPLE
    for index, ch in enumerate(quoted):
        if ch in "\r\n" and index < len(quoted) - 1 and _complete(quoted[:index]):
            raise Unrepresentable("a line ends with \"\"\" inside the text, which would close "
                                  "the Modelfile value early")
    return quoted


def parameter_value(value: object) -> str:
    """A PARAMETER value as Ollama's `api.FormatParams` will parse it back."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Unrepresentable(f"{value!r} is not a finite number")
        return repr(value)
    if isinstance(value, str):
        return quote_value(value)
    raise Unrepresentable(f"unsupported parameter value {value!r}")


def parameter_lines(parameters: dict[str, object]) -> list[tuple[str, str]]:
    """(name, value) pairs in order; list values (stop) become one line per item."""
    lines: list[tuple[str, str]] = []
    for name, value in parameters.items():
        items = value if isinstance(value, list) else [value]
        lines.extend((name, parameter_value(item)) for item in items)
    return lines
