"""Modelfile values that survive Ollama's parser exactly, or are refused before anything is written;
and Ollama's reading of a whole Modelfile, to prove a rendered one says what the catalog means.

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
        raise Unrepresentable(
            f"contains U+{ord(bad):04X} ({unicodedata.name(bad, 'unnamed')}),"
            " which Ollama's Modelfile parser drops"
        )
    bare_ok = (
        text == text.strip() and "\n" not in text and "\r" not in text and not text.startswith('"')
    )
    if bare_ok:
        return text
    quoted = TRIPLE + text + TRIPLE
    for index, ch in enumerate(quoted):
        if ch in "\r\n" and index < len(quoted) - 1 and _complete(quoted[:index]):
            raise Unrepresentable(
                'a line ends with """ inside the text, which would close the Modelfile value early'
            )
    return quoted


def parameter_text(value: object) -> str:
    """A PARAMETER value as the text Ollama's `api.FormatParams` will parse back."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Unrepresentable(f"{value!r} is not a finite number")
        return repr(value)
    if isinstance(value, str):
        return value
    raise Unrepresentable(f"unsupported parameter value {value!r}")


def parameter_value(value: object) -> str:
    """A PARAMETER value as spelled in a Modelfile."""
    return quote_value(parameter_text(value))


def parameter_texts(parameters: dict[str, object]) -> list[tuple[str, str]]:
    """(name, text) pairs in order; list values (stop) become one pair per item."""
    pairs: list[tuple[str, str]] = []
    for name, value in parameters.items():
        items = value if isinstance(value, list) else [value]
        pairs.extend((name, parameter_text(item)) for item in items)
    return pairs


def parameter_lines(parameters: dict[str, object]) -> list[tuple[str, str]]:
    """(name, Modelfile spelling) pairs, as parameter_texts."""
    return [(name, quote_value(text)) for name, text in parameter_texts(parameters)]


# Reading a Modelfile as Ollama's parser.ParseFile does (parser/parser.go at v0.24.0), so that a
# rendered Modelfile is proven to say what the catalog means before it is written.
COMMANDS = (
    "from",
    "license",
    "template",
    "system",
    "adapter",
    "draft",
    "renderer",
    "parser",
    "parameter",
    "message",
    "requires",
)
_NIL, _NAME, _VALUE, _PARAMETER, _MESSAGE, _COMMENT = range(6)


class ModelfileSyntaxError(ValueError):
    """Ollama would refuse this Modelfile; `line` counts CR and LF alike, as Ollama does."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


def _printable(ch: str) -> bool:
    """Go's strconv.IsPrint: letters, marks, numbers, punctuation, symbols and ASCII space."""
    return ch == " " or unicodedata.category(ch).startswith(_PRINTABLE_CATEGORIES)


def _next_state(ch: str, state: int) -> tuple[int, str]:
    """(next state, character kept) for one character; mirrors parseRuneForState."""
    newline, space = ch in "\r\n", ch in " \t"
    if state == _NIL:
        if ch == "#":
            return _COMMENT, ""
        return (_NIL, "") if newline or space else (_NAME, ch)
    if state == _COMMENT:
        return (_NIL, "") if newline else (_COMMENT, "")
    if state == _VALUE:
        return (_NIL, ch) if newline or space else (_VALUE, ch)
    if ch.isascii() and (ch.isalpha() or state == _PARAMETER and (ch.isdigit() or ch == "_")):
        return state, ch
    if space:
        return _VALUE, ""
    if state == _NAME:
        raise ModelfileSyntaxError(f"command must be one of {', '.join(COMMANDS)}", None)
    raise ModelfileSyntaxError("unexpected EOF", None)  # Ollama gives no line for these


def _unquote(text: str) -> str | None:
    """The value inside its quotes; None while a quoted value is still open."""
    if text.startswith(TRIPLE):
        return text[3:-3] if len(text) >= 6 and text.endswith(TRIPLE) else None
    if text.startswith('"'):
        return text[1:-1] if len(text) >= 2 and text.endswith('"') else None
    return text


def parse_modelfile(text: str) -> list[tuple[str, str]]:
    """The (command, value) pairs Ollama reads from `text`; FROM reads as `model`, a PARAMETER as
    its own name, a MESSAGE as `message` with `role: text`. ModelfileSyntaxError if refused."""
    commands: list[tuple[str, str]] = []
    state, line, buffer, name, role = _NIL, 1, "", "", ""
    for ch in text.removeprefix("\ufeff"):
        line += ch in "\r\n"
        try:
            following, kept = _next_state(ch, state)
        except ModelfileSyntaxError as exc:
            raise ModelfileSyntaxError(str(exc), line if state == _NAME else None) from None
        if following != state:
            if state == _VALUE:
                value = _unquote(buffer.strip(" \t\r\n"))
                if value is None or ch in " \t":
                    buffer += kept
                    continue
                commands.append((name, f"{role}: {value}" if role else value))
                role = ""
            elif state == _NAME:
                name, following = _command(buffer, line, following)
            elif state == _PARAMETER:
                name = buffer
            elif state == _MESSAGE:
                if buffer not in ("system", "user", "assistant"):
                    raise ModelfileSyntaxError(
                        "message role must be one of system, user, assistant", line
                    )
                role = buffer
            buffer, state = "", following
        if kept and _printable(kept):
            buffer += kept
    return _finish(commands, state, buffer, name, role)


def _command(word: str, line: int, following: int) -> tuple[str, int]:
    """The command a word names, and the state its argument is read in."""
    lowered = word.lower()
    if lowered not in COMMANDS:
        raise ModelfileSyntaxError(f"command must be one of {', '.join(COMMANDS)}", line)
    if lowered == "from":
        return "model", following
    if lowered == "parameter":
        return "", _PARAMETER
    if lowered == "message":
        return "message", _MESSAGE
    return lowered, following


def _finish(
    commands: list[tuple[str, str]], state: int, buffer: str, name: str, role: str
) -> list[tuple[str, str]]:
    """The last value (a file need not end with a line break), then Ollama's one requirement."""
    if state == _VALUE:
        value = _unquote(buffer.strip(" \t\r\n"))
        if value is None:
            raise ModelfileSyntaxError("unexpected EOF: a quoted value is never closed", None)
        commands.append((name, f"{role}: {value}" if role else value))
    elif state not in (_NIL, _COMMENT):
        raise ModelfileSyntaxError("unexpected EOF", None)
    if not any(command == "model" for command, _ in commands):
        raise ModelfileSyntaxError("no FROM line", None)
    return commands
