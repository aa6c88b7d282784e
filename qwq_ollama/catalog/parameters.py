"""The PARAMETER names every supported Ollama release accepts, with their types and sane ranges.

Ollama stores whatever `/api/create` is sent and only complains (or silently ignores a key) when
the model is used, so the catalog is checked against this list before anything is registered.
Source: `api/types.go` (Options and Runner) at v0.24.0, v0.32.15 and v0.34.4, which agree on
every name here (0.32 adds draft_num_predict, which 0.24 does not know, so it is left out).
From 0.34.0 `/api/create` refuses `typical_p` (server/create.go), so a catalog that sets it is
refused up front for such a daemon (`refused_by`).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from qwq_ollama.facts import TYPICAL_P_REFUSED_SINCE, at_least

FloatUnit = Annotated[float, Field(ge=0.0, le=1.0)]


class Parameters(BaseModel):
    """One variant's PARAMETER block. Unset fields are left to Ollama's defaults."""

    model_config = ConfigDict(extra="forbid", strict=True)

    # Runner options: fixed when the model is loaded.
    num_ctx: Annotated[int, Field(gt=0, le=1 << 20)] | None = None
    num_batch: Annotated[int, Field(gt=0)] | None = None
    num_gpu: Annotated[int, Field(ge=-1)] | None = None
    main_gpu: Annotated[int, Field(ge=0)] | None = None
    use_mmap: bool | None = None
    num_thread: Annotated[int, Field(ge=0)] | None = None
    # Predict options: per request.
    num_keep: Annotated[int, Field(ge=-1)] | None = None
    seed: int | None = None
    num_predict: Annotated[int, Field(ge=-2)] | None = None
    top_k: Annotated[int, Field(ge=0)] | None = None
    top_p: FloatUnit | None = None
    min_p: FloatUnit | None = None
    typical_p: FloatUnit | None = None
    repeat_last_n: Annotated[int, Field(ge=-1)] | None = None
    temperature: Annotated[float, Field(ge=0.0, le=5.0)] | None = None
    repeat_penalty: Annotated[float, Field(gt=0.0, le=5.0)] | None = None
    presence_penalty: Annotated[float, Field(ge=-2.0, le=2.0)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2.0, le=2.0)] | None = None
    stop: list[Annotated[str, Field(min_length=1)]] | None = None

    @field_validator("stop")
    @classmethod
    def _distinct_stops(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("stop strings must be distinct")
        return value

    def as_dict(self) -> dict[str, Any]:
        """The set parameters in declaration order, as `/api/create` takes them."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


PARAMETER_NAMES: tuple[str, ...] = tuple(Parameters.model_fields)
INT_PARAMETERS = frozenset(
    {
        "num_ctx",
        "num_batch",
        "num_gpu",
        "main_gpu",
        "num_thread",
        "num_keep",
        "seed",
        "num_predict",
        "top_k",
        "repeat_last_n",
    }
)
LIST_PARAMETERS = frozenset({"stop"})

# Parameters a daemon from this release on refuses at /api/create with HTTP 400.
REFUSED_SINCE: dict[str, tuple[int, ...]] = {"typical_p": TYPICAL_P_REFUSED_SINCE}


def refused_by(parameters: dict[str, Any], daemon_version: str) -> list[str]:
    """The set parameters a daemon of `daemon_version` would refuse.

    >>> refused_by({"typical_p": 0.9, "top_k": 40}, "0.34.4"), refused_by({"typical_p": 0.9}, "0.32.15")
    (['typical_p'], [])
    """
    return [
        name
        for name, since in REFUSED_SINCE.items()
        if name in parameters and at_least(daemon_version, since)
    ]
