#!/usr/bin/env python3
"""Write a GGUF with QwQ-32B's exact architecture and tensor shapes, but no trained weights.

Memory use, placement and decode speed depend on shapes and quantisation types alone, so this
file stands in for the real 20 GB download wherever that cannot be had (a GPU machine with no
network, a benchmark). Quantised blocks are all zeros (scale 0, so every weight is 0), written as
holes in a sparse file: 17 GB in a second or two, and no disk space until something copies it.
Norm weights are 1.0; the model's output is token 0, every time.

    make_qwq_shaped_gguf.py write OUT.gguf --tokenizer-from SMOLLM2.gguf [--mix q4_k|q4_k_m]
        [--shape qwq|qwen3]      # qwen3: Qwen3-32B's architecture (qwen3, QK-norm, head_dim 128)
    make_qwq_shaped_gguf.py tokenizer SMOLLM2.gguf OUT.gguf    # keep only the tokenizer (2 MB)

The vocabulary: the source tokenizer's tokens, then QwQ's added tokens that it lacks (<think>,
</think>, <|vision_pad|> ...), then `[PADn]` fillers up to QwQ's 152064 rows, so the embedding
and output tensors have the real shapes. The tokenizer handling is the package's GGUF synthesis
(qwq_ollama/artifacts/gguf_synth.py), which the tests' stand-ins use too; it is found beside this
script, so only numpy and gguf (llama.cpp's gguf-py) need installing.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as QT, GGUFWriter, TokenType
from gguf.constants import GGML_QUANT_SIZES

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the package, installed or not
from qwq_ollama.artifacts.gguf_synth import (  # noqa: E402
    QWEN_ADDED,
    Vocabulary,
    copy_tokenizer,
    padded,
    read_vocabulary,
    widened,
    write_vocabulary,
)

ARCH = "qwen2"
OFFICIAL = Path(__file__).resolve().parents[1] / "tests" / "data" / "official"
OFFICIAL_TEMPLATE = OFFICIAL / "qwq-32b.chat_template.jinja"
# llama.cpp's Q4_K_M recipe keeps these in Q6_K (llama-quant.cpp, use_more_bits).
MIXES = ("q4_k", "q4_k_m")


@dataclass(frozen=True)
class Shape:
    """QwQ-32B's hyperparameters (Qwen/QwQ-32B config.json); smaller ones make test files."""

    layers: int = 64
    embd: int = 5120
    ffn: int = 27648
    heads: int = 40
    kv_heads: int = 8
    vocab: int = 152064
    context: int = 131072
    original_context: int = 32768  # 0: no YaRN scaling in the header
    rope_base: float = 1e6
    rms_eps: float = 1e-5
    arch: str = ARCH
    head_dim: int = 0  # 0: embd // heads
    qkv_bias: bool = True  # Qwen2's q/k/v biases; Qwen3 has none but normalises q and k
    name: str = "QwQ-32B"
    template: str = "qwq-32b.chat_template.jinja"

    @property
    def head(self) -> int:
        return self.head_dim or self.embd // self.heads

    @property
    def kv_dim(self) -> int:
        return self.head * self.kv_heads

    @property
    def q_dim(self) -> int:
        return self.head * self.heads


# Qwen/Qwen3-32B config.json: 64 layers, hidden 5120, intermediate 25600, 64 heads of 128 (so q is
# 8192 wide, not 5120), 8 KV heads, vocabulary 151936, 40960 positions, no rope scaling.
QWEN3_32B = Shape(
    ffn=25600,
    heads=64,
    vocab=151936,
    context=40960,
    original_context=0,
    rms_eps=1e-6,
    arch="qwen3",
    head_dim=128,
    qkv_bias=False,
    name="Qwen3-32B",
    template="qwen3.chat_template.jinja",
)
SHAPES = {"qwq": Shape(), "qwen3": QWEN3_32B}


