"""docs/fidelity.md regenerated end to end: every tested Ollama release installed, a private
daemon of each started, the variants registered over stand-ins of their families'
architectures, each daemon's section written (checks/fidelity_table.py), and the document
written atomically."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from qwq_ollama.atomic import write_text_atomic
from qwq_ollama.catalog.builtin_weights import ensure_smollm2
from qwq_ollama.catalog.schema import Catalog
from qwq_ollama.checks.fidelity_table import document, over_stand_ins, version_section
from qwq_ollama.daemon.client import OllamaAPI
from qwq_ollama.daemon.registry import Registrar
from qwq_ollama.engines.install import ensure_ollama
from qwq_ollama.engines.private_daemon import OllamaDaemon
from qwq_ollama.facts import OLLAMA_TESTED


def write_fidelity_table(
    catalog: Catalog, out: Path, progress: Callable[[str], None] | None = None
) -> Path:
    """Write the table of every tested release to `out`; `progress` hears each release done."""
    say = progress or (lambda _m: None)
    ensure_smollm2()
    sections = []
    for version in OLLAMA_TESTED:
        binary = ensure_ollama(version)
        with (
            tempfile.TemporaryDirectory(prefix="qwq-ollama-fidelity-") as tmp,
            OllamaDaemon(binary.path, Path(tmp) / "models") as daemon,
        ):
            api = OllamaAPI(daemon.host)
            Registrar(api, over_stand_ins(catalog)).create()
            sections.append(version_section(api, catalog, api.version()))
            say(f"Ollama {version}: done")
    write_text_atomic(out, document(sections, list(catalog.families.values())))
    return out
