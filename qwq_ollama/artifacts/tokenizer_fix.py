"""The guide's tokenizer fix: PAD must not be `<|endoftext|>` or EOS (fine-tuning then learns
never to stop), so point it at `<|vision_pad|>`. Only the pad value's bytes change."""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qwq_ollama.atomic import write_text_atomic
from qwq_ollama.catalog.load import MAX_JSON_BYTES, check_json_depth, read_user_file
from qwq_ollama.errors import InputError

VISION_PAD = "<|vision_pad|>"
ENDOFTEXT = "<|endoftext|>"
_WHITESPACE = " \t\n\r"
_decoder = json.JSONDecoder()


@dataclass(frozen=True)
class FixResult:
    path: Path  # the file read
    out: Path  # the file written, or that would have been
    status: str  # "fixed", "already fixed", or "pad already distinct" (left alone)
    old_pad: str
    new_pad: str
    pad_id: int  # the id of <|vision_pad|> in added_tokens_decoder
    written: bool


def fix_tokenizer_config(
    path: str | os.PathLike[str], out: str | os.PathLike[str] | None = None
) -> FixResult:
    """Point pad_token at <|vision_pad|> if it is <|endoftext|> or EOS; write `out` (or `path`)."""
    source = Path(path)
    target = Path(out) if out is not None else source
    text = _read(source)
    data = _parse(text, source)
    eos, pad = _content(data, "eos_token", source), _content(data, "pad_token", source)
    pad_id = _vision_pad_id(data, source)
    if pad == VISION_PAD:
        return FixResult(source, target, "already fixed", pad, pad, pad_id, False)
    if pad not in (ENDOFTEXT, eos):
        return FixResult(source, target, "pad already distinct", pad, pad, pad_id, False)
    fixed = _replace_pad(text, data, source)
    write_text_atomic(target, fixed)
    return FixResult(source, target, "fixed", pad, VISION_PAD, pad_id, True)


def _read(path: Path) -> str:
    """Through the one bounded read of a user's file: regular, at most 64 MiB (documented)."""
    data = read_user_file(path, MAX_JSON_BYTES)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 (byte {exc.start}); nothing written", file=path) from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:  # json keeps the last one silently; an edit could then hit the wrong one
            raise ValueError(f"duplicate key {key!r}")
        seen.add(key)
    return dict(pairs)


def _parse(text: str, path: Path) -> dict[str, Any]:
    check_json_depth(text, path)
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"not valid JSON: {exc.msg}; nothing written", file=path, line=exc.lineno
        ) from None
    except ValueError as exc:
        raise InputError(f"{exc}; nothing written", file=path) from None
    if not isinstance(data, dict):
        raise InputError(
            "not a JSON object, so not a tokenizer_config.json; nothing written", file=path
        )
    return data


def _content(data: dict[str, Any], key: str, path: Path) -> str:
    """A token field's text: either a string or an AddedToken object with "content"."""
    if key not in data:
        raise InputError(
            "missing; not a tokenizer_config.json this fix understands", file=path, field=key
        )
    value = data[key]
    if isinstance(value, dict):
        value = value.get("content")
    if not isinstance(value, str):
        raise InputError(
            f'expected a token string or an object with "content", got '
            f"{json.dumps(data[key])[:60]}; nothing written",
            file=path,
            field=key,
        )
    return value


def _vision_pad_id(data: dict[str, Any], path: Path) -> int:
    decoder = data.get("added_tokens_decoder")
    if isinstance(decoder, dict):
        for token_id, token in decoder.items():
            if isinstance(token, dict) and token.get("content") == VISION_PAD:
                try:
                    return int(token_id)
                except ValueError:
                    break
    raise InputError(
        f"{VISION_PAD} is not an added token, so this is not a Qwen2.5/QwQ "
        "tokenizer: set pad_token by hand; nothing written",
        file=path,
        field="added_tokens_decoder",
    )


def _member_spans(text: str, start: int) -> dict[str, tuple[int, int]]:
    """For the JSON object at `start`: each key -> (start, end) of its value in `text`."""
    spans: dict[str, tuple[int, int]] = {}
    pos = _skip(text, start + 1)
    while text[pos] != "}":
        key, pos = _decoder.raw_decode(text, pos)
        pos = _skip(text, pos) + 1  # past ':'
        value_start = _skip(text, pos)
        _, value_end = _decoder.raw_decode(text, value_start)
        spans[key] = (value_start, value_end)
        pos = _skip(text, value_end)
        if text[pos] == ",":
            pos = _skip(text, pos + 1)
    return spans


def _skip(text: str, pos: int) -> int:
    while text[pos] in _WHITESPACE:
        pos += 1
    return pos


def _replace_pad(text: str, data: dict[str, Any], path: Path) -> str:
    """Swap only the pad value's text, then prove by re-parsing that nothing else moved."""
    start, end = _member_spans(text, _skip(text, 0))["pad_token"]
    if isinstance(data["pad_token"], dict):
        start, end = _member_spans(text, start)["content"]
    fixed = text[:start] + json.dumps(VISION_PAD) + text[end:]
    expected = copy.deepcopy(data)
    if isinstance(expected["pad_token"], dict):
        expected["pad_token"]["content"] = VISION_PAD
    else:
        expected["pad_token"] = VISION_PAD
    if json.loads(fixed) != expected:
        raise InputError(
            "could not edit pad_token without changing other fields; nothing "
            "written: set it by hand",
            file=path,
            field="pad_token",
        )
    return fixed
