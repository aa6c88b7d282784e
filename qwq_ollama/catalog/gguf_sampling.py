"""Sampler defaults a GGUF carries (`general.sampling.*`), and which of them reach a variant.

From Ollama 0.33.3 the daemon reads these keys from the weights and applies them beneath the
Modelfile's PARAMETERs; `/api/show` lists only the PARAMETERs. So a variant that leaves a sampler
unset silently runs with the GGUF author's value (types/model/generation.go, server/images.go).
The catalog states every sampler (defaults.parameters), and `validate` and `doctor` name any
key that still gets through: one left open by a user's catalog, or `typ_p`, which a 0.34 daemon
applies from the GGUF but refuses as a PARAMETER.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qwq_ollama.catalog.parameters import refused_by
from qwq_ollama.facts import GGUF_SAMPLING_SINCE, at_least

SAMPLING_PREFIX = "general.sampling."
# GGUF key -> the Ollama option it fills (v0.34.4 types/model/generation.go).
GGUF_SAMPLING_KEYS = {
    "general.sampling.top_k": "top_k",
    "general.sampling.top_p": "top_p",
    "general.sampling.min_p": "min_p",
    "general.sampling.typ_p": "typical_p",
    "general.sampling.temp": "temperature",
    "general.sampling.penalty_last_n": "repeat_last_n",
    "general.sampling.penalty_repeat": "repeat_penalty",
    "general.sampling.penalty_present": "presence_penalty",
    "general.sampling.penalty_freq": "frequency_penalty",
}
SAMPLER_OPTIONS = tuple(GGUF_SAMPLING_KEYS.values())
# What Ollama uses when neither the Modelfile nor the GGUF sets one (api/types.go
# DefaultOptions): a GGUF value equal to these changes nothing.
OLLAMA_DEFAULTS = {
    "top_k": 40,
    "top_p": 0.9,
    "min_p": 0.0,
    "typical_p": 1.0,
    "temperature": 0.8,
    "repeat_last_n": 64,
    "repeat_penalty": 1.1,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
}


def sampling_keys(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The `general.sampling.*` entries of a GGUF's metadata (or /api/show's model_info)."""
    return {k: v for k, v in metadata.items() if k.startswith(SAMPLING_PREFIX)}


def leaks(
    parameters: Mapping[str, Any], metadata: Mapping[str, Any], daemon_version: str
) -> list[str]:
    """Each GGUF sampler default a daemon of this version applies to a variant with these
    PARAMETERs, as a sentence with its fix; empty before 0.33.3.

    >>> leaks({"temperature": 0.6}, {"general.sampling.temp": 1.9,
    ...       "general.sampling.penalty_last_n": 7}, "0.34.4")  # doctest: +ELLIPSIS
    ['the GGUF sets general.sampling.penalty_last_n = 7, which becomes repeat_last_n ...']
    """
    if not at_least(daemon_version, GGUF_SAMPLING_SINCE):
        return []
    found = []
    for key, value in sampling_keys(metadata).items():
        option = GGUF_SAMPLING_KEYS.get(key)
        if option is None or option in parameters or _same(value, OLLAMA_DEFAULTS[option]):
            continue
        if refused_by({option: value}, daemon_version):
            found.append(
                f"the GGUF sets {key} = {value}, which becomes {option} because "
                f"Ollama {daemon_version} refuses {option} as a PARAMETER; use a GGUF "
                f"without that key"
            )
        else:
            found.append(
                f"the GGUF sets {key} = {value}, which becomes {option} because the "
                f"variant leaves it unset; set parameters.{option} in the catalog"
            )
    return found


def _same(value: Any, default: float) -> bool:
    try:
        return abs(float(value) - default) < 1e-6
    except (TypeError, ValueError):
        return False
