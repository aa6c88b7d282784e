"""Taking back what `create` registered, and nothing else: a catalog variant whose blob is one of
our base models' (`qwq-ollama-weights/*`), and, when asked, those base models with their
`:source-*` aliases, unless a variant that stays still runs over one."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from qwq_ollama.catalog.schema import Catalog
from qwq_ollama.daemon.client import OllamaAPI
from qwq_ollama.daemon.registry import BASE_NAMESPACE, BaseDigests, registration


@dataclass
class RemoveReport:
    removed: list[str] = field(default_factory=list)  # variants and base models deleted
    absent: list[str] = field(default_factory=list)  # variants not registered there
    kept: dict[str, str] = field(default_factory=dict)  # name -> why it was left alone

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def remove(
    api: OllamaAPI, catalog: Catalog, names: list[str] | None, with_bases: bool
) -> RemoveReport:
    """Unregister the variants named (default: the default set); with `with_bases`, also the
    base models no variant left on the daemon runs over."""
    chosen = catalog.chosen(names)
    api.supported_version()
    bases = BaseDigests(api, catalog)
    report = RemoveReport()
    for variant in chosen:
        row = registration(api, catalog, variant, None, bases)
        if not row.registered:
            report.absent.append(variant.name)
        elif row.over is None:
            report.kept[variant.name] = (
                "not made by qwq-ollama: its weights are no qwq-ollama-weights/* model"
            )
        else:
            api.delete(variant.name)
            report.removed.append(variant.name)
    if with_bases:
        _remove_bases(api, catalog, bases, report)
    return report


def _remove_bases(
    api: OllamaAPI, catalog: Catalog, bases: BaseDigests, report: RemoveReport
) -> None:
    still_used: dict[str, str] = {}  # weights name -> a variant that stays registered over it
    for variant in catalog.variants.values():
        if variant.name in report.removed:
            continue
        row = registration(api, catalog, variant, None, bases)
        if row.registered and row.over is not None:
            still_used.setdefault(row.over, variant.name)
    prefix = f"{BASE_NAMESPACE}/"
    for listed in sorted(api.list_names()):
        if not listed.startswith(prefix):
            continue
        weights = listed[len(prefix) :].partition(":")[0]
        if weights in still_used:
            report.kept[listed] = f"{still_used[weights]} still runs over it"
            continue
        api.delete(listed)
        report.removed.append(listed)
