"""The catalog `modelfiles/models.yaml`: weights and model variants, validated on load.

It is the single source of truth: templates, Modelfiles and registered models all derive from it.
Shared settings live in `defaults` (and `extends` chains), so no variant repeats another.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from qwq_ollama.catalog.family import TEMPLATE_FILES, Family, ThinkRequest, load_family
from qwq_ollama.catalog.load import (
    KeyPath,
    LocatedYaml,
    load_yaml_with_lines,
    located_validation_error,
)
from qwq_ollama.catalog.parameters import Parameters
from qwq_ollama.errors import InputError
from qwq_ollama.paths import default_catalog_path
from qwq_ollama.redaction import redact

# Ollama's model-name rule (types/model/name.go), narrowed to lower case so names never collide
# on case-insensitive file systems and never contain a path separator.
NAME_PATTERN = re.compile(r"^[a-z0-9_][a-z0-9_.-]{0,79}$")
# An Ollama model reference, [host/][namespace/]model[:tag], by the part rules of
# types/model/name.go (v0.24.0): what `ollama pull` and a Modelfile's FROM accept.
_PART = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}"
# A host only in front of a namespace: of two parts, Ollama reads the first as the namespace,
# where ':' is not allowed (`0:/0` is refused; found by the Modelfile-injection property test).
_NAMESPACE = r"[A-Za-z0-9_][A-Za-z0-9_-]{0,79}"
OLLAMA_REF = re.compile(
    rf"(?:(?:[A-Za-z0-9_][A-Za-z0-9_.:-]{{0,349}}/)?{_NAMESPACE}/)?"
    rf"{_PART}(?::{_PART})?"
)


def _control_character(text: str) -> str | None:
    """The first control character or line/paragraph separator in `text` (tab allowed)."""
    return next(
        (ch for ch in text if ch != "\t" and unicodedata.category(ch) in ("Cc", "Zl", "Zp")), None
    )


def _one_line(text: str) -> str:
    """A description lands in comments (a Modelfile's header, an exported script's), where a
    line break would end the comment and start a command."""
    bad = _control_character(text)
    if bad is not None:
        raise ValueError(f"must be one line of text, without {ascii(bad)}")
    return text


def _ollama_ref(text: str) -> str:
    """FROM takes the reference bare: anything else would be refused, or read as more."""
    if not OLLAMA_REF.fullmatch(text):
        raise ValueError(
            "is not an Ollama model name: [host/][namespace/]model[:tag], each "
            "part letters, digits, '_', '-', '.'"
        )
    return text


def _plain_path(text: str) -> str:
    """A path lands in a Modelfile's FROM and in messages; no file name needs control codes."""
    bad = _control_character(text)
    if bad is not None:
        raise ValueError(f"a path must not contain {ascii(bad)}")
    return text


OneLine = Annotated[str, AfterValidator(_one_line)]
OllamaRef = Annotated[str, AfterValidator(_ollama_ref)]
PathText = Annotated[str, Field(min_length=1), AfterValidator(_plain_path)]


class HFSource(BaseModel):
    """A GGUF in a Hugging Face repository, picked by quantisation."""

    model_config = ConfigDict(extra="forbid", strict=True)
    repo: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
    quant: str = Field(default="Q4_K_M", pattern=r"^[A-Za-z0-9_]+$")


