"""fix_tokenizer_config on hand-written Qwen2.5/QwQ-style tokenizer_config.json files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qwq_ollama.artifacts.tokenizer_fix import fix_tokenizer_config
from qwq_ollama.errors import InputError


def added(token_id: int, content: str) -> str:
    return (
        f'    "{token_id}": {{\n      "content": "{content}",\n      "lstrip": false,\n'
        '      "normalized": false,\n      "rstrip": false,\n      "single_word": false,\n'
        '      "special": true\n    }'
    )


DECODER = ",\n".join(
    [
        added(151643, "<|endoftext|>"),
        added(151644, "<|im_start|>"),
        added(151645, "<|im_end|>"),
        added(151654, "<|vision_pad|>"),
    ]
)
# Laid out as transformers writes it (2-space indent), with a non-ASCII character kept raw.
CONFIG = (
    '{\n  "add_bos_token": false,\n  "add_prefix_space": false,\n'
    f'  "added_tokens_decoder": {{\n{DECODER}\n  }},\n'
    '  "bos_token": null,\n'
    '  "chat_template": "{%- if add_generation_prompt %}{{- \'<|im_start|>assistant\\\\n'
    "<think>\\\\n' }}{%- endif %} — ok\",\n"
    '  "clean_up_tokenization_spaces": false,\n  "eos_token": "<|im_end|>",\n'
    '  "errors": "replace",\n  "model_max_length": 131072,\n'
    '  "pad_token": "<|endoftext|>",\n  "split_special_tokens": false,\n'
    '  "tokenizer_class": "Qwen2Tokenizer",\n  "unk_token": null\n}\n'
)


def write(tmp_path: Path, text: str, name: str = "tokenizer_config.json") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def test_config_fixture_is_valid_json() -> None:
    data = json.loads(CONFIG)
    assert data["added_tokens_decoder"]["151654"]["content"] == "<|vision_pad|>"
    assert data["chat_template"].endswith("<think>\\n' }}{%- endif %} — ok")


def test_endoftext_pad_replaced_in_place_byte_for_byte(tmp_path: Path) -> None:
    path = write(tmp_path, CONFIG)
    result = fix_tokenizer_config(path)
    assert (result.status, result.old_pad, result.new_pad, result.pad_id, result.written) == (
        "fixed",
        "<|endoftext|>",
        "<|vision_pad|>",
        151654,
        True,
    )
    assert result.out == path
    expected = CONFIG.replace('"pad_token": "<|endoftext|>"', '"pad_token": "<|vision_pad|>"')
    assert path.read_bytes() == expected.encode("utf-8")
    assert [p.name for p in tmp_path.iterdir()] == ["tokenizer_config.json"]  # no temp left


def test_pad_equal_to_eos_replaced(tmp_path: Path) -> None:
    text = CONFIG.replace('"pad_token": "<|endoftext|>"', '"pad_token": "<|im_end|>"')
    path = write(tmp_path, text)
    assert fix_tokenizer_config(path).old_pad == "<|im_end|>"
    assert (
        path.read_bytes()
        == CONFIG.replace('"pad_token": "<|endoftext|>"', '"pad_token": "<|vision_pad|>"').encode()
    )


def test_added_token_object_pad_and_crlf_kept(tmp_path: Path) -> None:
    pad_object = (
        '"pad_token": {\r\n    "__type": "AddedToken",\r\n    "content": '
        '"<|endoftext|>",\r\n    "lstrip": false\r\n  }'
    )
    text = CONFIG.replace('"pad_token": "<|endoftext|>"', pad_object).replace("\n", "\r\n")
    text = text.replace("\r\r\n", "\r\n")
    path = write(tmp_path, text)
    out = tmp_path / "fixed" / "tokenizer_config.json"
    result = fix_tokenizer_config(path, out)
    assert (result.status, result.out) == ("fixed", out)
    assert path.read_bytes() == text.encode()  # the source is untouched when out is given
    before = '"content": "<|endoftext|>",\r\n    "lstrip"'  # only the pad object has 4 spaces
    assert text.count(before) == 1
    after = before.replace("<|endoftext|>", "<|vision_pad|>")
    assert out.read_bytes() == text.replace(before, after).encode()
    assert json.loads(out.read_text())["pad_token"]["content"] == "<|vision_pad|>"


def test_only_the_top_level_pad_is_edited(tmp_path: Path) -> None:
    nested = '  "init_kwargs": {"pad_token": "<|endoftext|>"},\n'
    text = CONFIG.replace('  "bos_token": null,\n', '  "bos_token": null,\n' + nested)
    path = write(tmp_path, text)
    fix_tokenizer_config(path)
    data = json.loads(path.read_text())
    assert data["pad_token"] == "<|vision_pad|>"
    assert data["init_kwargs"] == {"pad_token": "<|endoftext|>"}
    assert path.read_text().count('"pad_token": "<|endoftext|>"') == 1


def test_already_fixed_writes_nothing(tmp_path: Path) -> None:
    fixed = CONFIG.replace('"pad_token": "<|endoftext|>"', '"pad_token": "<|vision_pad|>"')
    path = write(tmp_path, fixed)
    out = tmp_path / "out.json"
    result = fix_tokenizer_config(path, out)
    assert (result.status, result.written) == ("already fixed", False)
    assert not out.exists()
    assert path.read_bytes() == fixed.encode()


def test_other_distinct_pad_left_alone(tmp_path: Path) -> None:
    text = CONFIG.replace('"pad_token": "<|endoftext|>"', '"pad_token": "<|im_start|>"')
    path = write(tmp_path, text)
    result = fix_tokenizer_config(path)
    assert (result.status, result.written, result.old_pad) == (
        "pad already distinct",
        False,
        "<|im_start|>",
    )
    assert path.read_bytes() == text.encode()


@pytest.mark.parametrize(
    "text, field, detail",
    [
        (
            CONFIG.replace(added(151654, "<|vision_pad|>"), added(151654, "<|vision_pa|>")),
            "added_tokens_decoder",
            "<|vision_pad|> is not an added token, so this is not a Qwen2.5/QwQ tokenizer: "
            "set pad_token by hand; nothing written",
        ),
        (
            CONFIG.replace('  "pad_token": "<|endoftext|>",\n', ""),
            "pad_token",
            "missing; not a tokenizer_config.json this fix understands",
        ),
        (
            CONFIG.replace('"eos_token": "<|im_end|>"', '"eos_tokn": "<|im_end|>"'),
            "eos_token",
            "missing; not a tokenizer_config.json this fix understands",
        ),
        (
            CONFIG.replace('"pad_token": "<|endoftext|>"', '"pad_token": null'),
            "pad_token",
            'expected a token string or an object with "content", got null; nothing written',
        ),
        (
            '["pad_token", "<|endoftext|>"]\n',
            None,
            "not a JSON object, so not a tokenizer_config.json; nothing written",
        ),
        (
            CONFIG.replace('"errors": "replace"', '"pad_token": "<|im_end|>"'),
            None,
            "duplicate key 'pad_token'; nothing written",
        ),
    ],
)
def test_refused_and_nothing_written(
    tmp_path: Path, text: str, field: str | None, detail: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InputError) as caught:
        fix_tokenizer_config(path)
    error = caught.value
    assert (error.detail, error.field, error.file) == (detail, field, str(path))
    assert "\n" not in str(caught.value)
    assert path.read_bytes() == text.encode()


def test_invalid_json_names_the_line(tmp_path: Path) -> None:
    text = CONFIG.replace('"errors": "replace",', '"errors": "replace"')
    path = write(tmp_path, text)
    with pytest.raises(InputError) as caught:
        fix_tokenizer_config(path)
    assert caught.value.detail == "not valid JSON: Expecting ',' delimiter; nothing written"
    assert caught.value.line == text[: text.index('"model_max_length"')].count("\n") + 1
    assert path.read_bytes() == text.encode()


def test_unreadable_inputs(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        fix_tokenizer_config(tmp_path / "absent.json")
    assert caught.value.detail == "file not found"  # the one read of a user's file says so
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes(CONFIG.replace("— ok", "caf\u00e9").encode("latin-1"))
    with pytest.raises(InputError) as caught:
        fix_tokenizer_config(latin1)
    assert caught.value.detail.startswith("not UTF-8 (byte ")
