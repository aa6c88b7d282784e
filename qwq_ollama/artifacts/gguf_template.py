"""A copy of a GGUF with another chat template embedded (or none): metadata only.

Current Ollama (0.30+), llama.cpp and LM Studio read a GGUF's `tokenizer.chat_template`. The copy
is written by the `gguf` library's own metadata copier, to a temporary file beside the target,
and published only once every tensor is proven byte-identical to the source's.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import gguf
from gguf.scripts import gguf_new_metadata
from gguf.scripts.gguf_new_metadata import MetadataDetails, copy_with_new_metadata

from qwq_ollama.artifacts.gguf import inspect_gguf
from qwq_ollama.atomic import staged_file
from qwq_ollama.errors import InputError

CHAT_TEMPLATE_KEY = gguf.Keys.Tokenizer.CHAT_TEMPLATE


def write_with_chat_template(
    source: Path,
    target: Path,
    template: str | None,
    report: Callable[[str], None] | None = None,
) -> Path:
    """`source` with `template` as its chat template (None: without one), at `target`.
    With `report`, each phase is told to it and the copier's byte bar shows on stderr."""
    if source.resolve() == target.resolve():
        raise InputError("the copy must not overwrite its source", file=target)
    inspect_gguf(source)  # one line naming the file if it is missing, not a GGUF, or cut short
    reader = gguf.GGUFReader(source)
    arch = reader.get_field(gguf.Keys.General.ARCHITECTURE)
    if arch is None:
        raise InputError("no general.architecture: not a model GGUF", file=source)
    new = (
        {CHAT_TEMPLATE_KEY: MetadataDetails(gguf.GGUFValueType.STRING, template)}
        if template is not None
        else {}
    )
    removed = [] if template is not None else [CHAT_TEMPLATE_KEY]
    size = source.stat().st_size / 1e9
    with staged_file(target) as staged:
        writer = gguf.GGUFWriter(staged, arch=str(arch.contents()), endianess=reader.endianess)
        if report is not None:
            report(f"copying {len(reader.tensors)} tensors ({size:.1f} GB) to {target}")
            copy_with_new_metadata(reader, writer, new, removed)
            report("checking every tensor of the copy against the source")
        else:
            with _no_progress_bar():
                copy_with_new_metadata(reader, writer, new, removed)
        _check_tensors_identical(reader, staged)
    return target


@contextmanager
def _no_progress_bar() -> Iterator[None]:
    """The copier draws a tqdm bar on stderr; a library prints nothing. (TQDM_DISABLE does not
    help here: tqdm reads its environment once, at import.)"""
    bar = gguf_new_metadata.tqdm
    gguf_new_metadata.tqdm = functools.partial(bar, disable=True)
    try:
        yield
    finally:
        gguf_new_metadata.tqdm = bar


def _check_tensors_identical(original: gguf.GGUFReader, copy: Path) -> None:
    """Every tensor of the copy has the source's name, type, shape and bytes."""
    written = {t.name: t for t in gguf.GGUFReader(copy).tensors}
    for tensor in original.tensors:
        other = written.get(tensor.name)
        if (
            other is None
            or other.tensor_type != tensor.tensor_type
            or list(other.shape) != list(tensor.shape)
            or bytes(other.data.data) != bytes(tensor.data.data)
        ):
            raise InputError(f"tensor {tensor.name} changed while copying: not written", file=copy)
    if len(written) != len(original.tensors):
        raise InputError("the copy has a different number of tensors: not written", file=copy)
