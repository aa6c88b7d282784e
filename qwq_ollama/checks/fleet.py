"""The judging half of the fleet commands: doctor's and validate's findings on each host, as
the cells of daemon/fleet.py's host x variant table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qwq_ollama.catalog.schema import Catalog
from qwq_ollama.checks.findings import FAILING, Finding
from qwq_ollama.daemon.client import OllamaAPI
from qwq_ollama.daemon.fleet import Cell
from qwq_ollama.errors import DaemonError


def finding_cells(findings: list[Finding]) -> list[Cell]:
    """Findings grouped by subject: pass, or each failing/warning check named."""
    by_subject: dict[str, list[Finding]] = {}
    for found in findings:
        by_subject.setdefault(found.subject, []).append(found)
    cells = []
    for subject, group in by_subject.items():
        bad = [f for f in group if f.status in FAILING]
        warned = [f for f in group if f.status == "warn"]
        shown = bad or warned
        state = ("FAIL: " if bad else "WARN: " if warned else "pass") + ", ".join(
            f"{f.check} ({f.message})" for f in shown
        )
        cells.append(Cell(subject, state, not bad))
    return cells


def doctor_cells(
    catalog: Catalog, weights: str | None, vram: int | None = None
) -> Callable[[OllamaAPI], list[Cell]]:
    """Per host: doctor's findings, over each host's own GPU when no --vram is given."""
    from qwq_ollama.checks.doctor import diagnose
    from qwq_ollama.checks.memory_plan import daemon_vram

    def work(api: OllamaAPI) -> list[Cell]:
        api.version()  # a daemon that does not answer is `unreachable`, not a finding
        free = vram if vram is not None else daemon_vram(api)
        return finding_cells(diagnose(api, catalog, weights, free))

    return work


def validate_cells(
    catalog: Catalog, variants: list[str] | None, **options: Any
) -> Callable[[OllamaAPI], list[Cell]]:
    from qwq_ollama.checks.validate import ValidationReport, validate

    def work(api: OllamaAPI) -> list[Cell]:
        api.supported_version()  # unreachable or too old: said as such, not as findings
        report = ValidationReport()
        try:
            validate(api, catalog, variants, report=report, **options)
        except DaemonError:  # a variant not registered, or the daemon gone mid-way: in findings
            pass
        return finding_cells(report.findings)

    return work
