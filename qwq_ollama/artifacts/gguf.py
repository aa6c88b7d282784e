"""Read what a GGUF really contains (architecture, quantisation, context, special tokens, template)
and flag the guide's pitfalls, from the header alone: the tensor data is never read."""

from __future__ import annotations

import difflib
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gguf
import numpy as np
from gguf import GGUFReader, ReaderField

from qwq_ollama.catalog.gguf_sampling import SAMPLING_PREFIX
from qwq_ollama.errors import InputError
from qwq_ollama.facts import THINK_CLOSE, THINK_OPEN, THINK_PREFILL as PREFILL
from qwq_ollama.weights_file import GGUF_MAGIC, leading_magic

VISION_PAD = "<|vision_pad|>"
QWEN2_NATIVE_CONTEXT = 32768
MAX_DIFF_LINES = 40
SPECIAL_KEYS = {
    "bos": "tokenizer.ggml.bos_token_id",
    "eos": "tokenizer.ggml.eos_token_id",
    "pad": "tokenizer.ggml.padding_token_id",
    "unk": "tokenizer.ggml.unknown_token_id",
}
# A one-turn conversation: rendered with and without the generation prompt, the difference is it.
_PROBE = [{"role": "user", "content": "Hi"}]


@dataclass
class SpecialToken:
    id: int
    text: str | None  # None when the id is outside the vocabulary


@dataclass
class GGUFReport:
    path: str
    file_size: int
    gguf_version: int
    architecture: str | None
    name: str | None
    size_label: str | None
    quantization: str | None  # general.file_type as llama.cpp names it: Q4_K_M, Q4_1, BF16 ...
    tensor_types: dict[str, int]  # tensor count per ggml type
    tensor_count: int
    parameter_count: int
    context_length: int | None
    rope_scaling_type: str | None
    rope_scaling_factor: float | None
    rope_original_context_length: int | None
    rms_norm_eps: float | None
    special_tokens: dict[str, SpecialToken]  # bos/eos/pad/unk, those the file sets
    think_tokens: dict[str, int]  # "<think>"/"</think>" -> id, those in the vocabulary
    chat_template: str | None
    generation_prompt: str | None  # what the template appends for add_generation_prompt
    # general.sampling.*: sampler defaults Ollama 0.33.3+ applies beneath a Modelfile's own
    sampling: dict[str, Any] = field(default_factory=dict)
    template_matches: bool | None = None  # None when no expected template was given
    template_diff: str | None = None
    variant: str | None = None  # the catalog variant the template was judged against
    family: str | None = None  # the catalog family whose template renders like the embedded one
    family_match: str | None = None  # that verdict in words, or the nearest family
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def inspect_gguf(
    path: str | os.PathLike[str],
    *,
    expected_template: str | None = None,
    expect_prefill: bool | None = None,
) -> GGUFReport:
    """Inspect `path`; InputError (one line) if it is missing, not a GGUF, or truncated."""
    path = Path(path)
    size = _check_magic(path)
    reader = _open_reader(path, size)
    fields = reader.fields
    arch = _value(fields, "general.architecture")
    tokens = fields.get("tokenizer.ggml.tokens")
    found = _find_tokens(tokens, (THINK_OPEN, THINK_CLOSE, VISION_PAD))
    template = _value(fields, "tokenizer.chat_template")
    report = GGUFReport(
        path=str(path),
        file_size=size,
        gguf_version=int(_value(fields, "GGUF.version") or 0),
        architecture=arch,
        name=_value(fields, "general.name"),
        size_label=_value(fields, "general.size_label"),
        quantization=_file_type_name(_value(fields, "general.file_type")),
        tensor_types=dict(sorted(Counter(t.tensor_type.name for t in reader.tensors).items())),
        tensor_count=len(reader.tensors),
        parameter_count=sum(int(t.n_elements) for t in reader.tensors),
        context_length=_value(fields, f"{arch}.context_length"),
        rope_scaling_type=_value(fields, f"{arch}.rope.scaling.type"),
        rope_scaling_factor=_value(fields, f"{arch}.rope.scaling.factor"),
        rope_original_context_length=_value(fields, f"{arch}.rope.scaling.original_context_length"),
        rms_norm_eps=_value(fields, f"{arch}.attention.layer_norm_rms_epsilon"),
        special_tokens=_special_tokens(fields, tokens),
        think_tokens={k: v for k, v in found.items() if k in (THINK_OPEN, THINK_CLOSE)},
        chat_template=template,
        generation_prompt=_generation_prompt(template) if template is not None else None,
        sampling={key: _value(fields, key) for key in fields if key.startswith(SAMPLING_PREFIX)},
    )
    report.warnings = _warnings(report, found.get(VISION_PAD), expect_prefill)
    if expected_template is not None:
        report.template_matches = template == expected_template
        if not report.template_matches:
            report.template_diff = template_diff(expected_template, template or "")
    return report


