"""The same profile for LM Studio: a `model.yaml` per variant (LM Studio's virtual model).

A virtual model names its base weights (a Hugging Face GGUF repository) and layers settings on
them: here the variant's verified Jinja chat template, the family's stop strings, the sampling,
the context length and `reasoning.parsing` with the family's think tags, so the reasoning shows
apart from the answer. A family switched by `enable_thinking` (Qwen3) gets an `enableThinking`
field wired to the template's variable, with the authors' sampling for each mode offered as
suggestions: the thinking toggle LM Studio users otherwise write by hand.

Keys and value shapes are LM Studio's (npm: @lmstudio/lms-shared-types virtualModelDefinitionSchema,
@lmstudio/lms-kv-config globalConfigSchematics); the tests validate every file against them.
LM Studio has no thinking budget (no such key in either package): a variant's think_budget is
said in a comment, not silently dropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypedDict

from qwq_ollama.artifacts.export import _variant, effective_parameters
from qwq_ollama.artifacts.kubernetes import dump_yaml
from qwq_ollama.atomic import write_folder
from qwq_ollama.catalog.render import render_variant
from qwq_ollama.catalog.schema import Catalog, Variant

# LM Studio's `model` is `<owner>/<name>`: ours go under one owner.
OWNER = "qwq-ollama"
THINKING_FIELD = "enableThinking"


class Field(TypedDict):
    key: str
    value: Any


def _checkbox(value: float, on: bool = True) -> dict[str, Any]:
    """LM Studio's optional numbers: a value and whether it applies."""
    return {"checked": on, "value": value}


def sampling_fields(sampling: dict[str, Any]) -> list[Field]:
    """Ollama's sampling as LM Studio's prediction keys; a sampler Ollama switches off (top_k 0,
    top_p 1, min_p 0, penalties at their neutral value) is stated off, not left to a default."""
    fields: list[Field] = [
        {"key": "llm.prediction.temperature", "value": sampling["temperature"]},
        {"key": "llm.prediction.topKSampling", "value": sampling["top_k"]},
        {
            "key": "llm.prediction.topPSampling",
            "value": _checkbox(sampling["top_p"], sampling["top_p"] < 1.0),
        },
        {
            "key": "llm.prediction.minPSampling",
            "value": _checkbox(sampling["min_p"], sampling["min_p"] > 0.0),
        },
    ]
    if "repeat_penalty" in sampling:
        fields.append(
            {
                "key": "llm.prediction.repeatPenalty",
                "value": _checkbox(sampling["repeat_penalty"], sampling["repeat_penalty"] != 1.0),
            }
        )
    for ours, theirs in (
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ):
        if ours in sampling:
            fields.append(
                {
                    "key": f"llm.prediction.llama.{theirs}",
                    "value": _checkbox(sampling[ours], sampling[ours] != 0.0),
                }
            )
    return fields


def _mode_sampling(variant: Variant, thinking: bool) -> dict[str, Any]:
    """The authors' published sampling for one mode (family.yaml)."""
    family = variant.family
    return (family.sampling if thinking else family.sampling_without_thinking).as_dict()


def model_yaml(catalog: Catalog, variant: Variant | str) -> dict[str, Any]:
    """The virtual-model definition of `variant`, as plain data."""
    chosen = _variant(catalog, variant)
    weights = catalog.weights_named(chosen.weights)
    if weights.source != "hf" or weights.hf_repo is None:
        raise catalog.error(
            f"LM Studio downloads its base weights from Hugging Face: weights "
            f"{weights.name!r} are {weights.source}, give them an hf: repo",
            "weights",
            weights.name,
        )
    user, repo = weights.hf_repo.split("/", 1)
    family = chosen.family
    params = effective_parameters(chosen)
    stops = list(params.get("stop") or family.stop)
    template = render_variant(catalog, chosen).hf_template
    operation: list[Field] = [
        {
            "key": "llm.prediction.promptTemplate",
            "value": {
                "type": "jinja",
                "jinjaPromptTemplate": {"template": template},
                "stopStrings": stops,
            },
        },
        {"key": "llm.prediction.stopStrings", "value": list(stops)},
        *sampling_fields(params),
        {
            "key": "llm.prediction.reasoning.parsing",
            "value": {
                "enabled": family.switch != "none",
                "startString": family.think_open,
                "endString": family.think_close,
            },
        },
    ]
    definition: dict[str, Any] = {
        "model": f"{OWNER}/{chosen.name}",
        "base": [
            {
                "key": weights.hf_repo.lower(),
                "sources": [{"type": "huggingface", "user": user, "repo": repo}],
            }
        ],
        "tags": [family.name, "reasoning"],
        "config": {
            "load": {"fields": [{"key": "llm.load.contextLength", "value": params["num_ctx"]}]},
            "operation": {"fields": operation},
        },
        "metadataOverrides": {
            "domain": "llm",
            "architectures": list(family.architectures),
            "compatibilityTypes": ["gguf"],
            "reasoning": family.switch != "none",
        },
    }
    if family.switch == "enable_thinking":
        definition["customFields"] = [
            {
                "key": THINKING_FIELD,
                "displayName": "Enable Thinking",
                "description": "Whether the model reasons before it answers (the chat template's "
                "enable_thinking)",
                "type": "boolean",
                "defaultValue": chosen.enable_thinking,
                "effects": [{"type": "setJinjaVariable", "variable": "enable_thinking"}],
            }
        ]
        definition["suggestions"] = [
            {
                "message": f"The authors' sampling for thinking {'on' if mode else 'off'}",
                "conditions": [{"type": "equals", "key": f"$.{THINKING_FIELD}", "value": mode}],
                "fields": sampling_fields(_mode_sampling(chosen, mode)),
            }
            for mode in (True, False)
        ]
    return definition


def model_yaml_text(catalog: Catalog, variant: Variant | str) -> str:
    chosen = _variant(catalog, variant)
    lines = [
        f"# LM Studio virtual model for {chosen.name}, written by `qwq-ollama export lmstudio`.",
        f"# {chosen.description}".rstrip(),
    ]
    if chosen.think_budget is not None:
        lines.append(
            f"# think_budget {chosen.think_budget}: LM Studio has no thinking budget; "
            "use llama-server's --reasoning-budget (export llama-cpp) or qwq-ollama "
            "chat on Ollama"
        )
    return "\n".join(lines) + "\n" + dump_yaml(model_yaml(catalog, chosen))


def export_lmstudio(catalog: Catalog, variants: list[str], out_dir: Path) -> list[Path]:
    """Write `<out>/<variant>/model.yaml` for each variant (all at once, atomically each):
    the layout of LM Studio's ~/.lmstudio/hub/models/<owner>/ folder."""
    files = {f"{name}/model.yaml": model_yaml_text(catalog, name) for name in variants}
    return write_folder(out_dir, files)
