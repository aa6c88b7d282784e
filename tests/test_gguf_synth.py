"""The one GGUF synthesis (qwq_ollama/artifacts/gguf_synth.py) that the family stand-ins and the
GPU's QwQ-shaped file both write their tokenizers with."""

from __future__ import annotations

from pathlib import Path

import gguf
import pytest

from qwq_ollama.artifacts import stand_in
from qwq_ollama.artifacts.gguf_synth import (
    QWEN_ADDED,
    copy_tokenizer,
    padded,
    read_vocabulary,
    widened,
)

from .conftest import load_generator


@pytest.fixture
def small_tokenizer(tmp_path: Path) -> Path:
    path = tmp_path / "tok.gguf"
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(["<|im_start|>", "<|im_end|>", "a", "b", "ab"])
    writer.add_token_types([3, 3, 1, 1, 1])
    writer.add_token_merges(["a b"])
    writer.add_eos_token_id(1)
    writer.add_add_bos_token(False)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    return path


def test_added_tokens_keep_known_ids_and_take_their_converter_type(small_tokenizer: Path) -> None:
    vocab = widened(read_vocabulary(small_tokenizer), ["<|im_end|>", "<think>", "<|x|>"])
    assert vocab.tokens == ("<|im_start|>", "<|im_end|>", "a", "b", "ab", "<think>", "<|x|>")
    control, user = int(gguf.TokenType.CONTROL), int(gguf.TokenType.USER_DEFINED)
    assert vocab.types == (3, control, 1, 1, 1, user, control)
    assert vocab.merges == ("a b",) and vocab.other_int("eos_token_id") == 1
    assert padded(vocab, 9).tokens[-2:] == ("[PAD7]", "[PAD8]")
    with pytest.raises(ValueError, match="7 tokens do not fit a vocabulary of 6"):
        padded(vocab, 6)


def test_a_copied_tokenizer_reads_back_the_same(small_tokenizer: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.gguf"
    copy_tokenizer(small_tokenizer, copy, "qwen2")
    assert read_vocabulary(copy) == read_vocabulary(small_tokenizer)
    assert not gguf.GGUFReader(copy).tensors


def test_the_stand_ins_and_the_gpu_file_share_one_token_list() -> None:
    assert stand_in.QWEN3_ADDED is QWEN_ADDED
    assert load_generator().QWEN_ADDED is QWEN_ADDED


def test_the_gpu_file_puts_qwens_tokens_after_the_ordinary_ones(small_tokenizer: Path) -> None:
    vocab = load_generator().qwen_vocab(small_tokenizer, 40)
    assert vocab.tokens[:5] == ("a", "b", "ab", "<|im_start|>", "<|im_end|>")
    assert vocab.ids["</think>"] == 5 + len(QWEN_ADDED) - 2 - 1  # two were there already
    assert len(vocab.tokens) == 40