def template_diff(expected: str, actual: str, limit: int = MAX_DIFF_LINES) -> str:
    """A unified diff (expected -> embedded), cut to `limit` lines; missing final newlines shown."""
    lines = []
    for line in difflib.unified_diff(
        expected.splitlines(keepends=True),
        actual.splitlines(keepends=True),
        fromfile="expected",
        tofile="embedded in GGUF",
        n=1,
    ):
        if line.endswith("\n"):
            lines.append(line[:-1])
        else:
            lines += [line, "\\ No newline at end of file"]
    if len(lines) > limit:
        lines = lines[:limit] + [f"... ({len(lines) - limit} more diff lines)"]
    return "\n".join(lines) + "\n"


def _check_magic(path: Path) -> int:
    try:
        head = leading_magic(path)
        size = os.stat(path).st_size
    except FileNotFoundError:
        raise InputError("no such file", file=path) from None
    except IsADirectoryError:
        raise InputError("is a directory, not a GGUF file", file=path) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", file=path) from None
    if head != GGUF_MAGIC:
        raise InputError(f"not a GGUF file (magic {head!r}, expected {GGUF_MAGIC!r})", file=path)
    return size


def _open_reader(path: Path, size: int) -> GGUFReader:
    """GGUFReader memory-maps the file and parses the header, KV pairs and tensor index only;
    every count and length in the header is checked against the file's size first, so a header
    claiming 2**40 tensors is one line, not minutes of parsing or a MemoryError."""
    _check_bounds(path, size)
    try:
        reader = GGUFReader(path)
    except IndexError:  # a read ran past the end of the mapping
        raise InputError(
            f"truncated GGUF: the header runs past the end of the file "
            f"({size} bytes); download it again",
            file=path,
        ) from None
    except ValueError as exc:
        if "reshape" in str(exc):  # a tensor's data region is shorter than its shape says
            raise InputError(
                f"truncated GGUF: tensor data is cut short ({size} bytes); download it again",
                file=path,
            ) from None
        raise InputError(f"unsupported or corrupt GGUF: {str(exc)[:100]}", file=path) from None
    except (KeyError, OverflowError, TypeError) as exc:
        raise InputError(
            f"corrupt GGUF header ({type(exc).__name__}: {str(exc)[:80]})", file=path
        ) from None
    end = max((int(t.data_offset) + int(t.n_bytes) for t in reader.tensors), default=0)
    if end > size:
        raise InputError(
            f"truncated GGUF: tensor data ends at byte {end}, the file has {size}; "
            "download it again",
            file=path,
        )
    return reader


def _check_bounds(path: Path, size: int) -> None:
    import mmap

    try:
        with (
            open(path, "rb") as handle,
            mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped,
            memoryview(mapped) as view,
        ):
            end = check_header_bounds(view, size)
    except InputError as exc:  # a claim past the end: cut short, or lying
        raise InputError(
            f"truncated GGUF: the header runs past the end of the file: "
            f"{exc.detail}; download it again",
            file=path,
            field=exc.field,
        ) from None
    except (OSError, ValueError) as exc:
        raise InputError(
            f"cannot read: {getattr(exc, 'strerror', None) or exc}", file=path
        ) from None
    if end is None:
        raise InputError(
            f"truncated GGUF: the header runs past the end of the file ({size} "
            "bytes); download it again",
            file=path,
        )


def _value(fields: dict[str, ReaderField], key: str) -> Any:
    """A scalar KV value as a plain Python value; float32 rounded to its shortest repr (1e-05)."""
    entry = fields.get(key)
    if entry is None or not entry.types or len(entry.types) != 1:
        return None
    raw = entry.parts[entry.data[0]]
    if entry.types[0] == gguf.GGUFValueType.STRING:
        return bytes(raw).decode("utf-8", errors="replace")
    if entry.types[0] == gguf.GGUFValueType.FLOAT32:
        return float(str(np.float32(raw[0])))
    return raw[0].item()


