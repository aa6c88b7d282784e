"""`export lmstudio`: every variant's model.yaml against LM Studio's own published schemas
(npm @lmstudio/lms-shared-types and @lmstudio/lms-kv-config, run with node by
tests/lmstudio/check_model_yaml.cjs; `make lmstudio-schema` installs them), and what the file
carries: the variant's verified template, stops, sampling, think tags, context, and for Qwen3
the thinking toggle wired to the template's variable."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from transformers.utils.chat_template_utils import render_jinja_template

from qwq_ollama.artifacts.export import effective_parameters
from qwq_ollama.artifacts.lmstudio import export_lmstudio, model_yaml
from qwq_ollama.catalog.render import render_variant
from qwq_ollama.catalog.schema import Catalog
from qwq_ollama.errors import InputError

from .conftest import ROOT, run_cli

SCHEMA_DIR = ROOT / "tests" / "lmstudio"
CHECKER = SCHEMA_DIR / "check_model_yaml.cjs"


def lmstudio_problems(definitions: dict[str, Any]) -> dict[str, list[str]]:
    """LM Studio's verdict on each definition: an empty list is a valid file."""
    modules = SCHEMA_DIR / "node_modules"
    node = shutil.which("node")
    # Never a silent skip: the schemas are installed by `make lmstudio-schema` (make test does).
    assert node is not None, "node is not installed: LM Studio's schema cannot be run"
    assert (modules / "@lmstudio" / "lms-shared-types").is_dir(), (
        "LM Studio's schema is not installed: run `make lmstudio-schema`"
    )
    done = subprocess.run(
        [node, str(CHECKER)],
        input=json.dumps(definitions),
        text=True,
        capture_output=True,
        timeout=120,
        check=True,
        env={**os.environ, "NODE_PATH": str(modules)},
    )
    return dict(json.loads(done.stdout))


def fields(definition: dict[str, Any], part: str = "operation") -> dict[str, Any]:
    return {f["key"]: f["value"] for f in definition["config"][part]["fields"]}


