"""The same profile for vLLM: `generation_config.json` (its default sampling), the chat template,
the `vllm serve` command, and optionally a KubeAI `Model` carrying both files.

What vLLM cannot reproduce of the Ollama settings is said by `vllm_notes`.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from qwq_ollama.artifacts.export import _num, _variant, effective_parameters, penalty_window
from qwq_ollama.artifacts.kubernetes import dump_yaml, kubeai_model
from qwq_ollama.atomic import write_folder
from qwq_ollama.catalog.render import render_variant
from qwq_ollama.catalog.schema import Catalog, Variant
from qwq_ollama.errors import InputError


def vllm_generation_config(variant: Variant) -> dict[str, Any]:
    """What vLLM reads from `generation_config.json` as default sampling.

    vLLM takes temperature, top_k, top_p, min_p, repetition_penalty and max_new_tokens from it
    (ModelConfig.get_diff_sampling_param), and stop token ids from `eos_token_id`. It has no
    penalty window (its repetition_penalty covers prompt and output) and reads no presence or
    frequency penalty from the file; see `vllm_notes`.
    """
    params = effective_parameters(variant)
    config: dict[str, Any] = {
        "do_sample": True,
        "temperature": params["temperature"],
        # vLLM: -1 disables top_k in every version (0 only in newer ones); Ollama uses 0.
        "top_k": params["top_k"] if params["top_k"] > 0 else -1,
        "top_p": params["top_p"],
        "min_p": params["min_p"],
        "repetition_penalty": params["repeat_penalty"] if penalty_window(params) > 0 else 1.0,
    }
    if params.get("num_predict", -1) > 0:
        config["max_new_tokens"] = params["num_predict"]
    # Stop strings that are single special tokens of the family become eos token ids.
    ids = variant.family.special_tokens
    eos = [ids[s] for s in params.get("stop") or [] if s in ids]
    if eos:
        config["eos_token_id"] = eos
    return config


def vllm_notes(variant: Variant) -> list[str]:
    """Where vLLM cannot reproduce the variant's Ollama settings exactly."""
    params = effective_parameters(variant)
    notes = []
    if params["repeat_penalty"] != 1.0 and penalty_window(params) > 0:
        notes.append(
            f"vLLM applies repetition_penalty {_num(params['repeat_penalty'])} over the "
            f"whole prompt and output, Ollama over the last {penalty_window(params)} "
            "tokens"
        )
    for name in ("presence_penalty", "frequency_penalty"):
        if params[name]:
            notes.append(
                f"vLLM reads no {name} from generation_config.json: send "
                f"{name}={_num(params[name])} with each request"
            )
    return notes


def vllm_files(catalog: Catalog, variant: Variant) -> dict[str, str]:
    """Name -> content of the files vLLM reads for `variant`."""
    return {
        "generation_config.json": json.dumps(vllm_generation_config(variant), indent=2) + "\n",
        "chat_template.jinja": render_variant(catalog, variant).hf_template,
    }


# `--manifest` choices: the file each one adds to the vLLM export.
VLLM_MANIFESTS = {"kubeai": "kubeai-model.yaml"}


def export_vllm(
    catalog: Catalog,
    variant: Variant | str,
    out_dir: Path,
    *,
    model: str | None = None,
    manifest: str | None = None,
) -> tuple[list[Path], str]:
    """Write `generation_config.json` and the chat template (and, with `manifest="kubeai"`, a
    KubeAI Model carrying both); return the written paths and the serve command. The model
    defaults to the family's published Hugging Face repository."""
    chosen = _variant(catalog, variant)
    model = model or chosen.family.vllm_model
    out_dir = Path(out_dir)
    files = vllm_files(catalog, chosen)
    if manifest is not None:
        files[_manifest_name(manifest)] = _manifest_text(catalog, chosen, model)
    paths = write_folder(out_dir, files)
    command = shlex.join(
        [
            "vllm",
            "serve",
            model,
            "--generation-config",
            str(out_dir),
            "--chat-template",
            str(out_dir / "chat_template.jinja"),
            "--max-model-len",
            str(chosen.parameters.num_ctx),
            "--reasoning-parser",
            chosen.family.vllm_reasoning_parser,
        ]
    )
    return paths, command


def _manifest_name(manifest: str) -> str:
    if manifest not in VLLM_MANIFESTS:
        raise InputError(
            f"unknown manifest {manifest!r} (known: {', '.join(VLLM_MANIFESTS)})",
            field="--manifest",
        )
    return VLLM_MANIFESTS[manifest]


def _manifest_text(catalog: Catalog, variant: Variant, model: str) -> str:
    return dump_yaml(
        kubeai_model(
            catalog,
            variant,
            model=model,
            files=vllm_files(catalog, variant),
            args=[
                f"--max-model-len={variant.parameters.num_ctx}",
                "--reasoning-parser=" + variant.family.vllm_reasoning_parser,
            ],
        )
    )
