"""Hostile files: a GGUF whose header claims more than it holds, a GGUF whose embedded chat
template loops or builds a huge string. Each is one line, exit 2, naming what was refused,
within its bound (issue 31)."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import gguf
import numpy as np
import pytest

from qwq_ollama.catalog.chat_template import RenderJob, render_untrusted
from qwq_ollama.errors import InputError

from .conftest import run_cli

HI = [{"role": "user", "content": "Hi"}]


def gguf_with_template(path: Path, template: str) -> Path:
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_string("tokenizer.chat_template", template)
    writer.add_tensor("output.weight", np.ones((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_template_rendering_forever_ends_at_its_cpu_bound() -> None:
    loop = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    started = time.monotonic()
    with pytest.raises(InputError, match=r"^the template ran past 2 s of CPU time rendering"):
        render_untrusted(loop, [RenderJob(HI)], what="the template", cpu_seconds=2)
    assert time.monotonic() - started < 30


def test_a_template_building_a_huge_string_ends_at_its_memory_bound() -> None:
    with pytest.raises(InputError, match=r"^the template needed more than 1024 MiB to render"):
        render_untrusted("{{ 'x' * 4000000000 }}", [RenderJob(HI)], what="the template")


def test_an_untrusted_template_renders_as_in_process_and_fails_per_job() -> None:
    source = (
        "{% if messages[0].role == 'user' %}{{ messages[0].content }}{% else %}"
        "{{ raise_exception('no') }}{% endif %}{% if add_generation_prompt %}>{% endif %}"
    )
    assert render_untrusted(
        source,
        [RenderJob(HI), RenderJob([{"role": "x"}]), RenderJob(HI, add_generation_prompt=False)],
    ) == ["Hi>", None, "Hi"]


def test_inspect_of_a_gguf_whose_template_loops_is_one_line(tmp_path: Path) -> None:
    path = gguf_with_template(tmp_path / "loop.gguf", "{{ 'x' * 4000000000 }}")
    result = run_cli("inspect", str(path))
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "the GGUF's chat template needed more than 1024 MiB to render" in result.stderr


@pytest.mark.parametrize(
    ("header", "field"),
    [
        (struct.pack("<IQQ", 3, 1 << 40, 0), "tensor_count"),
        (struct.pack("<IQQ", 3, 0, 1 << 40), "kv_count"),
        (struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1 << 40), "kv[0].key"),
        (
            struct.pack("<IQQ", 3, 0, 1)
            + struct.pack("<Q", 3)
            + b"abc"
            + struct.pack("<IIQ", 9, 8, 1 << 50),
            "abc",
        ),
        (
            struct.pack("<IQQ", 3, 0, 1)
            + struct.pack("<Q", 3)
            + b"ctx"
            + struct.pack("<IIQ", 9, 4, 1 << 50),
            "ctx",
        ),
    ],
)
def test_a_local_header_claiming_more_than_the_file_is_one_line(
    tmp_path: Path, header: bytes, field: str
) -> None:
    path = tmp_path / "bomb.gguf"
    path.write_bytes(b"GGUF" + header + bytes(256))
    started = time.monotonic()
    result = run_cli("inspect", str(path))
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(
        f"Error: {path}: {field}: truncated GGUF: the header runs past the end of the file: "
    )
    assert time.monotonic() - started < 60


def test_a_family_with_a_mask_is_refused_when_it_loads(project_copy: Path) -> None:
    """A mask hides a span of the prompt from the comparison, and with it any regression there
    (a gutted tool schema was once judged "masked: identical"). A family.yaml that declares one
    is refused in one line naming the file, the line and the field, whatever else it says."""
    from qwq_ollama.catalog.family import load_family

    family_file = project_copy / "templates" / "qwen3" / "family.yaml"
    text = family_file.read_text()
    line = text.splitlines().index("    expect: tools_as_ollama_keeps_them") + 1
    family_file.write_text(
        text.replace(
            "    expect: tools_as_ollama_keeps_them\n",
            "    expect: tools_as_ollama_keeps_them\n"
            '    mask: {pattern: "<tools>.*?</tools>", replace: ""}\n',
        )
    )
    with pytest.raises(InputError) as caught:
        load_family(family_file.parent)
    assert str(caught.value).startswith(f"{family_file}:{line + 1}: divergences.0.mask: masks are")


def test_plan_names_a_context_beyond_the_training_length(tmp_path: Path) -> None:
    """4096 trained, 1,000,000 asked: Ollama runs it at 4096, and the plan says so."""
    from .test_plan_remote import tiny_model

    [model] = tiny_model(tmp_path / "tiny-Q4_0.gguf")
    result = run_cli("plan", "--ctx", "1000000", "--vram", "24GiB", "--gguf", str(model))
    assert result.returncode == 0, result.stderr
    assert (
        "num_ctx 1000000 is beyond the model's training context (4096): Ollama runs it "
        "at 4096, and the plan below is for that"
    ) in result.stderr
    inside = run_cli("plan", "--ctx", "4096", "--vram", "24GiB", "--gguf", str(model))
    assert "beyond" not in inside.stderr


def test_metadata_claiming_an_absurd_context_is_one_line(tmp_path: Path) -> None:
    from .test_plan_remote import tiny_model

    [model] = tiny_model(tmp_path / "tiny-Q4_0.gguf")
    data = model.read_bytes()
    key = b"llama.context_length"
    at = data.index(key) + len(key)
    assert data[at : at + 4] == struct.pack("<I", 4)  # a uint32 value follows the key
    # the value in place, as the largest uint32: the planner would step through 16 M contexts
    model.write_bytes(data[: at + 4] + struct.pack("<I", 0xFFFFFFFF) + data[at + 8 :])
    started = time.monotonic()
    result = run_cli("plan", "--ctx", "2048", "--vram", "24GiB", "--gguf", str(model))
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "llama.context_length is 4294967295, not a number in 1-16777216" in result.stderr
    assert time.monotonic() - started < 60
