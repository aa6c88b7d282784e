"""`qwq-ollama inspect`, `fix-tokenizer` and `download` through the command line."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from .conftest import DATA, OFFICIAL_TEMPLATE, run_cli
from .test_gguf_info import NO_PREFILL, write_qwen2


def test_inspect_the_small_model(small_gguf: Path) -> None:
    result = run_cli("inspect", str(small_gguf))
    assert result.returncode == 0, result.stderr
    # values as a person reads them: no Python reprs (quotes, None, dicts)
    lines = result.stdout.splitlines()
    assert "architecture:                  llama" in lines
    assert "quantization:                  Q4_1" in lines
    assert "rope_scaling_type:             -" in lines
    assert (
        "special_tokens:                bos 1 <|im_start|>, eos 2 <|im_end|>, pad 2 <|im_end|>, "
        "unk 0 <|endoftext|>"
    ) in lines
    assert "generation_prompt:             <|im_start|>assistant\\n" in lines
    assert not any(re.search(r":\s+(None|'.*'|\{.*\})$", line) for line in lines), lines
    assert "chat template vs qwq-fixed:    differs" in result.stdout
    assert "warning: PAD token id 2 equals EOS ('<|im_end|>')" in result.stdout
    assert "  first difference: user: " in result.stdout
    # a Llama template is no QwQ one: QwQ's prefill warning only when QwQ is named
    assert "prefill" not in result.stdout
    named = run_cli("inspect", str(small_gguf), "--variant", "qwq-fixed")
    assert (
        "warning: the template's generation prompt lacks the '<think>\\n' prefill" in named.stdout
    )


def test_inspect_reads_the_header_once(small_gguf: Path, monkeypatch) -> None:
    from qwq_ollama.artifacts import gguf
    from qwq_ollama.catalog.schema import load_catalog
    from qwq_ollama.checks.gguf_verdict import inspect_for_variant

    opened: list[Path] = []
    real = gguf._open_reader

    def counting(path: Path, size: int) -> Any:
        opened.append(path)
        return real(path, size)

    monkeypatch.setattr(gguf, "_open_reader", counting)
    inspect_for_variant(small_gguf, load_catalog())
    assert len(opened) == 1


def test_official_template_text_counts_as_the_same_as_ours(tmp_path: Path) -> None:
    path = write_qwen2(tmp_path / "qwq.gguf", pad=5, context=32768, template=OFFICIAL_TEMPLATE)
    result = run_cli("inspect", str(path))
    assert result.returncode == 0, result.stderr
    assert "chat template vs qwq-fixed:    same" in result.stdout
    no_prefill = run_cli("inspect", str(path), "--variant", "qwq-noprefill")
    assert "chat template vs qwq-noprefill: differs" in no_prefill.stdout


def test_a_template_without_prefill_matches_the_noprefill_variant(tmp_path: Path) -> None:
    path = write_qwen2(tmp_path / "np.gguf", pad=5, context=32768, template=NO_PREFILL)
    data = json.loads(run_cli("inspect", str(path), "--variant", "qwq-noprefill", "--json").stdout)
    assert data["template_matches"] is True
    assert data["schema_version"] == 1  # like every --json document
    fixed = json.loads(run_cli("inspect", str(path), "--variant", "qwq-fixed", "--json").stdout)
    assert fixed["template_matches"] is False
    assert "first difference" in fixed["template_diff"]
    # Without --variant, inspect compares with the variant the template renders like.
    recognised = json.loads(run_cli("inspect", str(path), "--json").stdout)
    assert recognised["family"] == "qwq" and recognised["template_matches"] is True
    assert recognised["family_match"] == "qwq (renders exactly as qwq-noprefill)"


@pytest.mark.parametrize(
    ("official", "family", "variant"),
    [
        ("qwen3.chat_template.jinja", "qwen3", "qwen3-thinking"),
        ("deepseek-r1-distill-qwen.chat_template.jinja", "deepseek-r1", "r1-distill-qwen"),
        ("qwq-32b.chat_template.jinja", "qwq", "qwq-fixed"),
    ],
)
def test_inspect_recognises_each_familys_official_template(
    tmp_path: Path, official: str, family: str, variant: str
) -> None:
    template = (DATA / "official" / official).read_text()
    path = write_qwen2(tmp_path / "m.gguf", pad=5, context=32768, template=template)
    data = json.loads(run_cli("inspect", str(path), "--json").stdout)
    assert data["family"] == family
    assert data["family_match"] == f"{family} (renders exactly as {variant})"
    assert data["template_matches"] is True
    assert not [w for w in data["warnings"] if "prefill" in w]


def test_inspect_names_the_nearest_family_of_an_edited_template(tmp_path: Path) -> None:
    """llama.cpp's copy of the R1 template closes the reasoning when enable_thinking is unset:
    not the official prompt, and inspect says where it departs."""
    official = (DATA / "official" / "deepseek-r1-distill-qwen.chat_template.jinja").read_text()
    edited = official.replace(
        "{{'<｜Assistant｜><think>\\n'}}", "{{'<｜Assistant｜><think>\\n</think>'}}"
    )
    assert edited != official
    path = write_qwen2(tmp_path / "m.gguf", pad=5, context=32768, template=edited)
    data = json.loads(run_cli("inspect", str(path), "--json").stdout)
    assert data["family"] is None
    assert data["family_match"].startswith(
        "none; nearest deepseek-r1 (r1-distill-qwen), first difference in user at char "
    )
    assert data["family_match"].endswith("'' vs '</think>'")
    assert data["template_matches"] is False


def test_inspect_not_a_gguf_is_exit_2(tmp_path: Path) -> None:
    bogus = tmp_path / "model.gguf"
    bogus.write_text("hello")
    result = run_cli("inspect", str(bogus))
    assert result.returncode == 2
    assert result.stderr.startswith(f"Error: {bogus}: not a GGUF file")


def test_fix_tokenizer_cli(tmp_path: Path) -> None:
    config = {
        "added_tokens_decoder": {
            "151643": {"content": "<|endoftext|>"},
            "151645": {"content": "<|im_end|>"},
            "151654": {"content": "<|vision_pad|>"},
        },
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
    }
    path = tmp_path / "tokenizer_config.json"
    path.write_text(json.dumps(config, indent=2))
    result = run_cli("fix-tokenizer", str(path))
    assert result.returncode == 0, result.stderr
    assert json.loads(path.read_text())["pad_token"] == "<|vision_pad|>"
    again = run_cli("fix-tokenizer", str(path))
    assert again.stdout.startswith("already fixed")


def test_download_offline_without_cache_is_one_line(tmp_path: Path) -> None:
    result = run_cli(
        "download", "--quant", "Q4_K_M", env={"HF_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("Error: ") and "Q4_K_M" in lines[-1]
    unknown = run_cli("download", "--quant", "Q9_X")
    assert unknown.returncode == 2 and "unknown quant" in unknown.stderr