def test_lmstudios_schema_accepts_every_exported_variant(catalog: Catalog, tmp_path: Path) -> None:
    result = run_cli("export", "lmstudio", *catalog.variants, "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    written = sorted(tmp_path.glob("*/model.yaml"))
    assert {p.parent.name for p in written} == set(catalog.variants)
    # named none: the default set, as every command that takes variant names
    default = run_cli("export", "lmstudio", "--out", str(tmp_path / "default"))
    assert default.returncode == 0, default.stderr
    assert {p.parent.name for p in (tmp_path / "default").glob("*/model.yaml")} == set(
        catalog.default_names
    )
    definitions = {p.parent.name: yaml.safe_load(p.read_text()) for p in written}
    assert lmstudio_problems(definitions) == {name: [] for name in definitions}


BREAKAGES = {
    "model without an owner": (lambda d: d.update(model="qwq-fixed"), "model: Invalid"),
    "a key LM Studio does not have": (
        lambda d: d["config"]["operation"]["fields"].append(
            {"key": "llm.prediction.thinkBudget", "value": 512}
        ),
        "unknown key llm.prediction.thinkBudget",
    ),
    "top_p as a bare number": (
        lambda d: next(
            f
            for f in d["config"]["operation"]["fields"]
            if f["key"] == "llm.prediction.topPSampling"
        ).update(value=0.95),
        "llm.prediction.topPSampling",
    ),
    "reasoning tags missing": (
        lambda d: next(
            f
            for f in d["config"]["operation"]["fields"]
            if f["key"] == "llm.prediction.reasoning.parsing"
        )["value"].pop("endString"),
        "endString: Required",
    ),
    "a field of ours at the top": (lambda d: d.update(think_budget=512), "think_budget"),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_lmstudios_schema_rejects_a_broken_file(catalog: Catalog, breakage: str) -> None:
    definition = model_yaml(catalog, "qwq-fixed")
    change, words = BREAKAGES[breakage]
    change(definition)
    [problems] = lmstudio_problems({"broken": definition}).values()
    assert any(words in p for p in problems), problems


def test_the_file_carries_the_variants_template_stops_sampling_and_think_tags(
    catalog: Catalog,
) -> None:
    variant = catalog.variant("qwq-minp")
    definition = model_yaml(catalog, variant)
    operation = fields(definition)
    params = effective_parameters(variant)
    assert definition["base"] == [
        {
            "key": "unsloth/qwq-32b-gguf",
            "sources": [{"type": "huggingface", "user": "unsloth", "repo": "QwQ-32B-GGUF"}],
        }
    ]
    template = operation["llm.prediction.promptTemplate"]
    assert (
        template["jinjaPromptTemplate"]["template"] == render_variant(catalog, variant).hf_template
    )
    assert template["stopStrings"] == operation["llm.prediction.stopStrings"] == params["stop"]
    assert operation["llm.prediction.temperature"] == 1.5
    assert operation["llm.prediction.minPSampling"] == {"checked": True, "value": 0.1}
    assert operation["llm.prediction.topPSampling"] == {"checked": False, "value": 1.0}
    assert operation["llm.prediction.topKSampling"] == 0
    assert operation["llm.prediction.reasoning.parsing"] == {
        "enabled": True,
        "startString": "<think>",
        "endString": "</think>",
    }
    assert fields(definition, "load") == {"llm.load.contextLength": params["num_ctx"]}
    assert "customFields" not in definition  # QwQ cannot switch thinking off


def test_qwen3s_thinking_toggle_drives_the_template_variable(catalog: Catalog) -> None:
    """The custom field sets enable_thinking, which the exported template reads: rendered as LM
    Studio would with the field off, the prompt ends with the empty think block; the
    suggestions carry Qwen's sampling for each mode."""
    for name, default in (("qwen3-thinking", True), ("qwen3-nothink", False)):
        definition = model_yaml(catalog, name)
        [toggle] = definition["customFields"]
        assert toggle["defaultValue"] is default
        [effect] = toggle["effects"]
        assert effect == {"type": "setJinjaVariable", "variable": "enable_thinking"}
        template = fields(definition)["llm.prediction.promptTemplate"]["jinjaPromptTemplate"][
            "template"
        ]
        messages = [{"role": "user", "content": "Hi"}]
        for on in (True, False):
            prompt = render_jinja_template(
                [messages], chat_template=template, add_generation_prompt=True, enable_thinking=on
            )[0][0]
            assert prompt.endswith("<think>\n\n</think>\n\n") is (not on), (name, on)
        by_mode = {
            s["conditions"][0]["value"]: {f["key"]: f["value"] for f in s["fields"]}
            for s in definition["suggestions"]
        }
        assert by_mode[True]["llm.prediction.temperature"] == 0.6
        assert by_mode[False]["llm.prediction.temperature"] == 0.7
        assert by_mode[False]["llm.prediction.topPSampling"] == {"checked": True, "value": 0.8}
        assert {s["conditions"][0]["key"] for s in definition["suggestions"]} == {
            "$." + toggle["key"]
        }


def test_weights_lm_studio_cannot_download_are_refused(catalog: Catalog, tmp_path: Path) -> None:
    smollm2 = next(n for n, w in catalog.weights.items() if w.source == "builtin")
    project = tmp_path / "p"
    shutil.copytree(ROOT / "modelfiles", project / "modelfiles")
    shutil.copytree(ROOT / "templates", project / "templates")
    file = project / "modelfiles" / "models.yaml"
    file.write_text(file.read_text() + f"\n  small:\n    weights: {smollm2}\n")
    result = run_cli(
        "export", "lmstudio", "small", "--out", str(tmp_path / "out"), "--catalog", str(file)
    )
    assert result.returncode == 2 and "LM Studio downloads its base weights" in result.stderr
    assert not (tmp_path / "out").exists()
    with pytest.raises(InputError):
        export_lmstudio(catalog, ["qwq-fixed", "nope"], tmp_path / "none")
    assert not (tmp_path / "none").exists()
