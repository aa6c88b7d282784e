"""GGUF synthesis: the one way this project writes a model file it made up.

Two kinds of made-up model exist: the tiny stand-ins of each template family (stand_in.py:
random weights, a few megabytes, for live tests) and the QwQ-32B-shaped file of the GPU
measurements (gpu/make_qwq_shaped_gguf.py: every real tensor shape, zero weights, sparse). Both
borrow a real tokenizer (SmolLM2's), widen it with a family's added tokens and write it into
the new file, so both do that here. Only numpy and gguf are imported: the GPU script runs
this on a machine with little more.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from gguf import GGUFReader, GGUFValueType, GGUFWriter, TokenType

# Qwen2.5's and Qwen3's added tokens, in id order (the tokenizer_config.json of Qwen/QwQ-32B and
# Qwen/Qwen3-8B list the same ones); some are in SmolLM2's vocabulary already.
QWEN_ADDED = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
    "<tool_response>",
    "</tool_response>",
    "<think>",
    "</think>",
)

TOKENIZER_PREFIX = "tokenizer.ggml."


def added_token_type(text: str) -> TokenType:
    """The type llama.cpp's convert_hf_to_gguf.py gives an added token with `special: false`.

    It promotes ones that look special (`does_token_look_special`); Qwen3 and DeepSeek-R1 mark
    exactly those special, so the rule reproduces their GGUFs from the text alone.

    >>> added_token_type("<|im_end|>").name, added_token_type("<think>").name
    ('CONTROL', 'USER_DEFINED')
    """
    looks_special = (text.startswith("<|") and text.endswith("|>")) or (
        text.startswith("<｜") and text.endswith("｜>")
    )
    return TokenType.CONTROL if looks_special else TokenType.USER_DEFINED


@dataclass(frozen=True)
class TokenizerKey:
    """One tokenizer.ggml.* key as a GGUF holds it: the value and its GGUF types."""

    value: object  # str, int, float, bool, or a list of str or numbers
    kind: GGUFValueType
    item_kind: GGUFValueType | None = None  # an array's element type


def tokenizer_keys(source: Path) -> dict[str, TokenizerKey]:
    """Every tokenizer.ggml.* key of `source`, decoded (arrays as lists, strings as str)."""
    keys = {}
    for name, found in GGUFReader(source).fields.items():
        if name.startswith(TOKENIZER_PREFIX):
            kinds = list(found.types)
            keys[name] = TokenizerKey(
                found.contents(), kinds[0], kinds[1] if kinds[0] == GGUFValueType.ARRAY else None
            )
    return keys


@dataclass(frozen=True)
class Vocabulary:
    """A tokenizer to write: its model and pre-tokenizer, tokens with their types, merges, and
    the source's other keys (special ids, add_bos_token ...), kept as read."""

    model: str
    pre: str
    tokens: tuple[str, ...]
    types: tuple[int, ...]
    merges: tuple[str, ...] = ()
    others: dict[str, object] = field(default_factory=dict)  # key without the prefix -> value

    @property
    def ids(self) -> dict[str, int]:
        return {text: i for i, text in enumerate(self.tokens)}

    def other_int(self, key: str) -> int | None:
        value = self.others.get(key)
        return int(value) if isinstance(value, int) else None


def read_vocabulary(source: Path) -> Vocabulary:
    """The tokenizer of a GGUF file (its tensors are never read)."""
    keys = {
        name.removeprefix(TOKENIZER_PREFIX): key.value
        for name, key in tokenizer_keys(source).items()
    }
    tokens = [str(t) for t in _listed(keys.pop("tokens"))]
    types = [t for t in _listed(keys.pop("token_type", None)) if isinstance(t, int)]
    return Vocabulary(
        model=str(keys.pop("model")),
        pre=str(keys.pop("pre", "default")),
        tokens=tuple(tokens),
        types=tuple(types or [int(TokenType.NORMAL)] * len(tokens)),
        merges=tuple(str(m) for m in _listed(keys.pop("merges", None))),
        others=keys,
    )


def _listed(value: object) -> list[object]:
    return list(value) if isinstance(value, (list, tuple)) else []


def widened(
    vocab: Vocabulary,
    added: Sequence[str],
    *,
    type_of: Callable[[str], TokenType] = added_token_type,
) -> Vocabulary:
    """`vocab` with `added` appended in order; a token it already has keeps its id and takes the
    added type."""
    tokens, types = list(vocab.tokens), list(vocab.types)
    ids = vocab.ids
    for text in added:
        if text in ids:
            types[ids[text]] = int(type_of(text))
        else:
            ids[text] = len(tokens)
            tokens.append(text)
            types.append(int(type_of(text)))
    return replace(vocab, tokens=tuple(tokens), types=tuple(types))


def padded(vocab: Vocabulary, size: int) -> Vocabulary:
    """`vocab` filled with UNUSED `[PADn]` tokens up to `size` rows (a real model's vocabulary
    is wider than its tokenizer's list)."""
    if len(vocab.tokens) > size:
        raise ValueError(f"{len(vocab.tokens)} tokens do not fit a vocabulary of {size}")
    fill = range(len(vocab.tokens), size)
    return replace(
        vocab,
        tokens=vocab.tokens + tuple(f"[PAD{i}]" for i in fill),
        types=vocab.types + (int(TokenType.UNUSED),) * len(fill),
    )


def write_vocabulary(
    writer: GGUFWriter, vocab: Vocabulary, *, ids: dict[str, int | None], add_bos: bool
) -> None:
    """The tokenizer keys; `ids` maps bos/eos/padding/unknown to a token id (None: leave out)."""
    writer.add_tokenizer_model(vocab.model)
    writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(list(vocab.tokens))
    writer.add_token_types(list(vocab.types))
    if vocab.merges:
        writer.add_token_merges(list(vocab.merges))
    writer.add_add_bos_token(add_bos)
    for name, token_id in ids.items():
        if token_id is not None:
            writer.add_uint32(f"{TOKENIZER_PREFIX}{name}_token_id", token_id)


def copy_tokenizer(source: Path, out: Path, arch: str) -> None:
    """A tensor-less GGUF holding only `source`'s tokenizer.ggml.* keys (small enough to carry)."""
    writer = GGUFWriter(out, arch)
    for name, key in tokenizer_keys(source).items():
        writer.add_key_value(name, key.value, key.kind, sub_type=key.item_kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
