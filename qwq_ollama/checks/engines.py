"""Which engine a command runs on, opening it, and which checks apply there: decided here once,
for `prompt`, `validate` and `compare`, with one wording for every refusal.

The engines: `hf` (the catalog's Hugging Face template, rendered here; prompts only), `ollama`
(a daemon at --host) and `llama-cpp` (a llama-server per variant: a running one at
--llama-server, or a private one started over --gguf).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from qwq_ollama.catalog.conversation import Conversation
from qwq_ollama.catalog.prompts import NamedPrompt
from qwq_ollama.catalog.schema import Catalog, Variant
from qwq_ollama.checks.ab import RunStats
from qwq_ollama.checks.validate import ValidationReport
from qwq_ollama.daemon.chat_engine import ChatEngine
from qwq_ollama.errors import InputError

if TYPE_CHECKING:
    from qwq_ollama.engines.llama_server import LlamaServerAPI

PROMPT_ENGINES = ("hf", "ollama", "llama-cpp")
LIVE_ENGINES = ("ollama", "llama-cpp")  # the ones that generate: validate and compare
ENGINE_LABEL = {"ollama": "ollama", "llama-cpp": "llama.cpp"}  # as compare's table says it


def _listed(names: tuple[str, ...]) -> str:
    return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]


def engine_named(
    name: str, allowed: tuple[str, ...] = LIVE_ENGINES, option: str = "--engine"
) -> str:
    """`name` if it is one of `allowed`; the one refusal every command words alike.

    >>> engine_named("vllm")
    Traceback (most recent call last):
    qwq_ollama.errors.InputError: --engine: unknown engine 'vllm': use ollama or llama-cpp
    """
    if name not in allowed:
        raise InputError(f"unknown engine {name!r}: use {_listed(allowed)}", field=option)
    return name


def engines_named(text: str) -> list[str]:
    """compare's comma-separated --engines, each known, in the order given."""
    chosen = [e.strip() for e in text.split(",") if e.strip()] or [""]
    return [engine_named(e, LIVE_ENGINES, "--engines") for e in dict.fromkeys(chosen)]


def checks_for(engine: str, asked: str | None) -> tuple[str, ...]:
    """The checks asked for (comma-separated), each known to the engine; its defaults if none.

    >>> checks_for("ollama", None)
    ('fidelity', 'registration', 'thinking', 'generation')
    >>> checks_for("llama-cpp", "registration")
    Traceback (most recent call last):
    qwq_ollama.errors.InputError: --checks: unknown check 'registration' for llama-cpp (known: fidelity, settings, context, generation, code)
    """
    if engine_named(engine) == "llama-cpp":
        from qwq_ollama.checks.llama_cpp import CHECKS, DEFAULT_CHECKS
    else:
        from qwq_ollama.checks.validate import CHECKS, DEFAULT_CHECKS
    chosen = tuple(c.strip() for c in (asked or "").split(",") if c.strip()) or DEFAULT_CHECKS
    unknown = [c for c in chosen if c not in CHECKS]
    if unknown:
        raise InputError(
            f"unknown check {unknown[0]!r} for {engine} (known: {', '.join(CHECKS)})",
            field="--checks",
        )
    return chosen


@dataclass(frozen=True)
class EngineChoice:
    """Where each engine is: the daemon for `ollama`, the llama-server or GGUF for `llama-cpp`."""

    host: str | None = None
    llama_server: str | None = None
    gguf: Path | None = None
    timeout: float = 600.0

    def check(
        self, engines: list[str], variants: list[str] | None, weights: str | None = None
    ) -> None:
        """Refuse, before any work, a llama-cpp run that lacks its server or names the wrong
        number of variants for one running server."""
        if "llama-cpp" not in engines:
            return
        from qwq_ollama.engines.llama_server import check_server_choice

        check_server_choice(self.llama_server, self.gguf, variants)
        if weights:
            raise InputError(
                "--weights is for Ollama; on llama.cpp give the GGUF with --gguf", field="--weights"
            )

    @contextmanager
    def open(self, engine: str, catalog: Catalog, variant: Variant) -> Iterator[ChatEngine]:
        """The engine serving `variant`: the daemon (checked to be a supported release), or a
        llama-server running it (a private one is stopped on leaving)."""
        if engine_named(engine) == "ollama":
            from qwq_ollama.daemon.client import OllamaAPI

            api = OllamaAPI(self.host, timeout=self.timeout)
            api.supported_version()
            yield api
            return
        with self.llama_server_for(catalog, variant) as server:
            yield server

    def llama_server_for(
        self, catalog: Catalog, variant: Variant
    ) -> AbstractContextManager[LlamaServerAPI]:
        """The llama-server running `variant` (its settings and props, beyond a ChatEngine)."""
        from qwq_ollama.engines.variant_server import serve_variant

        return serve_variant(
            catalog, variant, url=self.llama_server, gguf=self.gguf, timeout=self.timeout
        )


