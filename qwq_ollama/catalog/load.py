"""Reading the user's YAML and JSON files safely: bounded, and remembering where each key stood.

Every file is refused, as one InputError, before it can cost much: above a size, nested deeper
than any real input, or (YAML) with aliases that expand past a node budget ("billion laughs": a
few lines can stand for billions of nodes once every alias is followed). The checks run on the
parser's event stream or on the raw text, in linear time, before anything is built.
"""

from __future__ import annotations

import json
import os
import re
from itertools import accumulate
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from qwq_ollama.catalog.parameters import PARAMETER_NAMES
from qwq_ollama.errors import InputError

KeyPath = tuple[str | int, ...]

MAX_YAML_BYTES = 1 << 20  # the catalog is a few kB
MAX_JSON_BYTES = 64 << 20  # conversations and tokenizer configs can be large, not this large
MAX_DEPTH = 32  # the catalog nests 4 deep, a conversation 6
MAX_ALIASES = 1000
MAX_NODES = 100_000  # after following every alias


class LocatedYaml:
    """The loaded data plus a map from key path to 1-based line number."""

    def __init__(self, data: Any, lines: dict[KeyPath, int], file: Path) -> None:
        self.data = data
        self.lines = lines
        self.file = file

    def line_of(self, path: KeyPath) -> int | None:
        """Line of the deepest key on `path` that exists in the file."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None

    def error(self, message: str, path: KeyPath) -> InputError:
        field = ".".join(str(p) for p in path) or None
        return InputError(message, file=self.file, line=self.line_of(path), field=field)


def read_text(file: Path, limit: int) -> str:
    """The file as UTF-8 text, through `read_user_file`."""
    data = read_user_file(file, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc.reason})", file=file) from None


def read_user_file(file: Path, limit: int) -> bytes:
    """The file's bytes: the one read of a file a user names. Anything but a regular
    file (a FIFO, /dev/zero, a directory) is refused before a byte is read, and so is one whose
    size is above `limit`; what is read stops at `limit` in case it grows meanwhile."""
    import stat

    from qwq_ollama.atomic import _kind

    try:
        # O_NONBLOCK: opening a FIFO with no writer must not hang before it can be refused
        descriptor = os.open(file, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise InputError("file not found", file=file) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", file=file) from None
    with os.fdopen(descriptor, "rb") as handle:
        try:
            status = os.fstat(descriptor)
            if not stat.S_ISREG(status.st_mode):
                raise InputError(f"is {_kind(status.st_mode)}, not a regular file", file=file)
            if status.st_size > limit:
                raise InputError(f"larger than {limit >> 10} KiB; refused unread", file=file)
            data = handle.read(limit + 1)
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror}", file=file) from None
    if len(data) > limit:
        raise InputError(f"larger than {limit >> 10} KiB; refused unread", file=file)
    return data


def load_yaml_with_lines(file: Path, text: str | None = None) -> LocatedYaml:
    """Parse with yaml.SafeLoader (no tags that build objects); duplicate keys are errors."""
    if text is None:
        text = read_text(file, MAX_YAML_BYTES)
    try:
        _check_yaml_shape(text, file)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(
            f"YAML syntax error: {problem}", file=file, line=None if mark is None else mark.line + 1
        ) from None
    lines: dict[KeyPath, int] = {}
    if root is not None:
        _walk(root, (), lines, file)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:  # constructor errors, e.g. an unknown tag
        mark = getattr(exc, "problem_mark", None)
        raise InputError(
            f"YAML error: {getattr(exc, 'problem', exc)}",
            file=file,
            line=None if mark is None else mark.line + 1,
        ) from None
    return LocatedYaml(data, lines, file)


def _check_yaml_shape(text: str, file: Path) -> None:
    """Depth, alias count and fully expanded size, counted from parser events (no nodes built).

    The composer and constructor recurse once per level and share aliased nodes, but every
    later walk (line numbers, validation) follows each alias again, so the expanded size is
    what must be bounded.
    """
    expanded: dict[str, int] = {}  # anchor -> nodes it stands for
    open_: list[list[Any]] = [[None, 0]]  # [anchor, nodes so far] per open collection
    aliases = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        line = event.start_mark.line + 1 if event.start_mark else 0
        if isinstance(event, yaml.CollectionStartEvent):
            if len(open_) > MAX_DEPTH:
                raise InputError(f"nested more than {MAX_DEPTH} levels deep", file=file, line=line)
            open_.append([event.anchor, 1])
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            anchor, size = open_.pop()
        elif isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                raise InputError(f"more than {MAX_ALIASES} aliases", file=file, line=line)
            if any(anchor == event.anchor for anchor, _ in open_):
                raise InputError(
                    f"alias *{event.anchor} is inside its own anchor, so it never ends",
                    file=file,
                    line=line,
                )
            anchor, size = None, expanded.get(event.anchor or "", 1)
        elif isinstance(event, yaml.ScalarEvent):
            anchor, size = event.anchor, 1
        else:
            continue
        if anchor is not None:
            expanded[anchor] = size
        open_[-1][1] += size
        if open_[-1][1] > MAX_NODES:
            raise InputError(
                f"its aliases expand to more than {MAX_NODES} values", file=file, line=line
            )


def _walk(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], file: Path) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.ScalarNode):
        _check_encodable(node, path, file)
    elif isinstance(node, yaml.MappingNode):
        seen: dict[object, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            line = key_node.start_mark.line + 1
            if isinstance(key_node, yaml.ScalarNode):
                _check_encodable(key_node, path, file)  # named by the mapping it is a key of
            if key in seen:
                field = ".".join(str(p) for p in (*path, key))
                raise InputError(
                    f"duplicate key (first at line {seen[key]})", file=file, line=line, field=field
                )
            seen[key] = line
            lines[(*path, key)] = line
            _walk(value_node, (*path, key), lines, file)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            _walk(item, (*path, index), lines, file)


def _check_encodable(node: yaml.ScalarNode, path: KeyPath, file: Path) -> None:
    """A `\\ud800` escape makes a lone surrogate: no file or request can carry it as text."""
    try:
        node.value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(
            f"contains U+{ord(node.value[exc.start]):04X}, half of a surrogate "
            "pair, which is not text",
            file=file,
            line=node.start_mark.line + 1,
            field=".".join(str(p) for p in path) or None,
        ) from None


# A string, or an unterminated one up to the end: the match never fails, so no start is
# retried (a closing quote required made a truncated run of escaped quotes quadratic).
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def check_json_depth(text: str, file: Path | str) -> None:
    """Refuse JSON text nested deeper than MAX_DEPTH, in linear time, before it is parsed.

    Python's JSON decoder recurses once per level: past about a thousand it raises
    RecursionError, and anything that walks the result afterwards may too.
    """
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    if max(accumulate(map(_DEPTH_STEP.__getitem__, brackets), initial=0)) > MAX_DEPTH:
        raise InputError(f"nested more than {MAX_DEPTH} levels deep", file=file)


def parse_json(text: str, file: Path | str, **options: Any) -> Any:
    """json.loads of bounded depth, whose strings are all text (no lone surrogates)."""
    check_json_depth(text, file)
    try:
        data = json.loads(text, **options)
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc.msg}", file=file, line=exc.lineno) from None
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(
            "contains a \\u escape for half of a surrogate pair, which is not text", file=file
        ) from None
    return data


def load_json(file: Path) -> Any:
    """A JSON input file, bounded in size and depth; every problem is one InputError."""
    return parse_json(read_text(file, MAX_JSON_BYTES), file)


def located_validation_error(exc: ValidationError, located: LocatedYaml) -> InputError:
    """pydantic's first error (by line) as one InputError at its file:line and field."""
    errors = sorted(exc.errors(), key=lambda e: located.line_of(tuple(e["loc"])) or 0)
    first = errors[0]
    loc: KeyPath = tuple(first["loc"])
    # pydantic adds the model-validator name or a union branch to the location; drop non-keys.
    loc = tuple(p for p in loc if not (isinstance(p, str) and p.startswith("function-")))
    message = _explain(first, loc)
    if len(errors) > 1:
        message += f" (+{len(errors) - 1} more)"
    return located.error(message, loc)


def _explain(error: ErrorDetails, loc: KeyPath) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        if len(loc) >= 2 and loc[-2] == "parameters":
            return f"unknown parameter for Ollama (known: {', '.join(PARAMETER_NAMES)})"
        return "unknown key"
    if kind == "missing":
        return "required"
    got = error.get("input")
    shown = "" if isinstance(got, (dict, list)) else f" (got {got!r})"
    return f"{error['msg'].rstrip('.')}{shown}".replace("Value error, ", "")
