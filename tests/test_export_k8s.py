"""Exporting a variant for Kubernetes: a ConfigMap and values for the otwld/ollama-helm chart."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from qwq_ollama.artifacts.kubernetes import helm_files
from qwq_ollama.catalog.render import render_variant
from qwq_ollama.catalog.schema import Catalog, load_catalog
from qwq_ollama.daemon.client import OllamaAPI
from qwq_ollama.daemon.registry import base_model_name
from qwq_ollama.engines.install import OllamaBinary
from qwq_ollama.engines.private_daemon import OllamaDaemon

from .conftest import DATA, ROOT, run_cli

CONFIGMAP_SCHEMA = json.loads((DATA / "k8s" / "configmap.v1.schema.json").read_text())
# The value names otwld/ollama-helm 1.77.0 documents under ollama.models (values.yaml, README),
# `[]` standing for the entries of a list.
CHART_MODEL_VALUES = {
    "ollama.models.pull[]",
    "ollama.models.run[]",
    "ollama.models.clean",
    "ollama.models.create[].name",
    "ollama.models.create[].template",
    "ollama.models.create[].configMapRef",
    "ollama.models.create[].configMapKeyRef",
}
VARIANTS = list(load_catalog(ROOT / "modelfiles" / "models.yaml").variants)


def exported(catalog: Catalog, variant: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(values, ConfigMap, the ConfigMap's YAML text) as a user would read them back."""
    files = helm_files(catalog, variant)
    values = yaml.safe_load(files.pop("values.yaml"))
    (text,) = files.values()
    return values, yaml.safe_load(text), text


def value_paths(data: Any, prefix: str = "") -> set[str]:
    if isinstance(data, dict):
        return set().union(*(value_paths(v, f"{prefix}.{k}".lstrip(".")) for k, v in data.items()))
    if isinstance(data, list):
        return set().union(set(), *(value_paths(item, f"{prefix}[]") for item in data))
    return {prefix}


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_configmap_is_a_valid_kubernetes_configmap(catalog: Catalog, variant: str) -> None:
    _, configmap, _ = exported(catalog, variant)
    jsonschema.validate(configmap, CONFIGMAP_SCHEMA)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"metadata": {"name": "qwq_fixed"}}, "name"),
        ({"data": {"a/b": "x"}}, "a/b"),
        ({"spec": {}}, "spec"),
    ],
)
def test_the_schema_refuses_what_the_api_server_refuses(
    catalog: Catalog, change: dict, where: str
) -> None:
    _, configmap, _ = exported(catalog, "qwq-fixed")
    with pytest.raises(jsonschema.ValidationError, match=where):
        jsonschema.validate({**configmap, **change}, CONFIGMAP_SCHEMA)


@pytest.mark.parametrize("variant", VARIANTS)
def test_values_use_only_the_charts_names_and_point_at_the_configmap(
    catalog: Catalog, variant: str
) -> None:
    values, configmap, _ = exported(catalog, variant)
    assert value_paths(values) <= CHART_MODEL_VALUES
    (entry,) = values["ollama"]["models"]["create"]
    assert entry["name"] == variant
    assert entry["configMapRef"] == configmap["metadata"]["name"]
    assert entry["configMapKeyRef"] in configmap["data"]
    assert values["ollama"]["models"]["pull"] == [
        catalog.weights_named(catalog.variant(variant).weights).modelfile_from
    ]


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_configmap_holds_the_rendered_modelfile_as_a_readable_block(
    catalog: Catalog, variant: str
) -> None:
    values, configmap, text = exported(catalog, variant)
    key = values["ollama"]["models"]["create"][0]["configMapKeyRef"]
    modelfile = configmap["data"][key]
    assert modelfile == render_variant(catalog, catalog.variant(variant)).modelfile
    weights = catalog.weights_named(catalog.variant(variant).weights)
    assert f"\nFROM {weights.modelfile_from}\n" in modelfile
    assert weights.modelfile_from.startswith("hf.co/unsloth/")
    assert f"  {key}: |" in text  # a literal block: the template reads as in the Modelfile