def prompt_on(
    engine: str, where: EngineChoice, catalog: Catalog, variant: Variant, conversation: Conversation
) -> str:
    """The prompt, byte for byte, that `engine` builds for a conversation with `variant`."""
    if engine_named(engine, PROMPT_ENGINES) == "hf":
        from qwq_ollama.catalog.render import hf_prompter

        return hf_prompter(catalog, variant)(conversation.messages, conversation.tools)
    where.check([engine], [variant.name])
    with where.open(engine, catalog, variant) as api:
        return api.render_prompt(variant.name, conversation.messages, conversation.tools)


@dataclass(frozen=True)
class ValidateOptions:
    """What a validate run checks, and how: the same on one daemon, a llama-server or a fleet."""

    checks: tuple[str, ...]
    weights: str | None = None  # Ollama only: register/check over these catalog weights
    num_predict: int = 256
    code_prompt: str = "flappy-bird"
    seed: int | None = None

    def generation(self) -> dict[str, object]:
        """The options every engine's validate takes alike."""
        return {
            "checks": self.checks,
            "num_predict": self.num_predict,
            "code_prompt": self.code_prompt,
            "seed": self.seed,
        }


def validate_on(
    engine: str,
    where: EngineChoice,
    catalog: Catalog,
    variants: list[str] | None,
    report: ValidationReport,
    options: ValidateOptions,
    progress: Callable[[str], None],
) -> ValidationReport:
    """validate on one engine; findings go into `report` as they are made (kept if it raises)."""
    if engine_named(engine) == "llama-cpp":
        from qwq_ollama.checks.llama_cpp import validate_llama_cpp

        where.check([engine], variants or [], options.weights)
        return validate_llama_cpp(
            lambda v: where.llama_server_for(catalog, v),
            catalog,
            variants,
            checks=options.checks,
            num_predict=options.num_predict,
            code_prompt=options.code_prompt,
            seed=options.seed,
            progress=progress,
            report=report,
        )
    from qwq_ollama.checks.validate import validate
    from qwq_ollama.daemon.client import OllamaAPI

    return validate(
        OllamaAPI(where.host, timeout=where.timeout),
        catalog,
        variants,
        weights_name=options.weights,
        checks=options.checks,
        num_predict=options.num_predict,
        code_prompt=options.code_prompt,
        seed=options.seed,
        progress=progress,
        report=report,
    )


def compare_on(
    engines: list[str],
    where: EngineChoice,
    catalog: Callable[[], Catalog],
    variants: list[str],
    prompt: NamedPrompt,
    seeds: int,
    num_predict: int,
    progress: Callable[[str], None],
    think_budget: int | None = None,
) -> list[RunStats]:
    """Every run of every engine: Ollama's daemon runs the variants by name; llama.cpp runs
    each on its own llama-server, which needs the catalog (loaded only then). A thinking
    budget (`think_budget`, else a catalog variant's own) is enforced on Ollama by the tool
    (checks/budget.py); llama-server enforces the one its exported command carries."""
    from qwq_ollama.checks.ab import compare_variants

    where.check(engines, variants)
    runs: list[RunStats] = []
    for engine in engines:
        if engine == "ollama":
            from qwq_ollama.daemon.client import OllamaAPI

            api = OllamaAPI(where.host, timeout=where.timeout)
            budgeted = _budgeted(catalog, variants, think_budget)
            runs += compare_variants(
                api, variants, prompt, seeds, num_predict, progress, budgeted=budgeted
            )[1]
            continue
        cat = catalog()
        for name in variants:
            with where.open(engine, cat, cat.variant(name)) as server:
                runs += compare_variants(
                    server,
                    [name],
                    prompt,
                    seeds,
                    num_predict,
                    progress,
                    engine=ENGINE_LABEL[engine],
                )[1]
    return runs


def _budgeted(
    catalog: Callable[[], Catalog], variants: list[str], think_budget: int | None
) -> dict[str, tuple[Variant, int]]:
    """The variants that run under a thinking budget on Ollama, with it: all of them when one
    is given (each must be in the catalog), else those whose catalog entry sets one."""
    try:
        cat = catalog()
    except InputError:
        if think_budget is not None:
            raise
        return {}  # no catalog here: plain runs by name, as before budgets
    chosen: dict[str, tuple[Variant, int]] = {}
    for name in variants:
        variant = cat.variant(name) if think_budget is not None else cat.variants.get(name)
        budget = think_budget or (variant.think_budget if variant is not None else None)
        if variant is not None and budget is not None:
            chosen[name] = (variant, budget)
    return chosen
