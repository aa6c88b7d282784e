"""docs/fidelity.md says what each daemon really does: its section for this daemon's version is
regenerated from the live daemon and must match the committed text."""

from __future__ import annotations

from pathlib import Path

from qwq_ollama.checks.fidelity_table import version_section
from qwq_ollama.daemon.client import OllamaAPI

DOC = Path(__file__).resolve().parent.parent / "docs" / "fidelity.md"


def test_the_committed_table_matches_the_live_daemon(family_api: OllamaAPI, stand_ins) -> None:
    version = family_api.version()
    section = version_section(family_api, stand_ins, version)
    assert f"## Ollama {version}\n" in DOC.read_text(), f"no section for Ollama {version}"
    assert section in DOC.read_text(), (
        "docs/fidelity.md is stale for this daemon: run `qwq-ollama fidelity-table`\n" + section
    )
