"""The end-to-end run behind `make demo`, on the small model and a private daemon.

A generator of stages, so that the caller shows each one as it finishes (the daemon lives until
the last stage is consumed) while nothing here prints.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qwq_ollama.catalog.builtin_weights import ensure_smollm2
from qwq_ollama.catalog.render import render_all
from qwq_ollama.catalog.schema import Catalog
from qwq_ollama.checks.generation import run_chat
from qwq_ollama.checks.validate import ValidationReport, validate
from qwq_ollama.daemon.client import OllamaAPI
from qwq_ollama.daemon.registry import Registrar, status
from qwq_ollama.engines.install import ensure_ollama
from qwq_ollama.engines.private_daemon import OllamaDaemon
from qwq_ollama.facts import OLLAMA_CURRENT

DEMO_WEIGHTS = "smollm2-135m"
# The no-prefill variant's answer arrives as content on a model that does not reason; the
# prefilled one is proven on its prompt and registration, and shown in the chat.
DEMO_VALIDATION = (
    ("qwq-fixed", ("fidelity", "registration")),
    ("qwq-noprefill", ("fidelity", "registration", "generation")),
)


@dataclass(frozen=True)
class Stage:
    name: str  # render, daemon, create, list, validate, chat, reply
    result: Any


def demo_stages(
    *,
    catalog: Catalog,
    message: str,
    chat_variant: str = "qwq-fixed",
    version: str = OLLAMA_CURRENT,
    on_thinking: Callable[[str], None] | None = None,
    on_content: Callable[[str], None] | None = None,
) -> Iterator[Stage]:
    """Render check, private daemon, register, list, validate, one streamed chat."""
    yield Stage("render", render_all(catalog, check=True).stale)
    binary = ensure_ollama(version=version)
    ensure_smollm2()
    with (
        tempfile.TemporaryDirectory(prefix="qwq-ollama-demo-") as tmp,
        OllamaDaemon(binary.path, Path(tmp) / "models") as daemon,
    ):
        api = OllamaAPI(daemon.host)
        yield Stage("daemon", (api.version(), daemon.host))
        yield Stage("create", Registrar(api, catalog).create(weights_name=DEMO_WEIGHTS))
        yield Stage("list", status(api, catalog, DEMO_WEIGHTS))
        report = ValidationReport()
        for variant, checks in DEMO_VALIDATION:
            validate(
                api,
                catalog,
                [variant],
                weights_name=DEMO_WEIGHTS,
                checks=checks,
                seed=1,
                report=report,
            )
        yield Stage("validate", report)
        yield Stage("chat", (chat_variant, DEMO_WEIGHTS))  # the reply streams after this
        yield Stage(
            "reply",
            run_chat(
                api,
                chat_variant,
                [{"role": "user", "content": message}],
                options={"num_predict": 512},
                on_thinking=on_thinking,
                on_content=on_content,
            ),
        )