def _file_type_name(value: Any) -> str | None:
    if value is None:
        return None
    try:
        name = gguf.LlamaFileType(value).name
    except ValueError:
        return f"unknown file type {value}"
    return name.removeprefix("MOSTLY_").removeprefix("ALL_")


def _token_text(tokens: ReaderField | None, token_id: int) -> str | None:
    if tokens is None or not 0 <= token_id < len(tokens.data):
        return None
    return bytes(tokens.parts[tokens.data[token_id]]).decode("utf-8", errors="replace")


def _find_tokens(tokens: ReaderField | None, wanted: tuple[str, ...]) -> dict[str, int]:
    """Ids of `wanted` texts; added tokens sit at the end of the vocabulary, so search backwards."""
    if tokens is None:
        return {}
    targets = {text.encode("utf-8"): text for text in wanted}
    found: dict[str, int] = {}
    for token_id in range(len(tokens.data) - 1, -1, -1):
        text = targets.get(tokens.parts[tokens.data[token_id]].tobytes())
        if text is not None and text not in found:
            found[text] = token_id
            if len(found) == len(targets):
                break
    return found


def _special_tokens(
    fields: dict[str, ReaderField], tokens: ReaderField | None
) -> dict[str, SpecialToken]:
    special = {}
    for role, key in SPECIAL_KEYS.items():
        token_id = _value(fields, key)
        if isinstance(token_id, int):
            special[role] = SpecialToken(token_id, _token_text(tokens, token_id))
    return special


def _generation_prompt(template: str) -> str | None:
    """What the template adds for `add_generation_prompt`, or None if it cannot be rendered.
    The embedded template is untrusted: it renders in a bounded child process, and one that
    runs past its time or memory is refused in one line (InputError)."""
    from qwq_ollama.catalog.chat_template import RenderJob, render_untrusted

    with_prompt, without = render_untrusted(
        template,
        [
            RenderJob(_PROBE, add_generation_prompt=True),
            RenderJob(_PROBE, add_generation_prompt=False),
        ],
        what="the GGUF's chat template",
    )
    if with_prompt is None or without is None:
        return None
    return with_prompt[len(without) :] if with_prompt.startswith(without) else None


def _warnings(
    report: GGUFReport, vision_pad_id: int | None, expect_prefill: bool | None
) -> list[str]:
    warnings = []
    pad, eos = report.special_tokens.get("pad"), report.special_tokens.get("eos")
    if pad is not None and eos is not None and pad.id == eos.id:
        where = f" (id {vision_pad_id} here)" if vision_pad_id is not None else ""
        warnings.append(
            f"PAD token id {pad.id} equals EOS ({eos.text!r}): set PAD to "
            f"{VISION_PAD}{where} before fine-tuning (the guide's tokenizer fix)"
        )
    ctx = report.context_length
    if (
        report.architecture == "qwen2"
        and isinstance(ctx, int)
        and ctx > QWEN2_NATIVE_CONTEXT
        and report.rope_scaling_type != "yarn"
    ):
        warnings.append(
            f"context_length {ctx} is above qwen2's native {QWEN2_NATIVE_CONTEXT} "
            "without YaRN rope scaling: keep num_ctx <= 32768, or set "
            "rope.scaling.type=yarn, factor 4, original_context_length 32768"
        )
    if report.chat_template is None:
        warnings.append(
            "no chat template embedded: set TEMPLATE in the Modelfile "
            "(qwq-ollama render), or the runtime falls back to a generic one"
        )
        return warnings
    if report.generation_prompt is None:
        warnings.append(
            "the embedded chat template could not be rendered: check it with "
            "qwq-ollama render, or set TEMPLATE in the Modelfile"
        )
    prefill = prefill_warning(report, expect_prefill)
    return warnings + ([prefill] if prefill else [])


def prefill_warning(report: GGUFReport, expect_prefill: bool | None) -> str | None:
    """Whether the generation prompt has the `<think>` prefill a variant expects (None: the
    variant's family does not prefill, or the template could not be rendered)."""
    gen = report.generation_prompt
    if gen is None or expect_prefill is None:
        return None
    if expect_prefill is False and gen.endswith(PREFILL):
        return (
            "the template's generation prompt ends with '<think>\\n' but this variant "
            "expects the model to open <think> itself: use the no-prefill template"
        )
    if expect_prefill is True and not gen.endswith(PREFILL):
        return (
            "the template's generation prompt lacks the '<think>\\n' prefill: use the "
            "official template (it ends with '<|im_start|>assistant\\n<think>\\n')"
        )
    return None


