"""A catalog variant for Kubernetes through the Ollama Helm chart (otwld/ollama-helm), not a
controller of our own: a ConfigMap holding the rendered Modelfile and the chart's values that
create the model from it when the pod starts; and, for vLLM stacks, a KubeAI `Model`.

Facts from the chart (version 1.77.0, appVersion 0.32.15, templates/deployment.yaml): each
`ollama.models.create` entry with `configMapRef` mounts that ConfigMap's key `configMapKeyRef` as
the file `/models/<name>` and runs `ollama create <name> -f /models/<name>`; `ollama.models.pull`
entries are pulled before any create. The ConfigMap path keeps the Modelfile away from the
chart's shell here-document (an inline `template` goes through `cat <<EOF`, where `$` and
backquotes in Go template text would be expanded). The chart checks nothing the model says.

Every `configMapRef` entry is mounted at the same `/models`, and Kubernetes refuses a container
with two mounts at one path, so a release carries one variant made this way.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from qwq_ollama.atomic import write_folder
from qwq_ollama.catalog.render import render_variant
from qwq_ollama.catalog.schema import Catalog, Variant, Weights

CHART = "otwld/ollama-helm"
CHART_VERSION = "1.77.0"
MODELFILE_KEY = "Modelfile"
VALUES_NAME = "values.yaml"
# The chart names the pod's volume `<name>-config-model-volume`: a DNS-1123 label (at most 63).
VOLUME_SUFFIX = "-config-model-volume"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class _BlockDumper(yaml.SafeDumper):
    """pyyaml's safe dumper, with multi-line strings as `|` blocks so a Modelfile stays readable."""


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_BlockDumper.add_representer(str, _represent_str)


def dump_yaml(data: Any) -> str:
    """YAML through pyyaml's SafeDumper (plain data only), keys in the order given."""
    return yaml.dump(
        data,
        Dumper=_BlockDumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=100,
    )


def pullable_from(catalog: Catalog, weights: Weights) -> str:
    """The weights as a pod can fetch them: `hf.co/<repo>:<quant>` or an Ollama registry name.

    A local GGUF or the built-in small model lives on this machine, never in the pod.
    """
    if weights.source in ("hf", "ollama"):
        return weights.modelfile_from
    raise catalog.error(
        f"{weights.source} weights are a file on this machine, which a pod "
        "cannot pull: give these weights as hf (repo, quant) or an Ollama "
        "registry name",
        "weights",
        weights.name,
        weights.source,
    )


def _check_name(
    catalog: Catalog,
    variant: Variant,
    limit: int = 63 - len(VOLUME_SUFFIX),
    why: str = "the Helm chart names a volume after the model",
) -> None:
    """The name goes where Kubernetes requires a DNS-1123 label of at most `limit` characters."""
    if DNS_LABEL.match(variant.name) and len(variant.name) <= limit:
        return
    raise catalog.error(
        f"{why}, so the name must be lower case letters, digits and '-' (at "
        f"most {limit}, starting and ending with a letter or digit)",
        "variants",
        variant.name,
    )


def configmap_name(variant: Variant) -> str:
    return f"{variant.name}-modelfile"


def helm_files(catalog: Catalog, variant: Variant | str) -> dict[str, str]:
    """Name -> content of what `export helm` writes: the values fragment and the ConfigMap."""
    chosen = catalog.variant(variant) if isinstance(variant, str) else variant
    _check_name(catalog, chosen)
    weights = catalog.weights_named(chosen.weights)
    source = pullable_from(catalog, weights)
    modelfile = render_variant(catalog, chosen, weights=weights).modelfile
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": configmap_name(chosen),
            "labels": {"app.kubernetes.io/managed-by": "qwq-ollama"},
        },
        "data": {MODELFILE_KEY: modelfile},
    }
    values = {
        "ollama": {
            "models": {
                "pull": [source],
                "create": [
                    {
                        "name": chosen.name,
                        "configMapRef": configmap_name(chosen),
                        "configMapKeyRef": MODELFILE_KEY,
                    }
                ],
            }
        }
    }
    header = (
        f"# Values for the Ollama Helm chart ({CHART} {CHART_VERSION}): pull {source}, then "
        f"create {chosen.name}\n# from the ConfigMap {configmap_name(chosen)} "
        f"(apply {configmap_name(chosen)}.yaml first).\n"
    )
    return {
        VALUES_NAME: header + dump_yaml(values),
        f"{configmap_name(chosen)}.yaml": dump_yaml(configmap),
    }


def kubeai_model(
    catalog: Catalog, variant: Variant, *, model: str, files: dict[str, str], args: list[str]
) -> dict[str, Any]:
    """A KubeAI `Model` (kubeai.org/v1, KubeAI 0.21) that serves `variant` on vLLM.

    KubeAI mounts each `spec.files` entry (path, content) from a ConfigMap it writes, and adds
    `spec.args` to vLLM's command line: `files` (the chat template and generation_config.json)
    travel as files beside the arguments that point vLLM at them, then `args`.
    """
    _check_name(catalog, variant, 63, "KubeAI names the Model's pods and service after it")
    folder = f"/config/qwq-ollama/{variant.name}"
    return {
        "apiVersion": "kubeai.org/v1",
        "kind": "Model",
        "metadata": {
            "name": variant.name,
            "labels": {"app.kubernetes.io/managed-by": "qwq-ollama"},
        },
        "spec": {
            "features": ["TextGeneration"],
            "url": f"hf://{model}",
            "engine": "VLLM",
            "args": [
                f"--generation-config={folder}",
                f"--chat-template={folder}/chat_template.jinja",
                *args,
            ],
            "files": [
                {"path": f"{folder}/{name}", "content": text} for name, text in files.items()
            ],
        },
    }


def export_helm(catalog: Catalog, variant: Variant | str, out_dir: Path) -> list[Path]:
    """Write the values fragment and the ConfigMap, both or neither; returns their paths."""
    return write_folder(Path(out_dir), helm_files(catalog, variant))