def tensor_plan(shape: Shape, mix: str) -> list[tuple[str, tuple[int, ...], QT]]:
    """(name, numpy-order shape, type) of every tensor, in the order llama.cpp's converter writes."""
    q4, q6 = QT.Q4_K, QT.Q6_K
    plan: list[tuple[str, tuple[int, ...], QT]] = [
        ("token_embd.weight", (shape.vocab, shape.embd), q4)
    ]
    for i in range(shape.layers):
        more = mix == "q4_k_m" and _use_more_bits(i, shape.layers)
        b = f"blk.{i}."
        bias = shape.qkv_bias
        plan += [
            (b + "attn_norm.weight", (shape.embd,), QT.F32),
            (b + "attn_q.weight", (shape.q_dim, shape.embd), q4),
            *([(b + "attn_q.bias", (shape.q_dim,), QT.F32)] if bias else []),
            (b + "attn_k.weight", (shape.kv_dim, shape.embd), q4),
            *([(b + "attn_k.bias", (shape.kv_dim,), QT.F32)] if bias else []),
            (b + "attn_v.weight", (shape.kv_dim, shape.embd), q6 if more else q4),
            *([(b + "attn_v.bias", (shape.kv_dim,), QT.F32)] if bias else []),
            *(
                [
                    (b + "attn_q_norm.weight", (shape.head,), QT.F32),
                    (b + "attn_k_norm.weight", (shape.head,), QT.F32),
                ]
                if not bias
                else []
            ),
            (b + "attn_output.weight", (shape.embd, shape.q_dim), q4),
            (b + "ffn_norm.weight", (shape.embd,), QT.F32),
            (b + "ffn_gate.weight", (shape.ffn, shape.embd), q4),
            (b + "ffn_up.weight", (shape.ffn, shape.embd), q4),
            (b + "ffn_down.weight", (shape.embd, shape.ffn), q6 if more else q4),
        ]
    plan += [
        ("output_norm.weight", (shape.embd,), QT.F32),
        ("output.weight", (shape.vocab, shape.embd), q6 if mix == "q4_k_m" else q4),
    ]
    return plan


def _use_more_bits(layer: int, n_layers: int) -> bool:
    return layer < n_layers // 8 or layer >= 7 * n_layers // 8 or (layer - n_layers // 8) % 3 == 2


def nbytes(shape: tuple[int, ...], qtype: QT) -> int:
    block, size = GGML_QUANT_SIZES[qtype]
    count = int(np.prod(shape))
    if shape[-1] % block:
        raise ValueError(f"row of {shape[-1]} is not a multiple of {qtype.name}'s {block}")
    return count // block * size


def qwen_vocab(source: Path, vocab: int) -> Vocabulary:
    """The source tokenizer widened to `vocab` entries with Qwen's added tokens (all CONTROL)."""
    read = read_vocabulary(source)
    # Ids start at the first ordinary token, as Qwen's do ("!"): with all-zero weights every logit
    # is 0, greedy decoding picks id 0, and that must not be an end-of-generation token.
    first = read.types.index(int(TokenType.NORMAL))
    rotated = Vocabulary(
        read.model,
        read.pre,
        read.tokens[first:] + read.tokens[:first],
        read.types[first:] + read.types[:first],
        read.merges,
    )
    return padded(widened(rotated, QWEN_ADDED, type_of=lambda _text: TokenType.CONTROL), vocab)