# The smallest encoding of each piece of a GGUF header, so that a count can be checked against
# the bytes that could hold it before anything is allocated or looped over.
_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9
_MIN_KV = 8 + 4 + 1  # key length, value type, a one-byte value
_MIN_TENSOR = 8 + 4 + 4 + 8  # name length, dimension count, type, offset
_MAX_DIMS = 4  # GGML_MAX_DIMS
_MAX_NESTING = 3


class _NeedMore(Exception):
    """The header goes on past the bytes at hand (a remote header read in parts)."""


def check_header_bounds(data: bytes | memoryview, size: int) -> int | None:
    """Walk a GGUF header (v2/v3) in `data`, the first bytes of a file of `size` bytes, checking
    every count and length against the bytes that could hold it before it is believed.

    Returns where the tensor index ends (the header's length before alignment), or None when
    `data` ends before the header does (read more). A claim no file of `size` bytes can hold is
    an InputError naming the field: 2**40 tensors, a 1 TB string, an array of 2**60 items.
    """
    with memoryview(data) as view:  # released on the way out, so a mapping can close
        return _walk_header(view, size)


def _walk_header(view: memoryview, size: int) -> int | None:
    end = len(view)

    def take(position: int, count: int, field: str) -> int:
        if count > size - position:
            raise InputError(
                f"claims {count} bytes at offset {position}, past the end of the "
                f"file ({size} bytes)",
                field=field,
            )
        if position + count > end:
            raise _NeedMore
        return position + count

    def number(position: int, width: int, field: str) -> tuple[int, int]:
        after = take(position, width, field)
        return int.from_bytes(view[position:after], "little"), after

    def string(position: int, field: str) -> tuple[bytes, int]:
        length, position = number(position, 8, field)
        after = take(position, length, field)
        return bytes(view[position:after]), after

    def value(position: int, kind: int, field: str, depth: int = 0) -> int:
        if kind in _SCALAR_SIZES:
            return take(position, _SCALAR_SIZES[kind], field)
        if kind == _STRING:
            length, position = number(position, 8, field)
            return take(position, length, field)
        if kind != _ARRAY or depth >= _MAX_NESTING:
            raise InputError(f"unknown value type {kind}", field=field)
        item, position = number(position, 4, field)
        count, position = number(position, 8, field)
        if item in _SCALAR_SIZES:  # a numeric array: skipped in one step
            return take(position, count * _SCALAR_SIZES[item], field)
        least = 8 if item == _STRING else 12 if item == _ARRAY else 0
        if not least:
            raise InputError(f"unknown array item type {item}", field=field)
        take(position, 0, field)
        if count * least > size - position:
            raise InputError(
                f"claims {count} items, more than the file's {size} bytes can hold", field=field
            )
        for _ in range(count):
            position = value(position, item, field, depth + 1)
        return position

    try:
        _magic, position = number(0, 4, "magic")
        version, position = number(position, 4, "version")
        if version not in (2, 3):
            raise InputError(f"GGUF version {version} is not 2 or 3", field="version")
        tensors, position = number(position, 8, "tensor_count")
        kvs, position = number(position, 8, "kv_count")
        for field, count, least in (
            ("tensor_count", tensors, _MIN_TENSOR),
            ("kv_count", kvs, _MIN_KV),
        ):
            if count * least > size - position:
                raise InputError(
                    f"{count} is more than a file of {size} bytes can hold", field=field
                )
        for index in range(kvs):
            key, position = string(position, f"kv[{index}].key")
            name = key.decode("utf-8", "replace")[:80] or f"kv[{index}]"
            kind, position = number(position, 4, name)
            position = value(position, kind, name)
        for index in range(tensors):
            _name, position = string(position, f"tensor[{index}].name")
            dims, position = number(position, 4, f"tensor[{index}].n_dims")
            if dims > _MAX_DIMS:
                raise InputError(
                    f"{dims} dimensions (at most {_MAX_DIMS})", field=f"tensor[{index}].n_dims"
                )
            position = take(position, dims * 8 + 4 + 8, f"tensor[{index}]")
        return position
    except _NeedMore:
        return None