def test_cli_writes_both_files(tmp_path: Path) -> None:
    result = run_cli("export", "helm", "qwq-minp", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qwq-minp-modelfile.yaml", "values.yaml"]


def _add_variant(project: Path, text: str) -> Path:
    catalog_file = project / "modelfiles" / "models.yaml"
    catalog_file.write_text(catalog_file.read_text() + text)  # `variants:` comes last
    return catalog_file


def test_weights_a_pod_cannot_pull_are_refused_naming_the_field(
    project_copy: Path, tmp_path: Path
) -> None:
    catalog_file = _add_variant(project_copy, "  tiny:\n    weights: smollm2-135m\n")
    line = next(
        n
        for n, s in enumerate(catalog_file.read_text().split("\n"), 1)
        if s.strip() == "builtin: smollm2-135m"
    )
    out = tmp_path / "out"
    result = run_cli("export", "helm", "tiny", "--out", str(out), "--catalog", str(catalog_file))
    assert result.returncode == 2
    assert f"models.yaml:{line}: weights.smollm2-135m.builtin:" in result.stderr
    assert not out.exists()


def test_a_name_the_chart_cannot_use_in_a_volume_is_refused(
    project_copy: Path, tmp_path: Path
) -> None:
    catalog_file = _add_variant(project_copy, "  qwq_under:\n    extends: qwq-fixed\n")
    result = run_cli(
        "export",
        "helm",
        "qwq_under",
        "--out",
        str(tmp_path / "out"),
        "--catalog",
        str(catalog_file),
    )
    assert result.returncode == 2
    assert "variants.qwq_under:" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("variant", ["qwq-fixed", "qwq-baseline"])
def test_the_configmaps_modelfile_registers_with_ollama_create(
    api: OllamaAPI,
    registered: Catalog,
    daemon: OllamaDaemon,
    ollama_binary: OllamaBinary,
    tmp_path: Path,
    variant: str,
) -> None:
    """What the chart's pod runs, `ollama create NAME -f /models/NAME`, over the local base."""
    values, configmap, _ = exported(registered, variant)
    modelfile = configmap["data"][values["ollama"]["models"]["create"][0]["configMapKeyRef"]]
    base = base_model_name(registered.weights["smollm2-135m"])
    local = modelfile.replace("\nFROM hf.co/unsloth/QwQ-32B-GGUF:Q4_K_M\n", f"\nFROM {base}\n")
    assert local != modelfile
    (tmp_path / variant).write_text(local)
    name = f"qwq-helm-{variant}"
    try:
        subprocess.run(
            [str(ollama_binary.path), "create", name, "-f", str(tmp_path / variant)],
            env={**os.environ, "OLLAMA_HOST": daemon.host},
            check=True,
            capture_output=True,
            timeout=300,
        )
        shown = api.show(name)
        rendered = render_variant(registered, registered.variant(variant))
        assert shown is not None
        assert shown.template == rendered.ollama_template
        assert shown.parameters == (registered.variant(variant).parameters.as_dict())
    finally:
        api.delete(name)


# The KubeAI Model fields (kubeai.org/v1, KubeAI 0.21.0 api/k8s/v1/model_types.go) this export sets.
KUBEAI_SPEC_FIELDS = {
    "url",
    "engine",
    "features",
    "args",
    "files",
    "resourceProfile",
    "minReplicas",
    "maxReplicas",
    "env",
}


def test_kubeai_model_carries_the_vllm_files_parser_and_context(
    catalog: Catalog, tmp_path: Path
) -> None:
    result = run_cli("export", "vllm", "qwq-minp", "--out", str(tmp_path), "--manifest", "kubeai")
    assert result.returncode == 0, result.stderr
    model = yaml.safe_load((tmp_path / "kubeai-model.yaml").read_text())
    assert (model["apiVersion"], model["kind"]) == ("kubeai.org/v1", "Model")
    spec = model["spec"]
    assert set(spec) <= KUBEAI_SPEC_FIELDS
    assert (spec["engine"], spec["features"], spec["url"]) == (
        "VLLM",
        ["TextGeneration"],
        "hf://Qwen/QwQ-32B",
    )
    mounted = {Path(f["path"]): f["content"] for f in spec["files"]}
    # The mounted files are the ones the plain vLLM export wrote, byte for byte.
    assert {p.name: text for p, text in mounted.items()} == {
        name: (tmp_path / name).read_text()
        for name in ("generation_config.json", "chat_template.jinja")
    }
    args = dict(a.removeprefix("--").split("=", 1) for a in spec["args"])
    assert Path(args["chat-template"]) in mounted
    assert Path(args["generation-config"]) / "generation_config.json" in mounted
    assert args["reasoning-parser"] == "deepseek_r1"
    assert args["max-model-len"] == str(catalog.variant("qwq-minp").parameters.num_ctx)
    assert all(p.is_absolute() and ":" not in str(p) for p in mounted)  # KubeAI's rule


def test_an_unknown_manifest_writes_nothing(tmp_path: Path) -> None:
    result = run_cli(
        "export", "vllm", "qwq-minp", "--out", str(tmp_path / "out"), "--manifest", "operator"
    )
    assert result.returncode == 2
    assert "--manifest: unknown manifest 'operator'" in result.stderr
    assert not (tmp_path / "out").exists()
