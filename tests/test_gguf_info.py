"""inspect_gguf on the real small model and on tiny GGUFs written with gguf.GGUFWriter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gguf
import numpy as np
import pytest

from qwq_ollama.artifacts.gguf import GGUFReport, inspect_gguf
from qwq_ollama.errors import InputError

OFFICIAL = (Path(__file__).parent / "data" / "official" / "qwq-32b.chat_template.jinja").read_text()
NO_PREFILL = OFFICIAL.replace("'<|im_start|>assistant\\n<think>\\n'", "'<|im_start|>assistant\\n'")
VOCAB = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<think>",
    "</think>",
    "<|vision_pad|>",
    "a",
    "b",
]
EOS, VISION_PAD = 2, 5


def write_qwen2(
    path: Path,
    *,
    pad: int = EOS,
    context: int = 131072,
    yarn: bool = False,
    template: str | None = OFFICIAL,
) -> Path:
    """A tiny but complete qwen2 GGUF: vocabulary, special ids, template, one F32 tensor."""
    writer = gguf.GGUFWriter(path, "qwen2")
    writer.add_name("tiny qwen2")
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_K_M)
    writer.add_context_length(context)
    writer.add_layer_norm_rms_eps(1e-6)
    if yarn:
        writer.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        writer.add_rope_scaling_factor(4.0)
        writer.add_rope_scaling_orig_ctx_len(32768)
    writer.add_token_list(VOCAB)
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(EOS)
    writer.add_pad_token_id(pad)
    if template is not None:
        writer.add_chat_template(template)
    embedding = np.arange(len(VOCAB) * 4, dtype=np.float32).reshape(len(VOCAB), 4)
    writer.add_tensor("token_embd.weight", embedding)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def smol(small_gguf: Path) -> tuple[Path, GGUFReport]:
    return small_gguf, inspect_gguf(small_gguf, expected_template=OFFICIAL)


def test_small_model_header_values(smol: tuple[Path, GGUFReport]) -> None:
    path, report = smol
    assert report.architecture == "llama"
    assert report.size_label == "135M"
    assert report.quantization == "Q4_1"
    assert report.tensor_types == {"F32": 61, "Q4_1": 210, "Q8_0": 1}
    assert report.tensor_count == 272
    assert report.parameter_count == 134_515_008
    assert report.context_length == 8192
    assert report.rms_norm_eps == 1e-05
    assert report.rope_scaling_type is None
    assert report.file_size == path.stat().st_size
    assert report.gguf_version == 3


def test_small_model_special_tokens_and_template(smol: tuple[Path, GGUFReport]) -> None:
    _, report = smol
    assert {role: (t.id, t.text) for role, t in report.special_tokens.items()} == {
        "bos": (1, "<|im_start|>"),
        "eos": (2, "<|im_end|>"),
        "pad": (2, "<|im_end|>"),
        "unk": (0, "<|endoftext|>"),
    }
    assert report.think_tokens == {}
    assert report.chat_template is not None and "<|im_start|>" in report.chat_template
    assert report.generation_prompt == "<|im_start|>assistant\n"


def test_small_model_warns_pad_equals_eos(smol: tuple[Path, GGUFReport]) -> None:
    _, report = smol
    assert report.warnings == [
        "PAD token id 2 equals EOS ('<|im_end|>'): set PAD to "
        "<|vision_pad|> before fine-tuning (the guide's tokenizer fix)"
    ]


def test_small_model_template_differs_from_qwq(smol: tuple[Path, GGUFReport]) -> None:
    _, report = smol
    assert report.template_matches is False
    diff = report.template_diff or ""
    lines = diff.splitlines()
    assert lines[:2] == ["--- expected", "+++ embedded in GGUF"]
    assert lines[2:4] == [f"@@ -1,{len(OFFICIAL.splitlines())} +1,6 @@", "-{%- if tools %}"]
    assert len(lines) == 41 and lines[-1] == "... (32 more diff lines)"


def test_report_is_json_serialisable(smol: tuple[Path, GGUFReport]) -> None:
    _, report = smol
    data = json.loads(json.dumps(report.to_dict()))
    assert data["quantization"] == "Q4_1"
    assert data["special_tokens"]["eos"] == {"id": 2, "text": "<|im_end|>"}


def test_qwen2_pitfalls_all_warned(tmp_path: Path) -> None:
    path = write_qwen2(tmp_path / "bad.gguf")
    report = inspect_gguf(path, expected_template=OFFICIAL, expect_prefill=False)
    assert report.architecture == "qwen2"
    assert report.quantization == "Q4_K_M"
    assert report.parameter_count == 32
    assert report.rms_norm_eps == 1e-06
    assert report.think_tokens == {"<think>": 3, "</think>": 4}
    assert report.generation_prompt == "<|im_start|>assistant\n<think>\n"
    assert report.template_matches is True and report.template_diff is None
    assert len(report.warnings) == 3
    pad, ctx, prefill = report.warnings
    assert pad.startswith("PAD token id 2 equals EOS ('<|im_end|>')")
    assert "<|vision_pad|> (id 5 here)" in pad
    assert ctx.startswith("context_length 131072 is above qwen2's native 32768 without YaRN")
    assert prefill.startswith("the template's generation prompt ends with '<think>\\n'")


def test_qwen2_done_right_has_no_warnings(tmp_path: Path) -> None:
    path = write_qwen2(tmp_path / "good.gguf", pad=VISION_PAD, yarn=True)
    report = inspect_gguf(path, expected_template=OFFICIAL, expect_prefill=True)
    assert report.warnings == []
    assert (
        report.rope_scaling_type,
        report.rope_scaling_factor,
        report.rope_original_context_length,
    ) == ("yarn", 4.0, 32768)
    assert report.special_tokens["pad"].text == "<|vision_pad|>"


def test_missing_prefill_warned_and_diffed(tmp_path: Path) -> None:
    path = write_qwen2(
        tmp_path / "noprefill.gguf", pad=VISION_PAD, context=32768, template=NO_PREFILL
    )
    report = inspect_gguf(path, expected_template=OFFICIAL, expect_prefill=True)
    assert report.generation_prompt == "<|im_start|>assistant\n"
    assert report.warnings == [
        "the template's generation prompt lacks the '<think>\\n' prefill: "
        "use the official template (it ends with "
        "'<|im_start|>assistant\\n<think>\\n')"
    ]
    assert report.template_matches is False
    diff = (report.template_diff or "").splitlines()
    assert "-    {{- '<|im_start|>assistant\\n<think>\\n' }}" in diff
    assert "+    {{- '<|im_start|>assistant\\n' }}" in diff
    # expect_prefill=False is satisfied by the same file
    assert inspect_gguf(path, expect_prefill=False).warnings == []


def test_no_template_warned(tmp_path: Path) -> None:
    path = write_qwen2(tmp_path / "notemplate.gguf", pad=VISION_PAD, context=32768, template=None)
    report = inspect_gguf(path, expected_template=OFFICIAL)
    assert report.chat_template is None and report.generation_prompt is None
    assert report.template_matches is False
    assert report.warnings == [
        "no chat template embedded: set TEMPLATE in the Modelfile "
        "(qwq-ollama render), or the runtime falls back to a generic one"
    ]


def test_long_diff_is_cut(tmp_path: Path) -> None:
    template = "".join(f"line {i}\n" for i in range(200))
    path = write_qwen2(tmp_path / "long.gguf", pad=VISION_PAD, context=32768, template=template)
    report = inspect_gguf(path, expected_template=template.replace("line", "LINE"))
    lines = (report.template_diff or "").splitlines()
    assert len(lines) == 41
    assert lines[-1].startswith("... (") and lines[-1].endswith(" more diff lines)")


def test_missing_final_newline_is_shown(tmp_path: Path) -> None:
    path = write_qwen2(tmp_path / "nl.gguf", pad=VISION_PAD, context=32768, template=OFFICIAL)
    report = inspect_gguf(path, expected_template=OFFICIAL.rstrip("\n"))
    assert report.template_matches is False
    assert "\\ No newline at end of file" in (report.template_diff or "")


def _one_line_error(path: Path) -> InputError:
    with pytest.raises(InputError) as caught:
        inspect_gguf(path)
    assert "\n" not in str(caught.value)
    assert caught.value.file == str(path)
    return caught.value


def test_text_file_is_not_a_gguf(tmp_path: Path) -> None:
    path = tmp_path / "notes.gguf"
    path.write_text("hello, world\n")
    assert _one_line_error(path).detail == "not a GGUF file (magic b'hell', expected b'GGUF')"
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    assert _one_line_error(empty).detail == "not a GGUF file (magic b'', expected b'GGUF')"


def test_missing_file(tmp_path: Path) -> None:
    assert _one_line_error(tmp_path / "absent.gguf").detail == "no such file"


def test_truncated_header(tmp_path: Path, smol: tuple[Path, GGUFReport]) -> None:
    path = tmp_path / "head.gguf"
    with open(smol[0], "rb") as src:
        path.write_bytes(src.read(1000))
    error = _one_line_error(path)
    assert error.detail.startswith("truncated GGUF: the header runs past the end of the file")


def test_truncated_tensor_data(tmp_path: Path) -> None:
    path = write_qwen2(tmp_path / "cut.gguf", pad=VISION_PAD)
    data = path.read_bytes()
    path.write_bytes(data[:-16])
    assert _one_line_error(path).detail.startswith("truncated GGUF: tensor data is cut short")


MEASURE = """
import json, sys
from qwq_ollama.artifacts.gguf import inspect_gguf
import qwq_ollama.catalog.chat_template

def peak_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024

before = peak_mib()
report = inspect_gguf(sys.argv[1])
print(json.dumps({"grew": peak_mib() - before, "params": report.parameter_count}))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_tensor_data_is_never_read(tmp_path: Path) -> None:
    """A 1 GiB tensor in a sparse file: reading its pages would raise peak RSS by ~1 GiB."""
    path = tmp_path / "big.gguf"
    writer = gguf.GGUFWriter(path, "qwen2")
    writer.add_token_list(VOCAB)
    writer.add_tensor_info("big.weight", (1 << 28,), np.dtype(np.float32), 1 << 30)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    header = path.stat().st_size
    os.truncate(path, (header + 31) // 32 * 32 + (1 << 30))
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True, check=True
    )
    result = json.loads(proc.stdout)
    assert result["params"] == 1 << 28
    assert result["grew"] < 128, f"peak RSS grew by {result['grew']} MiB while inspecting"
