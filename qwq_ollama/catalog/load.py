"""Safe YAML loading that remembers where each key stood, so errors can name file:line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from qwq_ollama.errors import InputError

KeyPath = tuple[str | int, ...]


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


def load_yaml_with_lines(file: Path, text: str | None = None) -> LocatedYaml:
    """Parse with yaml.SafeLoader (no tags that build objects); duplicate keys are errors."""
    if text is None:
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InputError("file not found", file=file) from None
        except UnicodeDecodeError as exc:
            raise InputError(f"not UTF-8 text ({exc.reason})", file=file) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"YAML syntax error: {problem}", file=file,
                         line=None if mark is None else mark.line + 1) from None
    lines: dict[KeyPath, int] = {}
    if root is not None:
        _walk(root, (), lines, file)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:  # constructor errors, e.g. an unknown tag
        mark = getattr(exc, "problem_mark", None)
        raise InputError(f"YAML error: {getattr(exc, 'problem', exc)}", file=file,
                         line=None if mark is None else mark.line + 1) from None
    return LocatedYaml(data, lines, file)


def _walk(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], file: Path) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[object, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                field = ".".join(str(p) for p in (*path, key))
                raise InputError(f"duplicate key (first at line {seen[key]})", file=file,
                                 line=line, field=field)
            seen[key] = line
            lines[(*path, key)] = line
            _walk(value_node, (*path, key), lines, file)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            _walk(item, (*path, index), lines, file)