def _add_metadata(w: GGUFWriter, shape: Shape, mix: str, tok: Vocabulary, template: str) -> None:
    w.add_type("model")
    w.add_name(f"{shape.name}-shaped (zero weights)")
    w.add_size_label("32B")
    w.add_file_type(15 if mix == "q4_k_m" else 14)  # MOSTLY_Q4_K_M / MOSTLY_Q4_K_S
    w.add_quantization_version(2)
    w.add_context_length(shape.context)
    w.add_embedding_length(shape.embd)
    w.add_block_count(shape.layers)
    w.add_feed_forward_length(shape.ffn)
    w.add_head_count(shape.heads)
    w.add_head_count_kv(shape.kv_heads)
    w.add_rope_freq_base(shape.rope_base)
    w.add_layer_norm_rms_eps(shape.rms_eps)
    if shape.head_dim:
        w.add_key_length(shape.head_dim)
        w.add_value_length(shape.head_dim)
    if shape.original_context:
        w.add_string(f"{shape.arch}.rope.scaling.type", "yarn")
        w.add_float32(f"{shape.arch}.rope.scaling.factor", shape.context / shape.original_context)
        w.add_uint32(f"{shape.arch}.rope.scaling.original_context_length", shape.original_context)
    ids = tok.ids
    write_vocabulary(
        w,
        tok,
        add_bos=False,
        ids={
            "bos": ids["<|endoftext|>"],
            "eos": ids["<|im_end|>"],
            "padding": ids["<|vision_pad|>"],
        },
    )
    w.add_chat_template(template)


def write_qwq_shaped(
    out: Path,
    tokenizer_from: Path,
    *,
    shape: Shape = Shape(),
    mix: str = "q4_k",
    template: str | None = None,
) -> int:
    """Write the file (sparse where the data is zero); returns its size in bytes."""
    if mix not in MIXES:
        raise ValueError(f"mix must be one of {', '.join(MIXES)}, not {mix!r}")
    tok = qwen_vocab(tokenizer_from, shape.vocab)
    template = (OFFICIAL / shape.template).read_text() if template is None else template
    plan = tensor_plan(shape, mix)
    w = GGUFWriter(out, shape.arch)
    _add_metadata(w, shape, mix, tok, template)
    for name, dims, qtype in plan:
        w.add_tensor_info(name, dims, np.dtype(np.float32), nbytes(dims, qtype), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    fout = w.fout[0]  # type: ignore[index]
    align = w.data_alignment
    pos = GGUFWriter.ggml_pad(fout.tell(), align)
    for name, dims, qtype in plan:
        if name.endswith("norm.weight"):
            fout.seek(pos)
            fout.write(np.ones(dims, dtype=np.float32).tobytes())
        pos += GGUFWriter.ggml_pad(nbytes(dims, qtype), align)
    fout.truncate(pos)  # the rest is holes: zeros that take no disk space
    w.close()
    return pos


def extract_tokenizer(source: Path, out: Path) -> None:
    """A tensor-less GGUF holding only `source`'s tokenizer.ggml.* keys (small enough to carry)."""
    copy_tokenizer(source, out, ARCH)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    write = sub.add_parser("write", help="write the QwQ-shaped GGUF")
    write.add_argument("out", type=Path)
    write.add_argument(
        "--tokenizer-from",
        type=Path,
        required=True,
        help="a GGUF whose tokenizer.ggml.* keys are copied (e.g. SmolLM2's)",
    )
    write.add_argument(
        "--mix",
        choices=MIXES,
        default="q4_k",
        help="q4_k: Q4_K everywhere (17.2 GiB); q4_k_m: llama.cpp's Q4_K_M recipe "
        "(18.5 GiB, the size of unsloth's file)",
    )
    write.add_argument("--layers", type=int, default=Shape.layers, help="fewer for a test file")
    write.add_argument(
        "--shape",
        choices=sorted(SHAPES),
        default="qwq",
        help="whose architecture: QwQ-32B (qwen2) or Qwen3-32B (qwen3)",
    )
    tok = sub.add_parser("tokenizer", help="keep only a GGUF's tokenizer")
    tok.add_argument("source", type=Path)
    tok.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    if args.cmd == "tokenizer":
        extract_tokenizer(args.source, args.out)
        return 0
    shape = replace(SHAPES[args.shape], layers=args.layers)
    size = write_qwq_shaped(args.out, args.tokenizer_from, shape=shape, mix=args.mix)
    print(f"{args.out}: {size} bytes ({size / 2**30:.2f} GiB), mix {args.mix}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
