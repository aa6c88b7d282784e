"""Tiny GGUFs of a chosen architecture (qwen3, qwen2) with a real tokenizer, for live tests.

Ollama decides things from the GGUF, not from the Modelfile: `general.architecture` becomes the
model's family, and the family picks behaviour. On every pinned version the chat handler strips
`<think>...</think>` from earlier assistant turns only for family `qwen3` (or a model named
`deepseek-r1`), and the architecture picks the runner: v0.24 serves qwen3 with its own Go engine
(`runner --ollama-engine`), v0.32 and later serve every GGML model with llama-server. SmolLM2,
the project's small model, is `llama`, so it exercises none of that. These files do, in a few
megabytes: two layers, a 64-wide embedding and seeded random weights, which every pinned daemon
loads and samples from (the output is noise, which is all a test of plumbing needs).

The vocabulary is SmolLM2's (tokens, merges, pre-tokenizer), so prompts tokenize as real text,
plus the caller's added tokens (gguf_synth.py, which the GPU's QwQ-shaped file shares). Those are
typed as llama.cpp's converter types a real Qwen3 or DeepSeek-R1 GGUF: CONTROL when the token
looks special (`<|...|>`, `<｜...｜>`), USER_DEFINED otherwise. Qwen3 ships `<think>`, `</think>`, `<tool_call>` ... with `special: false`, so they are
USER_DEFINED there. The difference matters: llama.cpp leaves CONTROL tokens out of the text it
returns unless told to keep them, and a `<think>` the daemon never sees cannot open a thinking
block.

    write_tiny_gguf(out, arch="qwen3", tokenizer_from=ensure_smollm2(), added_tokens=QWEN3_ADDED)
    stand_in_for(family)   # the same for a template family, written once into the cache
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np
from gguf import MODEL_ARCH, MODEL_TENSOR, GGUFWriter

from qwq_ollama.artifacts.gguf_synth import (
    QWEN_ADDED,
    Vocabulary,
    added_token_type,
    read_vocabulary,
    widened,
    write_vocabulary,
)
from qwq_ollama.atomic import staged_file
from qwq_ollama.catalog.builtin_weights import ensure_smollm2
from qwq_ollama.catalog.family import Family
from qwq_ollama.paths import cache_dir

__all__ = [
    "DEEPSEEK_R1_ADDED",
    "QWEN3_ADDED",
    "TinyShape",
    "added_token_type",
    "stand_in_for",
    "write_tiny_gguf",
]

# Qwen3's added tokens in id order; three of them are in SmolLM2's vocabulary already and keep
# their ids there.
QWEN3_ADDED = QWEN_ADDED
# DeepSeek-R1's chat tokens (its Qwen-based distills carry Qwen's as well); the Ollama rule for
# these models goes by the model's name, so any architecture will do for them.
DEEPSEEK_R1_ADDED = (
    "<｜begin▁of▁sentence｜>",
    "<｜end▁of▁sentence｜>",
    "<｜User｜>",
    "<｜Assistant｜>",
    "<think>",
    "</think>",
)

# The per-block tensors of a dense decoder, in converter order; each is written when gguf-py
# lists it for the architecture (so qwen3 gets attn_q_norm/attn_k_norm and qwen2 does not). An
# architecture listing anything beyond these and _OPTIONAL (experts, vision) is refused rather
# than written wrong. OUTPUT is left out: tied to the embedding, as in Qwen3-0.6B, which every
# pinned engine accepts, and it halves the file.
_DENSE = (
    MODEL_TENSOR.ATTN_NORM,
    MODEL_TENSOR.ATTN_Q,
    MODEL_TENSOR.ATTN_Q_NORM,
    MODEL_TENSOR.ATTN_K,
    MODEL_TENSOR.ATTN_K_NORM,
    MODEL_TENSOR.ATTN_V,
    MODEL_TENSOR.ATTN_OUT,
    MODEL_TENSOR.FFN_NORM,
    MODEL_TENSOR.FFN_GATE,
    MODEL_TENSOR.FFN_UP,
    MODEL_TENSOR.FFN_DOWN,
)
_OPTIONAL = frozenset({MODEL_TENSOR.OUTPUT, MODEL_TENSOR.ROPE_FREQS})
# gguf-py lists tensors, not their biases: Qwen2 has q/k/v biases, which llama.cpp requires.
_BIASED = {
    MODEL_ARCH.QWEN2: frozenset({MODEL_TENSOR.ATTN_Q, MODEL_TENSOR.ATTN_K, MODEL_TENSOR.ATTN_V})
}


@dataclass(frozen=True)
class TinyShape:
    """Small enough that the vocabulary dominates the file, big enough for every kernel.

    head_dim is embd / heads, as Qwen2 requires (Qwen3 may differ; it is written explicitly).
    """

    layers: int = 2
    embd: int = 64
    ffn: int = 128
    heads: int = 4
    kv_heads: int = 2
    context: int = 4096
    rope_base: float = 1e6
    rms_eps: float = 1e-6

    @property
    def head_dim(self) -> int:
        return self.embd // self.heads


def write_tiny_gguf(
    out: Path,
    *,
    arch: str,
    tokenizer_from: Path,
    added_tokens: Sequence[str] = (),
    chat_template: str | None = None,
    bos: str | None = None,
    eos: str | None = None,
    seed: int = 0,
    shape: TinyShape = TinyShape(),
) -> Path:
    """Write a tiny `arch` model with `tokenizer_from`'s tokenizer and `added_tokens` appended.

    A token the source already has keeps its id and takes the added type. `bos`/`eos` name the
    tokens for those ids; by default the source's stay (SmolLM2's are <|im_start|>/<|im_end|>,
    which suits ChatML). The same seed writes the same bytes.
    """
    model_arch = _model_arch(arch)
    vocab = widened(read_vocabulary(tokenizer_from), added_tokens)
    writer = GGUFWriter(out, arch)
    _add_hyperparameters(writer, shape)
    _add_tokenizer(writer, vocab, bos=bos, eos=eos)
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    rng = np.random.default_rng(seed)
    for name, array in _tensors(model_arch, shape, len(vocab.tokens), rng):
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def _model_arch(arch: str) -> MODEL_ARCH:
    by_name = {name: key for key, name in gguf.MODEL_ARCH_NAMES.items()}
    if arch not in by_name:
        raise ValueError(f"gguf-py knows no architecture {arch!r}")
    model_arch = by_name[arch]
    writable = {*_DENSE, *_OPTIONAL, MODEL_TENSOR.TOKEN_EMBD, MODEL_TENSOR.OUTPUT_NORM}
    unknown = set(gguf.MODEL_TENSORS[model_arch]) - writable
    if unknown:
        raise ValueError(
            f"{arch} has tensors a tiny dense writer cannot shape: "
            f"{', '.join(sorted(t.name for t in unknown))}"
        )
    return model_arch


def _add_hyperparameters(writer: GGUFWriter, shape: TinyShape) -> None:
    writer.add_type("model")
    writer.add_name(f"tiny {writer.arch} (random weights, for tests)")
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)  # as llama.cpp's converter does
    writer.add_context_length(shape.context)
    writer.add_embedding_length(shape.embd)
    writer.add_block_count(shape.layers)
    writer.add_feed_forward_length(shape.ffn)
    writer.add_head_count(shape.heads)
    writer.add_head_count_kv(shape.kv_heads)
    writer.add_key_length(shape.head_dim)
    writer.add_value_length(shape.head_dim)
    writer.add_rope_freq_base(shape.rope_base)
    writer.add_layer_norm_rms_eps(shape.rms_eps)


def _add_tokenizer(
    writer: GGUFWriter, vocab: Vocabulary, *, bos: str | None, eos: str | None
) -> None:
    """The vocabulary, with the source's special ids unless `bos`/`eos` name other tokens.
    Absent, Ollama's own engine adds a BOS (model/models/qwen3 defaults it to true); Qwen3's
    GGUFs, like SmolLM2's, say no."""
    ids = vocab.ids
    write_vocabulary(
        writer,
        vocab,
        add_bos=bool(vocab.others.get("add_bos_token", False)),
        ids={
            "bos": ids[bos] if bos is not None else vocab.other_int("bos_token_id"),
            "eos": ids[eos] if eos is not None else vocab.other_int("eos_token_id"),
            "padding": vocab.other_int("padding_token_id"),
            "unknown": vocab.other_int("unknown_token_id"),
        },
    )