class WeightsSpec(BaseModel):
    """Where a model's weights come from: exactly one source."""

    model_config = ConfigDict(extra="forbid", strict=True)
    description: OneLine | None = None
    gguf: PathText | None = None
    hf: HFSource | None = None
    ollama: OllamaRef | None = None
    builtin: Literal["smollm2-135m"] | None = None
    license: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> WeightsSpec:
        given = [k for k in ("gguf", "hf", "ollama", "builtin") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of gguf, hf, ollama, builtin"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self


class VariantSpec(BaseModel):
    """A variant as written: every field optional, filled from `extends` and `defaults`."""

    model_config = ConfigDict(extra="forbid", strict=True)
    description: OneLine | None = None
    extends: str | None = None
    weights: str | None = None
    template: str | None = None
    # Who opens the reasoning, for families switched by a prefill (QwQ, DeepSeek-R1).
    think_prefill: bool | None = None
    # Whether the model reasons, for families switched by enable_thinking (Qwen3).
    enable_thinking: bool | None = None
    # Cap the reasoning at this many tokens, then end it with the family's early-stop text so
    # the model answers (docs/thinking.md): llama-server and LM Studio get it in their export;
    # on Ollama, which has no budget, `chat`, `compare` and `validate` enforce it.
    think_budget: Annotated[int, Field(gt=0, le=1 << 20)] | None = None
    # Which template a daemon must build the prompt with. From Ollama 0.30 on a daemon may
    # render the GGUF's own chat template instead of the Modelfile TEMPLATE; only our verified
    # Go TEMPLATE is a choice today (docs/fidelity.md says why), and validate checks it holds.
    template_source: Literal["go_template"] | None = None
    # Ollama's built-in output parser (Modelfile PARSER) in place of the ones it derives from
    # the TEMPLATE; only where it was measured better (docs/oracles.md: the prefilled variants).
    parser: Literal["qwen3-thinking"] | None = None
    system: str | None = Field(default=None, min_length=1)
    parameters: Parameters | None = None


class CatalogSpec(BaseModel):
    """The whole file."""

    model_config = ConfigDict(extra="forbid", strict=True)
    templates: PathText = "../templates"
    weights: dict[str, WeightsSpec]
    defaults: VariantSpec = VariantSpec()
    variants: dict[str, VariantSpec] = Field(min_length=1)
    default_variants: list[str] | None = Field(
        default=None,
        min_length=1,
        description="What `create` registers when named none (`make models`), and what every "
        "command taking variant names then works on; default: every variant.",
    )


@dataclass(frozen=True)
class Weights:
    """Resolved weights: `source` says which field of the spec applies."""

    name: str
    source: Literal["gguf", "hf", "ollama", "builtin"]
    gguf_path: Path | None = None
    hf_repo: str | None = None
    hf_quant: str | None = None
    ollama_ref: str | None = None
    license: str | None = None
    description: str | None = None

    @property
    def file_on_disk(self) -> Path | None:
        """The GGUF, if these weights are a local file that exists now (no download needed)."""
        if self.source == "gguf":
            path = self.gguf_path
        elif self.source == "builtin":
            from qwq_ollama.catalog.builtin_weights import smollm2_path

            path = smollm2_path()
        else:
            return None
        return path if path is not None and path.is_file() else None

    @property
    def modelfile_from(self) -> str:
        """What a hand-run `ollama create -f` should see after FROM."""
        if self.source == "hf":
            return f"hf.co/{self.hf_repo}:{self.hf_quant}"
        if self.source == "ollama":
            return str(self.ollama_ref)
        if self.source == "gguf":
            return str(self.gguf_path)
        from qwq_ollama.catalog.builtin_weights import smollm2_path

        return str(smollm2_path())


@dataclass(frozen=True)
class Variant:
    """A fully resolved variant, ready to render and register."""

    name: str
    description: str
    weights: str
    template: str
    think_prefill: bool
    system: str | None
    parameters: Parameters
    line: int | None
    family: Family
    enable_thinking: bool = True
    template_source: str = "go_template"
    think_budget: int | None = None
    parser: str | None = None  # a built-in Ollama parser (Modelfile PARSER); None: the TEMPLATE's

    @property
    def generation_prompt(self) -> str:
        return self.family.generation_prompt(
            prefill=self.think_prefill, thinking=self.enable_thinking
        )

    def think_request(self, request: str) -> ThinkRequest:
        """What a client's thinking request (family.THINK_REQUESTS) does for this variant: the
        family's declaration, except that a variant with thinking off in its template keeps it
        off whatever is asked."""
        declared = self.family.think_requests[request]
        if declared.does != "refuse" and declared.wants_thinking and not self.enable_thinking:
            return ThinkRequest(
                request,
                "ignore",
                f"{self.name} has thinking off in its "
                "template; a variant with enable_thinking true reasons",
            )
        return declared

    @property
    def prefills_reasoning(self) -> bool:
        """The generation prompt opens the reasoning, so every answer must arrive as thinking
        first."""
        return self.family.switch == "prefill" and self.think_prefill


@dataclass(frozen=True)
class Catalog:
    path: Path
    templates_dir: Path
    weights: dict[str, Weights]
    variants: dict[str, Variant]
    located: LocatedYaml
    default_names: tuple[str, ...] = ()  # the default set; empty: every variant

    def variant(self, name: str) -> Variant:
        try:
            return self.variants[name]
        except KeyError:
            # a URL given where a name belongs (plan URL, not --gguf URL) is shown redacted
            raise self.error(
                f"unknown variant {redact(name)!r} (known: {', '.join(self.variants)})"
            ) from None

    def chosen(self, names: Sequence[str] | None = None) -> list[Variant]:
        """The variants `names` names, else the default set (`default_variants`): what `create`
        registers when named none, so that every command named none works on just those."""
        return [self.variant(n) for n in (names or self.default_names or self.variants)]

    def weights_named(self, name: str) -> Weights:
        try:
            return self.weights[name]
        except KeyError:
            raise self.error(
                f"unknown weights {redact(name)!r} (known: {', '.join(self.weights)})"
            ) from None

    @property
    def families(self) -> dict[str, Family]:
        """The template families the variants use, by folder name."""
        return {v.template: v.family for v in self.variants.values()}

    def weights_of(self, names: list[str] | None, weights_name: str | None = None) -> list[Weights]:
        """The weights these variants (default: the default set) are registered over, each
        once."""
        chosen = [weights_name or v.weights for v in self.chosen(names)]
        return [self.weights_named(w) for w in dict.fromkeys(chosen)]

    def line_of(self, *path: str | int) -> int | None:
        return self.located.line_of(tuple(path))

    def error(self, message: str, *key: str | int) -> InputError:
        """Bad input at a place in this catalog: its file, and the line and field of `key`
        (`"weights", name, "gguf"`) when one is given. The one way such an error is built."""
        if not key:
            return InputError(message, file=self.path)
        return InputError(
            message, file=self.path, line=self.line_of(*key), field=".".join(str(k) for k in key)
        )

    def parameter_error(self, variant: str, parameter: str, message: str) -> InputError:
        """Bad input at the line that sets a variant's parameter (the variant's own, else the
        defaults'), naming that field."""
        for key in (
            ("variants", variant, "parameters", parameter),
            ("defaults", "parameters", parameter),
            ("variants", variant),
        ):
            if key in self.located.lines:
                return self.error(message, *key)
        return self.error(message, "variants", variant)


def load_catalog(path: str | os.PathLike[str] | None = None) -> Catalog:
    """Load, validate and resolve; any problem is one InputError naming file:line and field."""
    file = Path(path) if path is not None else default_catalog_path()
    located = load_yaml_with_lines(file)
    if not isinstance(located.data, dict):
        raise located.error("the catalog must be a mapping with weights and variants", ())
    try:
        spec = CatalogSpec.model_validate(located.data)
    except ValidationError as exc:
        raise located_validation_error(exc, located) from None
    templates_dir = (file.parent / spec.templates).resolve()
    weights = {name: _resolve_weights(name, w, file, located) for name, w in spec.weights.items()}
    variants = {
        name: _resolve_variant(name, spec, templates_dir, weights, located)
        for name in spec.variants
    }
    for i, name in enumerate(spec.default_variants or ()):
        if name not in variants:
            raise located.error(
                f"unknown variant {name!r} (known: {', '.join(variants)})", ("default_variants", i)
            )
    return Catalog(
        file,
        templates_dir,
        weights,
        variants,
        located,
        tuple(dict.fromkeys(spec.default_variants or ())),
    )


def _check_name(kind: str, name: str, located: LocatedYaml, path: KeyPath) -> None:
    if not NAME_PATTERN.fullmatch(name):
        raise located.error(
            f"{kind} name {name!r} is not a valid Ollama model name: use lower-case letters, "
            "digits, '_', '-', '.', starting with a letter, digit or '_', at most 80 characters",
            path,
        )


def _resolve_weights(name: str, spec: WeightsSpec, file: Path, located: LocatedYaml) -> Weights:
    _check_name("weights", name, located, ("weights", name))
    if spec.gguf is not None:
        path = Path(os.path.expanduser(spec.gguf))
        if not path.is_absolute():
            path = (file.parent / path).resolve()
        return Weights(
            name, "gguf", gguf_path=path, license=spec.license, description=spec.description
        )
    if spec.hf is not None:
        return Weights(
            name,
            "hf",
            hf_repo=spec.hf.repo,
            hf_quant=spec.hf.quant,
            license=spec.license,
            description=spec.description,
        )
    if spec.ollama is not None:
        return Weights(
            name,
            "ollama",
            ollama_ref=spec.ollama,
            license=spec.license,
            description=spec.description,
        )
    return Weights(name, "builtin", license=spec.license, description=spec.description)


def _chain(name: str, spec: CatalogSpec, located: LocatedYaml) -> list[tuple[str, VariantSpec]]:
    """The variant, then what it extends, and so on (nearest first)."""
    chain: list[tuple[str, VariantSpec]] = []
    current: str | None = name
    while current is not None:
        if current in (n for n, _ in chain):
            raise located.error(
                f"extends forms a cycle: {' -> '.join(n for n, _ in chain)} -> {current}",
                ("variants", name, "extends"),
            )
        chain.append((current, spec.variants[current]))
        parent = spec.variants[current].extends
        if parent is not None and parent not in spec.variants:
            raise located.error(
                f"extends unknown variant {parent!r}", ("variants", current, "extends")
            )
        current = parent
    return chain


def _resolve_variant(
    name: str,
    spec: CatalogSpec,
    templates_dir: Path,
    weights: dict[str, Weights],
    located: LocatedYaml,
) -> Variant:
    where: KeyPath = ("variants", name)
    _check_name("variant", name, located, where)
    layers: list[tuple[KeyPath, VariantSpec]] = [(("defaults",), spec.defaults)]
    layers += [(("variants", n), v) for n, v in reversed(_chain(name, spec, located))]
    merged: dict[str, Any] = {}
    origin: dict[str, KeyPath] = {}  # where each field's value was written, for errors
    params: dict[str, Any] = {}
    for place, layer in layers:
        values = layer.model_dump(exclude_none=True, exclude={"parameters", "extends"})
        merged.update(values)
        origin.update({key: (*place, key) for key in values})
        if layer.parameters is not None:
            params.update(layer.parameters.as_dict())
    for field in ("weights", "template"):
        if field not in merged:
            raise located.error(f"no {field}: set it here or in defaults", where)
    used_by = "" if origin["weights"][:2] == where else f" (used by variant {name})"
    if merged["weights"] not in weights:
        raise located.error(
            f"names unknown weights {merged['weights']!r}{used_by} (known: {', '.join(weights)})",
            origin["weights"],
        )
    family_dir = (templates_dir / merged["template"]).resolve()
    if not family_dir.is_relative_to(templates_dir) or family_dir == templates_dir:
        raise located.error(
            f"template {merged['template']!r} must name a folder inside {templates_dir}",
            origin["template"],
        )
    missing = [f for f in TEMPLATE_FILES if not (family_dir / f).is_file()]
    if missing:
        raise located.error(
            f"template {merged['template']!r} not found: expected "
            f"{', '.join(str(family_dir / f) for f in missing)}",
            origin["template"],
        )
    family = load_family(family_dir)
    switched = _thinking_fields(name, family, spec, located, origin)
    params = {**family.published_sampling(thinking=switched["enable_thinking"]), **params}
    if "num_ctx" not in params:
        raise located.error(
            "num_ctx must be set: Ollama's default context (4096 without a large "
            "GPU) silently truncates long reasoning",
            (*where, "parameters"),
        )
    if "parser" in merged and not (family.switch == "prefill" and switched["think_prefill"]):
        raise located.error(
            f"parser {merged['parser']} needs a prompt that opens the reasoning (think_prefill "
            "true): it files an answer written without <think> as thinking (docs/oracles.md)",
            origin["parser"],
        )
    return Variant(
        name=name,
        description=merged.get("description", ""),
        weights=merged["weights"],
        template=merged["template"],
        think_prefill=switched["think_prefill"],
        system=merged.get("system"),
        parameters=Parameters.model_validate(params),
        line=located.line_of(where),
        family=family,
        enable_thinking=switched["enable_thinking"],
        template_source=merged.get("template_source", "go_template"),
        think_budget=_think_budget(merged.get("think_budget"), family, switched, located, origin),
        parser=merged.get("parser"),
    )


def _think_budget(
    budget: int | None,
    family: Family,
    switched: dict[str, bool],
    located: LocatedYaml,
    origin: dict[str, KeyPath],
) -> int | None:
    """A budget only where the model reasons: one on a variant with thinking off is refused."""
    if budget is None:
        return None
    if family.switch == "none" or not switched["enable_thinking"]:
        if origin["think_budget"][0] == "defaults":
            return None  # defaults budget the variants that reason
        raise located.error(
            "think_budget needs a variant that reasons (this one has thinking off)",
            origin["think_budget"],
        )
    return budget


# Each thinking field belongs to one kind of family switch.
_SWITCH_OF_FIELD = {"think_prefill": "prefill", "enable_thinking": "enable_thinking"}


def _thinking_fields(
    name: str, family: Family, spec: CatalogSpec, located: LocatedYaml, origin: dict[str, KeyPath]
) -> dict[str, bool]:
    """think_prefill and enable_thinking as this family reads them. A variant that sets one its
    family has no use for is refused; `defaults` may set both, each for the families it fits."""
    values = {"think_prefill": True, "enable_thinking": True}
    for field, switch in _SWITCH_OF_FIELD.items():
        if field not in origin:
            continue
        if family.switch == switch:
            values[field] = getattr(_layer(spec, origin[field]), field)
        elif origin[field][0] == "variants":
            raise located.error(
                f"{field} does not apply to template family {family.name!r}, "
                f"whose thinking switch is {family.switch} (variant {name})",
                origin[field],
            )
    return values


def _layer(spec: CatalogSpec, place: KeyPath) -> VariantSpec:
    return spec.defaults if place[0] == "defaults" else spec.variants[str(place[1])]
