"""Template families: one prompt format and everything that goes with it, declared as data.

A family is a folder under the catalog's `templates:` folder holding `family.yaml` and the two
Jinja sources (the Hugging Face chat template and the Ollama TEMPLATE). `family.yaml` says what
the code must not guess: the think tags and how thinking is switched (a `<think>` prefill,
Qwen3's `enable_thinking`, or nothing), the stop strings and special tokens, the sampling the
model's authors publish, the official template the sources must reproduce, and the divergences
an Ollama Go template is allowed. Adding a family is a folder of data and templates: nothing in
checks/, daemon/ or engines/ names one.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from qwq_ollama.catalog.conversation import CONDITIONS, EXPECTATIONS, Conversation
from qwq_ollama.catalog.load import load_yaml_with_lines, located_validation_error
from qwq_ollama.catalog.parameters import Parameters
from qwq_ollama.errors import InputError

FAMILY_FILE = "family.yaml"
TEMPLATE_FILES = ("chat_template.jinja.j2", "ollama.gotmpl.j2")
Switch = Literal["prefill", "enable_thinking", "none"]
# What qwq-ollama does with a client's thinking request (docs/thinking.md): `switch` gives the
# mode asked for, `ignore` keeps the variant's own mode (and says why), `refuse` refuses it.
Action = Literal["switch", "ignore", "refuse"]
# The requests a client can send: Ollama's `think` (true/false), and `reasoning_effort` on
# /v1/chat/completions, which every pinned Ollama turns into think=false (none) or
# think=<level> (openai/openai.go).
THINK_REQUESTS = (
    "think_on",
    "think_off",
    "effort_none",
    "effort_low",
    "effort_medium",
    "effort_high",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class DivergenceSpec(_Strict):
    key: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    when: str
    reason: str = Field(min_length=1)
    # How the engine transforms the conversation: its prompt must equal, byte for byte, the
    # official rendering of the transformed one (catalog/conversation.py). There is no mask:
    # a span hidden from the comparison would hide a regression in it too.
    expect: str

    @field_validator("expect")
    @classmethod
    def _known_expectation(cls, value: str) -> str:
        if value not in EXPECTATIONS:
            raise ValueError(f"unknown expectation (known: {', '.join(EXPECTATIONS)})")
        return value

    @field_validator("when")
    @classmethod
    def _known_condition(cls, value: str) -> str:
        if value not in CONDITIONS:
            raise ValueError(f"unknown condition (known: {', '.join(CONDITIONS)})")
        return value


class ThinkingSpec(_Strict):
    switch: Switch
    open: str = Field(default="<think>", min_length=1)
    close: str = Field(default="</think>", min_length=1)
    prefill: str | None = None  # appended to the generation prompt when a variant prefills
    no_thinking: str | None = None  # appended when enable_thinking is false


class RequestSpec(_Strict):
    does: Action
    why: str | None = Field(default=None, min_length=1)


class ThinkRequestsSpec(_Strict):
    think_on: RequestSpec
    think_off: RequestSpec
    effort_none: RequestSpec
    effort_low: RequestSpec
    effort_medium: RequestSpec
    effort_high: RequestSpec


class OfficialSpec(_Strict):
    published_as: str = Field(min_length=1)
    file: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class VllmSpec(_Strict):
    model: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
    reasoning_parser: str = Field(min_length=1)


class FamilySpec(_Strict):
    description: str = Field(min_length=1)
    official: OfficialSpec
    architectures: list[str] = Field(min_length=1)
    generation_prompt: str = Field(min_length=1)
    thinking: ThinkingSpec
    stop: list[str] = Field(min_length=1)
    special_tokens: dict[str, int] = Field(min_length=1)
    bos_token: str | None = None  # what the template receives as `bos_token`, if it has one
    sampling: Parameters
    sampling_without_thinking: Parameters | None = None
    vllm: VllmSpec
    divergences: list[DivergenceSpec] = []
    think_requests: ThinkRequestsSpec
    early_stop: str = Field(min_length=1)


@dataclass(frozen=True)
class ThinkRequest:
    """What one thinking request does for a family or variant, and why (for ignore/refuse)."""

    request: str  # one of THINK_REQUESTS
    does: Action
    why: str = ""

    @property
    def wants_thinking(self) -> bool:
        """The mode the client asks for: off for think_off and effort_none, on otherwise."""
        return self.request not in ("think_off", "effort_none")


@dataclass(frozen=True)
class Divergence:
    """A way an engine's prompt may differ from the official one, and why: it applies to the
    conversations its condition names, and `expect` names the exact prompt it must then be."""

    key: str
    reason: str
    when: str
    expect: str
    bos_token: str = ""  # the family's, for an expectation that leaves it to the tokenizer

    def applies(self, conversation: Conversation) -> bool:
        return CONDITIONS[self.when](conversation)


@dataclass(frozen=True)
class Family:
    """A resolved family: `family.yaml` read and checked, with its folder."""

    name: str
    folder: Path
    description: str
    official_file: Path
    official_sha256: str
    published_as: str
    architectures: tuple[str, ...]
    assistant_header: str
    switch: Switch
    think_open: str
    think_close: str
    prefill_text: str
    off_text: str
    stop: tuple[str, ...]
    special_tokens: dict[str, int]
    bos_token: str | None
    sampling: Parameters
    sampling_without_thinking: Parameters
    vllm_model: str
    vllm_reasoning_parser: str
    divergences: tuple[Divergence, ...]
    think_requests: dict[str, ThinkRequest]
    early_stop: str

    @property
    def early_stop_message(self) -> str:
        """The family's early-stop sentence as it follows the thinking, before the close tag
        (what llama-server's --reasoning-budget-message takes: it adds the tag itself)."""
        return f"\n\n{self.early_stop}\n"

    def early_stop_text(self) -> str:
        """What ends the reasoning at a budget: the family's sentence, then its close tag, as
        the model would write them, so that the answer follows."""
        return f"{self.early_stop_message}{self.think_close}\n\n"

    def generation_prompt(self, *, prefill: bool, thinking: bool) -> str:
        """What the template appends for `add_generation_prompt` in this family."""
        text = self.assistant_header
        if self.switch == "prefill" and prefill:
            text += self.prefill_text
        if self.switch == "enable_thinking" and not thinking:
            text += self.off_text
        return text

    @property
    def template_tokens(self) -> dict[str, str]:
        """The special-token variables a tokenizer of this family passes its chat template."""
        return {} if self.bos_token is None else {"bos_token": self.bos_token}

    def published_sampling(self, *, thinking: bool) -> dict[str, object]:
        """The authors' sampling and the family's stops, beneath whatever a catalog sets."""
        sampling = self.sampling if thinking else self.sampling_without_thinking
        return {**sampling.as_dict(), "stop": list(self.stop)}


def family_names(templates_dir: Path) -> list[str]:
    """The folders under `templates_dir` that declare a family."""
    return sorted(p.parent.name for p in Path(templates_dir).glob(f"*/{FAMILY_FILE}"))


@functools.lru_cache(maxsize=32)
def _load(folder: Path, mtime_ns: int) -> Family:
    del mtime_ns  # part of the cache key only: an edited family.yaml is read again
    file = folder / FAMILY_FILE
    located = load_yaml_with_lines(file)
    if not isinstance(located.data, dict):
        raise located.error("a family file must be a mapping", ())
    for number, divergence in enumerate(located.data.get("divergences") or []):
        if isinstance(divergence, dict) and "mask" in divergence:
            raise located.error(
                "masks are refused: a hidden span would hide a regression in it too; name "
                "the exact prompt the engine builds with `expect`",
                ("divergences", number, "mask"),
            )
    try:
        spec = FamilySpec.model_validate(located.data)
    except ValidationError as exc:
        raise located_validation_error(exc, located) from None
    thinking = spec.thinking
    needs = {"prefill": "prefill", "enable_thinking": "no_thinking"}.get(thinking.switch)
    if needs is not None and getattr(thinking, needs) is None:
        raise located.error(
            f"switch {thinking.switch} needs `{needs}`: the text it adds to the generation prompt",
            ("thinking", "switch"),
        )
    if (thinking.switch == "enable_thinking") != (spec.sampling_without_thinking is not None):
        raise located.error(
            "sampling_without_thinking is given exactly when the switch is enable_thinking",
            ("thinking", "switch"),
        )
    if any(not t.strip() for t in spec.stop):
        raise located.error("a stop string must not be blank", ("stop",))
    requests: dict[str, ThinkRequest] = {}
    for request in THINK_REQUESTS:
        declared: RequestSpec = getattr(spec.think_requests, request)
        if declared.does != "switch" and declared.why is None:
            raise located.error(
                f"`{declared.does}` needs `why`: what the user gets instead",
                ("think_requests", request, "does"),
            )
        turns_off = request in ("think_off", "effort_none")
        if declared.does == "switch" and thinking.switch == (
            "none" if not turns_off else "prefill"
        ):
            raise located.error(
                f"switch {thinking.switch} cannot turn thinking "
                f"{'off' if turns_off else 'on'}: declare ignore or refuse",
                ("think_requests", request, "does"),
            )
        requests[request] = ThinkRequest(request, declared.does, declared.why or "")
    divergences = tuple(
        Divergence(d.key, d.reason, d.when, d.expect, spec.bos_token or "")
        for d in spec.divergences
    )
    keys = [d.key for d in divergences]
    repeated = next((k for k in keys if keys.count(k) > 1), None)
    if repeated is not None:
        raise located.error(f"divergence {repeated!r} is declared twice", ("divergences",))
    return Family(
        name=folder.name,
        folder=folder,
        description=spec.description,
        official_file=(folder / spec.official.file).resolve(),
        official_sha256=spec.official.sha256,
        published_as=spec.official.published_as,
        architectures=tuple(spec.architectures),
        assistant_header=spec.generation_prompt,
        switch=thinking.switch,
        think_open=thinking.open,
        think_close=thinking.close,
        prefill_text=thinking.prefill or "",
        off_text=thinking.no_thinking or "",
        stop=tuple(spec.stop),
        special_tokens=dict(spec.special_tokens),
        bos_token=spec.bos_token,
        sampling=spec.sampling,
        sampling_without_thinking=spec.sampling_without_thinking or spec.sampling,
        vllm_model=spec.vllm.model,
        vllm_reasoning_parser=spec.vllm.reasoning_parser,
        divergences=divergences,
        think_requests=requests,
        early_stop=spec.early_stop,
    )


def load_family(folder: Path) -> Family:
    """The family declared in `folder` (its templates checked present); one InputError naming
    file:line and field for anything wrong."""
    folder = Path(folder).resolve()
    file = folder / FAMILY_FILE
    try:
        mtime = file.stat().st_mtime_ns
    except FileNotFoundError:
        raise InputError(f"not a template family: {FAMILY_FILE} is missing", file=file) from None
    missing = [f for f in TEMPLATE_FILES if not (folder / f).is_file()]
    if missing:
        raise InputError(
            f"template family {folder.name!r} lacks {', '.join(missing)}", file=folder / missing[0]
        )
    return _load(folder, mtime)