def _tensors(
    arch: MODEL_ARCH, shape: TinyShape, vocab: int, rng: np.random.Generator
) -> list[tuple[str, np.ndarray]]:
    """(name, array) in numpy order (rows = outputs): matrices F16, norms and biases F32.

    Norms are 1, so activations keep the scale the 0.02-wide random matrices give them.
    """
    q_dim, kv_dim = shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim
    dims = {
        MODEL_TENSOR.ATTN_NORM: (shape.embd,),
        MODEL_TENSOR.ATTN_Q: (q_dim, shape.embd),
        MODEL_TENSOR.ATTN_Q_NORM: (shape.head_dim,),
        MODEL_TENSOR.ATTN_K: (kv_dim, shape.embd),
        MODEL_TENSOR.ATTN_K_NORM: (shape.head_dim,),
        MODEL_TENSOR.ATTN_V: (kv_dim, shape.embd),
        MODEL_TENSOR.ATTN_OUT: (shape.embd, q_dim),
        MODEL_TENSOR.FFN_NORM: (shape.embd,),
        MODEL_TENSOR.FFN_GATE: (shape.ffn, shape.embd),
        MODEL_TENSOR.FFN_UP: (shape.ffn, shape.embd),
        MODEL_TENSOR.FFN_DOWN: (shape.embd, shape.ffn),
    }

    def matrix(*size: int) -> np.ndarray:
        return (rng.standard_normal(size) * 0.02).astype(np.float16)

    def ones(size: int) -> np.ndarray:
        return np.ones(size, dtype=np.float32)

    wanted = gguf.MODEL_TENSORS[arch]
    biased = _BIASED.get(arch, frozenset())
    out = [(gguf.TENSOR_NAMES[MODEL_TENSOR.TOKEN_EMBD] + ".weight", matrix(vocab, shape.embd))]
    for bid in range(shape.layers):
        for kind in (k for k in _DENSE if k in wanted):
            name = gguf.TENSOR_NAMES[kind].format(bid=bid)
            size = dims[kind]
            out.append((name + ".weight", ones(size[0]) if len(size) == 1 else matrix(*size)))
            if kind in biased:
                out.append((name + ".bias", np.zeros(size[0], dtype=np.float32)))
    out.append((gguf.TENSOR_NAMES[MODEL_TENSOR.OUTPUT_NORM] + ".weight", ones(shape.embd)))
    return out


def stand_in_for(family: Family) -> Path:
    """A tiny GGUF of the family's first architecture, with its special tokens, think tags, BOS
    and official chat template (as the published GGUFs embed it, when the file is at hand):
    what the live prompt checks register the family's variants over, so the daemon takes the
    path the real weights would, template selection included. Written once per content into
    the cache (atomically)."""
    source = ensure_smollm2()
    arch = family.architectures[0]
    added = tuple(dict.fromkeys([*family.special_tokens, family.think_open, family.think_close]))
    official = (
        family.official_file.read_text(encoding="utf-8") if family.official_file.is_file() else None
    )
    recipe = repr((arch, added, family.bos_token, official, source.stat().st_size, TinyShape()))
    digest = hashlib.sha256(recipe.encode()).hexdigest()[:16]
    folder = cache_dir() / "stand-ins"
    target = folder / f"{family.name}-{arch}-{digest}.gguf"
    if target.is_file():
        return target
    with staged_file(target) as staged:
        write_tiny_gguf(
            staged,
            arch=arch,
            tokenizer_from=source,
            added_tokens=added,
            bos=family.bos_token,
            chat_template=official,
        )
    return target
