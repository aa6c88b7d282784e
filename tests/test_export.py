"""Exporting a variant to llama.cpp, a Hugging Face GGUF repository and vLLM."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest

from qwq_ollama.artifacts.export import (
    GUIDE_LITERAL_ORDER,
    PENALTY_ORDER,
    SAMPLER_LETTERS,
    ExportedCommand,
    effective_parameters,
    export_hf,
    llama_cpp_command,
    samplers_run,
    write_llama_cpp_preset,
)
from qwq_ollama.artifacts.vllm import export_vllm
from qwq_ollama.catalog.chat_template import render_chat
from qwq_ollama.catalog.render import render_variant
from qwq_ollama.catalog.schema import Catalog, load_catalog
from qwq_ollama.daemon.client import OllamaAPI
from qwq_ollama.daemon.registry import base_model_name
from qwq_ollama.errors import InputError

from .conftest import run_cli

MODEL = "unsloth-QwQ-32B-GGUF/QwQ-32B-Q4_K_M.gguf"
GUIDE_ORDER_FIXED = ["top_k", "top_p", "min_p", "penalties", "temperature", "dry", "typ_p", "xtc"]
TRICKY_PROMPT = 'Don\'t "quote" $HOME or `ls`;\nkeep \\n and \\\\ as typed: 5 * 3 # not a comment'
# The sampling keys (and jinja): a user config applies to every model, so nothing model-specific.
SAMPLING_PRESET_KEYS = {
    "jinja",
    "temp",
    "top-k",
    "top-p",
    "min-p",
    "typical",
    "repeat-penalty",
    "repeat-last-n",
    "presence-penalty",
    "frequency-penalty",
    "dry-multiplier",
    "seed",
    "sampler-seq",
}


def command(catalog: Catalog, name: str, **kwargs: Any) -> ExportedCommand:
    return llama_cpp_command(
        catalog,
        name,
        model_path=MODEL,
        template_path=f"modelfiles/{name}.chat_template.jinja",
        **kwargs,
    )


def bash_argv(script: str, program: str) -> list[str]:
    """The arguments a real bash passes to `program` when it runs `script`."""
    stub = f'{program}() {{ printf "%s\\0" "$@"; }}\n'
    out = subprocess.run(["bash", "-c", stub + script], capture_output=True, check=True).stdout
    return out.decode("utf-8").split("\0")[:-1]


def test_fixed_sets_every_value_explicitly_and_keeps_llama_cpps_order(catalog: Catalog) -> None:
    cmd = command(catalog, "qwq-fixed")
    assert cmd.argv == [
        "llama-cli",
        "--model",
        MODEL,
        "--ctx-size",
        "16384",
        "--temp",
        "0.6",
        "--top-k",
        "40",
        "--top-p",
        "0.95",
        "--min-p",
        "0.0",
        "--repeat-penalty",
        "1.0",
        "--repeat-last-n",
        "64",
        "--presence-penalty",
        "0.0",
        "--frequency-penalty",
        "0.0",
        "--jinja",
        "--chat-template-file",
        "modelfiles/qwq-fixed.chat_template.jinja",
    ]
    lines = cmd.comment.splitlines()
    assert "# samplers run: top_k 40 > top_p 0.95 > temperature 0.6 > dist" in lines
    assert any("llama.cpp's default order, no --samplers needed" in line for line in lines)


def test_baseline_runs_the_penalty_after_truncation(catalog: Catalog) -> None:
    cmd = command(catalog, "qwq-baseline")
    argv = cmd.argv
    assert argv[argv.index("--repeat-penalty") + 1] == "1.1"
    assert argv[argv.index("--min-p") + 1] == "0.1"
    assert argv[argv.index("--samplers") + 1].split(";") == GUIDE_ORDER_FIXED
    assert argv.index("--samplers") < argv.index("--jinja")
    lines = cmd.comment.splitlines()
    assert (
        "# samplers run: top_k 40 > top_p 0.95 > min_p 0.1 > penalties (repeat 1.1; "
        "last 64 tokens) > temperature 0.6 > dist"
    ) in lines
    assert "# listed but a no-op at these values: dry, typ_p, xtc" in lines


def test_the_guides_literal_order_would_switch_the_penalty_off(catalog: Catalog) -> None:
    params = effective_parameters(catalog.variant("qwq-baseline"))
    literal, _ = samplers_run(GUIDE_LITERAL_ORDER, params)
    fixed, _ = samplers_run(PENALTY_ORDER, params)
    assert not any(step.startswith("penalties") for step in literal)
    assert [s.split()[0] for s in fixed] == ["top_k", "top_p", "min_p", "penalties", "temperature"]


def test_dry_alone_also_fixes_the_order(catalog: Catalog) -> None:
    cmd = command(catalog, "qwq-fixed", dry_multiplier=0.5)
    assert cmd.argv[cmd.argv.index("--dry-multiplier") + 1] == "0.5"
    assert cmd.argv[cmd.argv.index("--samplers") + 1].split(";") == GUIDE_ORDER_FIXED
    assert "# samplers run: top_k 40 > top_p 0.95 > temperature 0.6 > dry 0.5 > dist" in (
        cmd.comment.splitlines()
    )


@pytest.mark.parametrize("name", ["qwq-fixed", "qwq-noprefill", "qwq-minp", "qwq-baseline"])
@pytest.mark.parametrize("prompt", [None, TRICKY_PROMPT])
def test_shell_forms_give_back_the_argv(catalog: Catalog, name: str, prompt: str | None) -> None:
    cmd = command(catalog, name, prompt=prompt)
    assert shlex.split(cmd.shell) == cmd.argv
    assert bash_argv(cmd.script, "llama-cli") == cmd.argv[1:]
    assert cmd.script.startswith(cmd.comment + "\nllama-cli \\\n    --model ")


@pytest.mark.parametrize(
    "name,ending",
    [
        ("qwq-fixed", "<|im_start|>assistant\n<think>\n"),
        ("qwq-noprefill", "<|im_start|>assistant\n"),
    ],
)
def test_prompt_is_the_variants_template_applied_in_the_guides_form(
    catalog: Catalog, name: str, ending: str
) -> None:
    cmd = command(catalog, name, prompt=TRICKY_PROMPT, binary="llama-completion")
    expected = render_chat(
        render_variant(catalog, catalog.variant(name)).hf_template,
        [{"role": "user", "content": TRICKY_PROMPT}],
    )
    assert cmd.argv[-4:] == ["--no-escape", "-no-cnv", "--prompt", expected]
    assert expected.endswith(ending) and TRICKY_PROMPT in expected
    assert cmd.argv[0] == "llama-completion"


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (
            {"binary": "llama-server", "prompt": "hi"},
            "--prompt is for llama-cli or llama-completion",
        ),
        ({"binary": "llama-run"}, "unknown llama.cpp program 'llama-run'"),
        ({"dry_multiplier": -1.0}, "dry multiplier must be >= 0"),
    ],
)
def test_bad_command_requests_are_refused(catalog: Catalog, kwargs: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        command(catalog, "qwq-fixed", **kwargs)


def test_server_command_has_no_one_shot_flags(catalog: Catalog) -> None:
    cmd = command(catalog, "qwq-fixed", binary="./llama.cpp/llama-server")
    assert cmd.argv[0] == "./llama.cpp/llama-server"
    assert "-no-cnv" not in cmd.argv and "--prompt" not in cmd.argv
    assert "a request's own sampling fields override them" in cmd.comment


def read_preset(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith((";", "#")):
            key, _, value = line.partition(" = ")
            values[key] = value
    return values


def test_preset_holds_only_sampling(catalog: Catalog, tmp_path: Path) -> None:
    fixed = read_preset(write_llama_cpp_preset(catalog, "qwq-fixed", tmp_path / "fixed"))
    assert fixed == {
        "jinja": "true",
        "temp": "0.6",
        "top-k": "40",
        "top-p": "0.95",
        "min-p": "0.0",
        "repeat-penalty": "1.0",
        "repeat-last-n": "64",
        "presence-penalty": "0.0",
        "frequency-penalty": "0.0",
    }
    path = write_llama_cpp_preset(catalog, "qwq-baseline", tmp_path / "baseline")
    assert path == tmp_path / "baseline" / "preset.ini"
    baseline = read_preset(path)
    assert set(baseline) <= SAMPLING_PRESET_KEYS
    # llama.cpp's INI reader ends a value at ';' or '#': none may contain one.
    assert not any(c in value for value in baseline.values() for c in ";#")
    letters = {v: k for k, v in SAMPLER_LETTERS.items()}
    assert [letters[c] for c in baseline["sampler-seq"]] == GUIDE_ORDER_FIXED
    assert (baseline["min-p"], baseline["repeat-penalty"]) == ("0.1", "1.1")
    assert (
        ";   --ctx-size 16384 --chat-template-file qwq-baseline.chat_template.jinja"
        in path.read_text().splitlines()
    )


def test_hf_export_carries_the_variants_template_and_parameters(
    catalog: Catalog, tmp_path: Path
) -> None:
    variant = catalog.variant("qwq-baseline")
    out = tmp_path / "repo"
    paths = export_hf(catalog, variant, out)
    # No preset.ini: at a repository's root it makes llama-server -hf load no model (b10488).
    assert sorted(p.name for p in paths) == sorted(["params", "template", "chat_template.jinja"])
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths)
    rendered = render_variant(catalog, variant)
    assert json.loads((out / "params").read_text()) == variant.parameters.as_dict()
    assert json.loads((out / "params").read_text())["stop"] == [
        "<|im_end|>",
        "<|im_start|>",
        "<|endoftext|>",
    ]
    assert (out / "template").read_text() == rendered.ollama_template
    assert (out / "chat_template.jinja").read_text() == rendered.hf_template


def test_hf_export_writes_system_when_the_variant_has_one(
    project_copy: Path, tmp_path: Path
) -> None:
    catalog_file = project_copy / "modelfiles" / "models.yaml"
    text = catalog_file.read_text()
    marker = "  qwq-fixed:\n"
    catalog_file.write_text(text.replace(marker, marker + "    system: Think, then answer.\n"))
    paths = export_hf(load_catalog(catalog_file), "qwq-fixed", tmp_path / "repo")
    assert (tmp_path / "repo" / "system") in paths
    assert (tmp_path / "repo" / "system").read_text() == "Think, then answer."


@pytest.mark.parametrize("export", [export_hf, lambda c, v, o: export_vllm(c, v, o)])
def test_an_unwritable_folder_is_refused_and_nothing_is_written(
    catalog: Catalog, tmp_path: Path, export: Any
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    out = blocker / "repo"
    with pytest.raises(InputError) as caught:
        export(catalog, "qwq-fixed", out)
    assert str(out) in str(caught.value)
    assert [p.name for p in tmp_path.iterdir()] == ["a-file"]
    assert blocker.read_text() == "keep me"


def test_a_folder_in_the_way_leaves_the_other_files_untouched(
    catalog: Catalog, tmp_path: Path
) -> None:
    (tmp_path / "template").mkdir()
    (tmp_path / "params").write_text("old")
    with pytest.raises(InputError, match="a folder is in the way"):
        export_hf(catalog, "qwq-fixed", tmp_path)
    assert (tmp_path / "params").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params", "template"]


def test_exported_hf_files_are_what_the_daemon_takes(
    api: OllamaAPI, registered: Catalog, tmp_path: Path
) -> None:
    export_hf(registered, "qwq-baseline", tmp_path)
    template = (tmp_path / "template").read_text()
    params = json.loads((tmp_path / "params").read_text())
    base = base_model_name(registered.weights["smollm2-135m"])
    name = "qwq-export-hf-check"
    try:
        for _ in api.create(name, from_=base, template=template, parameters=params):
            pass
        shown = api.show(name)
        assert shown is not None
        assert shown.template == template
        assert shown.parameters == params
    finally:
        api.delete(name)


def test_vllm_export_writes_the_sampling_defaults_vllm_reads(
    catalog: Catalog, tmp_path: Path
) -> None:
    out = tmp_path / "vllm"
    paths, cmd = export_vllm(catalog, "qwq-minp", out)
    assert paths == [out / "generation_config.json", out / "chat_template.jinja"]
    assert json.loads((out / "generation_config.json").read_text()) == {
        "do_sample": True,
        "temperature": 1.5,
        "top_k": -1,
        "top_p": 1.0,
        "min_p": 0.1,
        "repetition_penalty": 1.0,
        "eos_token_id": [151645, 151644, 151643],
    }
    assert (out / "chat_template.jinja").read_text() == render_variant(
        catalog, catalog.variant("qwq-minp")
    ).hf_template
    assert shlex.split(cmd) == [
        "vllm",
        "serve",
        "Qwen/QwQ-32B",
        "--generation-config",
        str(out),
        "--chat-template",
        str(out / "chat_template.jinja"),
        "--max-model-len",
        "16384",
        "--reasoning-parser",
        "deepseek_r1",
    ]


def test_vllm_export_keeps_the_baselines_penalty(catalog: Catalog, tmp_path: Path) -> None:
    export_vllm(catalog, "qwq-baseline", tmp_path)
    config = json.loads((tmp_path / "generation_config.json").read_text())
    assert (config["repetition_penalty"], config["min_p"], config["top_k"]) == (1.1, 0.1, 40)


def test_cli_prints_a_runnable_script_and_writes_the_preset(tmp_path: Path) -> None:
    result = run_cli("export", "llama-cpp", "qwq-baseline", "--export-preset", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stderr == f"wrote {tmp_path / 'preset.ini'}\n"
    argv = bash_argv(result.stdout, "llama-cli")
    assert argv[:2] == ["--model", MODEL]
    assert argv[argv.index("--samplers") + 1].split(";") == GUIDE_ORDER_FIXED
    assert argv[argv.index("--chat-template-file") + 1] == (
        "modelfiles/qwq-baseline.chat_template.jinja"
    )
    assert read_preset(tmp_path / "preset.ini")["sampler-seq"] == "kpmetdyx"


def test_cli_export_errors_name_the_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = run_cli("export", "hf", "qwq-fixed", "--out", str(blocker / "repo"))
    assert result.returncode == 2
    assert result.stderr == (
        f"Error: {blocker / 'repo'}: cannot write the export here: Not a directory\n"
    )
    assert result.stdout == ""


def test_cli_vllm_prints_the_serve_command(tmp_path: Path) -> None:
    result = run_cli("export", "vllm", "qwq-fixed", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout
        == shlex.join(
            [
                "vllm",
                "serve",
                "Qwen/QwQ-32B",
                "--generation-config",
                str(tmp_path),
                "--chat-template",
                str(tmp_path / "chat_template.jinja"),
                "--max-model-len",
                "16384",
                "--reasoning-parser",
                "deepseek_r1",
            ]
        )
        + "\n"
    )
