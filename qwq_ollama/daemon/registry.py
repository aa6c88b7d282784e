"""Register catalog variants with an Ollama daemon, idempotently.

The weights are imported once into a base model (`qwq-ollama-weights/<name>`); every variant is
created `from` it. So a 20 GB GGUF is hashed once, and deleting or re-creating a variant never
deletes the GGUF blob (Ollama removes a blob with the last model that uses it).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from qwq_ollama.catalog.parameters import REFUSED_SINCE, refused_by
from qwq_ollama.catalog.render import render_variant
from qwq_ollama.catalog.schema import Catalog, Variant, Weights
from qwq_ollama.daemon import quick_create
from qwq_ollama.daemon.answers import ProgressUpdate, Shown
from qwq_ollama.daemon.client import OllamaAPI
from qwq_ollama.daemon.daemon_process import import_space_problem, local_daemon
from qwq_ollama.daemon.digests import file_digest
from qwq_ollama.errors import EnvironmentProblem, InputError, RefusedError
from qwq_ollama.paths import cache_dir
from qwq_ollama.weights_file import GGUF_MAGIC, leading_magic

BASE_NAMESPACE = "qwq-ollama-weights"
Progress = Callable[[str, ProgressUpdate], None]  # a model's name, its update


def base_model_name(weights: Weights) -> str:
    return f"{BASE_NAMESPACE}/{weights.name}"


def source_alias(weights: Weights, file_digest: str) -> str:
    """A second name of the base model that says which file it was imported from.

    The base model's own blob cannot say: from Ollama 0.30 on, `create` stores a converted copy
    of the uploaded GGUF, whose digest is not the file's. The alias lives on the daemon, so any
    run on any machine learns from one /api/show whether the import can be skipped.
    """
    return f"{base_model_name(weights)}:source-{file_digest.removeprefix('sha256:')}"


def blob_of(api: OllamaAPI, model: str) -> str | None:
    """The weights blob a model runs over on this daemon; None if it is absent. The one way a
    base model's (or any model's) blob is found."""
    shown = api.show(model)
    return shown.blob_digest if shown is not None else None


def base_digest(api: OllamaAPI, weights: Weights) -> str | None:
    """The weights blob digest of the base model on this daemon, None if it is absent."""
    return blob_of(api, base_model_name(weights))


@dataclass(frozen=True)
class Desired:
    """What a registered variant must look like."""

    name: str
    template: str
    system: str | None
    parameters: dict[str, Any]
    license: str | None
    parser: str | None = None

    def create_fields(self, base: str) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "from_": base,
            "template": self.template,
            "parameters": self.parameters,
        }
        if self.system is not None:
            fields["system"] = self.system
        if self.license:
            fields["license"] = self.license
        if self.parser is not None:
            fields["parser"] = self.parser
        return fields


def desired_state(catalog: Catalog, variant: Variant, weights: Weights) -> Desired:
    rendered = render_variant(catalog, variant, weights=weights)
    return Desired(
        variant.name,
        rendered.ollama_template,
        variant.system,
        variant.parameters.as_dict(),
        weights.license,
        variant.parser,
    )


def same_value(a: Any, b: Any) -> bool:
    """Ollama and llama.cpp keep sampling floats as float32 (0.6 comes back as 0.6000000238):
    compare numbers at that precision, anything else as it is."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        pack = struct.Struct("f")
        return pack.unpack(pack.pack(a)) == pack.unpack(pack.pack(b))
    return bool(a == b)


def parameters_equal(want: Mapping[str, Any], got: Mapping[str, Any]) -> bool:
    if set(want) != set(got):
        return False
    for key, value in want.items():
        other = got[key]
        if isinstance(value, list):
            if not isinstance(other, list) or list(value) != list(other):
                return False
        elif not same_value(value, other) and value != other:
            return False
    return True


def drift(desired: Desired, shown: Shown) -> dict[str, str]:
    """The fields (weights aside) in which a live model differs from `desired`, each with what
    a person needs to see; empty means they all match."""
    diffs: dict[str, str] = {}
    if shown.template != desired.template:
        diffs["template"] = "template"
    if shown.system != desired.system:
        diffs["system"] = "system"
    if not parameters_equal(desired.parameters, shown.parameters):
        diffs["parameters"] = parameter_detail(desired.parameters, shown.parameters)
    want_license = (desired.license,) if desired.license else ()
    if shown.license != want_license:
        diffs["license"] = "license"
    if shown.parser != desired.parser:
        diffs["parser"] = f"parser (catalog {_shown(desired.parser)}, live {_shown(shown.parser)})"
    return diffs


def parameter_detail(want: Mapping[str, Any], live: Mapping[str, Any]) -> str:
    """`parameters (temperature: catalog 0.6, live 0.9; ...)`."""
    parts = []
    for key in sorted(set(want) | set(live)):
        mine, theirs = want.get(key), live.get(key)
        if mine is None or theirs is None or not parameters_equal({key: mine}, {key: theirs}):
            parts.append(f"{key}: catalog {_shown(mine)}, live {_shown(theirs)}")
    return f"parameters ({'; '.join(parts)})" if parts else "parameters"


def _shown(value: Any) -> str:
    return "unset" if value is None else str(value)


@dataclass
class CreateReport:
    created: list[str] = field(default_factory=list)
    up_to_date: list[str] = field(default_factory=list)
    base_created: bool = False
    variants: list[str] = field(default_factory=list)  # every variant, in the order handled
    bases: list[str] = field(default_factory=list)
    weights_files: list[Path] = field(default_factory=list)  # GGUFs read from disk
    from_hub: bool = False  # the Hub was asked for the weights: no stamp can vouch for them

    def to_dict(self) -> dict[str, Any]:
        """What `create --json` prints (docs/reference.md: JSON output)."""
        return {
            "created": self.created,
            "up_to_date": self.up_to_date,
            "base_created": self.base_created,
            "bases": self.bases,
            "weights_files": [str(p) for p in self.weights_files],
        }


class Registrar:
    """Creates variants on one daemon; a lock per daemon keeps concurrent runs apart."""

    def __init__(self, api: OllamaAPI, catalog: Catalog, progress: Progress | None = None) -> None:
        self.api = api
        self.catalog = catalog
        self.progress = progress or (lambda _name, _update: None)
        self.version = ""

    def creation_lock(self) -> FileLock:
        """The per-daemon lock a create holds while it registers (taken without waiting)."""
        slug = re.sub(r"[^A-Za-z0-9]+", "-", self.api.host).strip("-")
        path = cache_dir() / "locks" / f"create-{slug}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(str(path), timeout=0)

    def create(
        self, names: list[str] | None = None, weights_name: str | None = None
    ) -> CreateReport:
        variants = self.catalog.chosen(names)
        # Unreachable or too old: said before any work is done.
        self.version = self.api.supported_version()
        self._check_daemon_accepts(variants)
        lock = self.creation_lock()
        try:
            lock.acquire()
        except Timeout:
            raise EnvironmentProblem(
                f"another `qwq-ollama create` is registering models with {self.api.host} "
                f"(lock {lock.lock_file}); wait for it to finish"
            ) from None
        try:
            return self._create_locked(variants, weights_name)
        finally:
            lock.release()

    def _create_locked(self, variants: list[Variant], weights_name: str | None) -> CreateReport:
        report = CreateReport()
        by_weights: dict[str, list[Variant]] = {}
        for variant in variants:
            by_weights.setdefault(weights_name or variant.weights, []).append(variant)
        for wname, group in by_weights.items():
            weights = self.catalog.weights_named(wname)
            # Render every variant before touching the daemon: bad input changes nothing.
            desired = [desired_state(self.catalog, v, weights) for v in group]
            base, digest = self.ensure_base(weights, report)
            for want in desired:
                report.variants.append(want.name)
                shown = self.api.show(want.name)
                if shown is not None and not drift(want, shown) and shown.blob_digest == digest:
                    report.up_to_date.append(want.name)
                    continue
                for update in self.api.create(want.name, **want.create_fields(base)):
                    self.progress(want.name, update)
                report.created.append(want.name)
        return report

    def _check_daemon_accepts(self, variants: list[Variant]) -> None:
        """A parameter this daemon's release refuses is bad input, said before any upload."""
        for variant in variants:
            for name in refused_by(variant.parameters.as_dict(), self.version):
                raise self.catalog.parameter_error(
                    variant.name,
                    name,
                    f"Ollama {self.version} at {self.api.host} refuses "
                    f"{name} (no longer supported from {'.'.join(map(str, REFUSED_SINCE[name]))}"
                    f"); remove it from the catalog",
                )

    def ensure_base(self, weights: Weights, report: CreateReport) -> tuple[str, str | None]:
        """Import the weights once; returns the base model name and its blob digest."""
        base = base_model_name(weights)
        report.bases.append(base)
        if weights.source == "ollama":
            ref = str(weights.ollama_ref)
            if self.api.show(base) is None:
                for update in self.api.create(base, from_=ref):
                    self.progress(base, update)
                report.base_created = True
            return base, blob_of(self.api, base)
        path = self._local_gguf(weights)
        report.weights_files.append(path)
        report.from_hub = report.from_hub or weights.source == "hf"
        digest = file_digest(path, self._bytes(base, f"hashing {path.name}", path))
        alias = source_alias(weights, digest)
        report.bases.append(alias)
        imported = blob_of(self.api, base)
        if imported is not None and imported == blob_of(self.api, alias):
            return base, imported
        self._import(weights, path, digest, base)
        self.api.copy(base, alias)
        self._forget_other_sources(base, alias)
        report.base_created = True
        return base, blob_of(self.api, base)

    def _bytes(self, name: str, status: str, path: Path) -> Callable[[int], None]:
        """A byte counter reported as Ollama reports its own transfers: status, total, completed."""
        total = path.stat().st_size
        return lambda done: self.progress(name, ProgressUpdate(status, total, done))

    def _import(self, weights: Weights, path: Path, digest: str, base: str) -> None:
        """Upload the GGUF unless the daemon has it, and create the base model from it."""
        if leading_magic(path) != GGUF_MAGIC:
            raise self._gguf_error(weights, path, "not a GGUF file (no GGUF magic bytes)")
        blob_present = self.api.has_blob(digest)
        self._check_disk_space(path, blob_present)
        if not blob_present:
            self.api.push_blob(digest, path, self._bytes(base, f"uploading {path.name}", path))
        try:
            # The daemon parses the header and checks every tensor against the file size, in
            # Go, far faster than a Python reader: a truncated file is refused here.
            for update in self.api.create(base, files={path.name: digest}):
                self.progress(base, update)
        except RefusedError as exc:
            raise self._gguf_error(weights, path, f"Ollama cannot use it: {exc.detail}") from None

    def _forget_other_sources(self, base: str, alias: str) -> None:
        """Drop the aliases of files imported before: each would keep its old blob alive."""
        prefix = f"{base}:source-"
        for name in self.api.list_names():
            if name.startswith(prefix) and name != alias:
                self.api.delete(name)

    def _check_disk_space(self, path: Path, blob_present: bool) -> None:
        """Refuse up front an import the daemon's disk cannot hold (known for a daemon on this
        machine only; a remote daemon reports its own failure)."""
        local = local_daemon(self.api.host)
        if local is None:
            return
        problem = import_space_problem(
            path.stat().st_size, self.version, local.models_dir, blob_present
        )
        if problem:
            raise EnvironmentProblem(f"{path.name}: {problem}")

    def _local_gguf(self, weights: Weights) -> Path:
        if weights.source == "builtin":
            from qwq_ollama.catalog.builtin_weights import ensure_smollm2

            return ensure_smollm2()
        if weights.source == "hf":
            from qwq_ollama.artifacts.download import download_gguf

            files = download_gguf(str(weights.hf_repo), str(weights.hf_quant))
            if len(files) != 1:
                raise self.catalog.error(
                    f"{weights.hf_repo} {weights.hf_quant} is split into "
                    f"{len(files)} files; Ollama needs one GGUF: merge "
                    "them with llama-gguf-split --merge"
                )
            return files[0]
        path = Path(str(weights.gguf_path))
        if not path.is_file():
            raise self.catalog.error(f"GGUF not found: {path}", "weights", weights.name, "gguf")
        return path

    def _gguf_error(self, weights: Weights, path: Path, problem: str) -> InputError:
        return self.catalog.error(f"{path}: {problem}", "weights", weights.name, "gguf")


def stamp_create(
    api: OllamaAPI, catalog: Catalog, report: CreateReport, request: list[Any]
) -> bool:
    """Leave the stamp that lets an unchanged re-run skip all of this (see daemon.quick_create)."""
    if report.from_hub:
        quick_create.forget(request)
        return False
    return quick_create.record(
        request,
        host_url=api.host,
        catalog_file=str(catalog.path.resolve()),
        templates_dir=str(catalog.templates_dir),
        weights_files=[str(p.resolve()) for p in report.weights_files],
        variants=report.variants,
        models=report.variants + report.bases,
        listed=api.model_digests(),
    )


class BaseDigests:
    """Each catalog weights entry -> the blob digest of its base model on one daemon (None when
    that base model is absent), asked once per weights entry however many variants need it."""

    def __init__(self, api: OllamaAPI, catalog: Catalog) -> None:
        self.api, self.catalog = api, catalog
        self._known: dict[str, str | None] = {}

    def __getitem__(self, weights_name: str) -> str | None:
        if weights_name not in self._known:
            self._known[weights_name] = base_digest(
                self.api, self.catalog.weights_named(weights_name)
            )
        return self._known[weights_name]

    def owner_of(self, digest: str) -> str | None:
        """The catalog weights entry whose base model holds this blob, if any."""
        return next((name for name in self.catalog.weights if self[name] == digest), None)


@dataclass(frozen=True)
class Registration:
    """The one answer to "is this variant registered right on this daemon?"."""

    variant: str
    weights: str  # the catalog weights it should run over (the variant's own, or --weights)
    shown: Shown | None  # the daemon's /api/show answer; None: not registered
    over: str | None  # the catalog weights its live blob belongs to; None: unknown
    drift: dict[str, str]  # field -> what differs, in words; empty: as the catalog says

    @property
    def registered(self) -> bool:
        return self.shown is not None

    @property
    def up_to_date(self) -> bool:
        return self.registered and not self.drift

    @property
    def only_weights_differ(self) -> bool:
        """Registered over other known catalog weights, and right for those."""
        return list(self.drift) == ["weights"] and self.over is not None

    def describe(self) -> str:
        """The one wording of this state, for every command that shows it (list, a fleet,
        doctor, validate, compare): up to date, not registered, or each field that differs."""
        if not self.registered:
            return "not registered"
        if not self.drift:
            return "up to date"
        return f"differs from the catalog in {'; '.join(self.drift.values())}"

    def to_dict(self) -> dict[str, Any]:
        """What `list --json` prints per variant (docs/reference.md: JSON output)."""
        return {
            "variant": self.variant,
            "weights": self.weights,
            "registered": self.registered,
            "up_to_date": self.up_to_date,
            "over": self.over,
            "drift": self.drift,
        }


def registration(
    api: OllamaAPI,
    catalog: Catalog,
    variant: Variant,
    weights_name: str | None = None,
    bases: BaseDigests | None = None,
) -> Registration:
    """Which weights the live variant runs over, and every field that differs from the catalog.

    The other fields are compared with what the catalog makes over the weights actually in
    use, so a variant on other weights is reported as that, not as the license or template
    that follow from it. A base model that is absent (a create that was cut short) cannot
    vouch for the weights: that counts as a difference too.
    """
    bases = bases or BaseDigests(api, catalog)
    expected = weights_name or variant.weights
    shown = api.show(variant.name)
    if shown is None:
        return Registration(variant.name, expected, None, None, {})
    live = shown.blob_digest
    over = (
        expected
        if live is not None and bases[expected] == live
        else (bases.owner_of(live) if live else None)
    )
    diffs: dict[str, str] = {}
    if over != expected:
        diffs["weights"] = _weights_detail(expected, over, bases[expected])
    weights = catalog.weights_named(over or expected)
    diffs.update(drift(desired_state(catalog, variant, weights), shown))
    return Registration(variant.name, expected, shown, over, diffs)


def _weights_detail(expected: str, over: str | None, expected_digest: str | None) -> str:
    if over is not None:
        return f"weights (registered over {over}, not {expected})"
    if expected_digest is None:
        return (
            f"weights (cannot be confirmed: the base model {BASE_NAMESPACE}/{expected} is "
            "not registered)"
        )
    return f"weights (not those of {expected})"


def require_registered(
    api: OllamaAPI, catalog: Catalog, names: list[str], weights: str | None
) -> None:
    """Refuse (bad input) a variant that is not registered as `catalog` says, naming the fix."""
    for name in names:
        found = registration(api, catalog, catalog.variant(name), weights)
        if not found.up_to_date:
            again = f" --weights {weights}" if weights else ""
            raise InputError(
                f"{name} is not as {catalog.path} says ({found.describe()}): run "
                f"`qwq-ollama create {name}{again}`",
                field="VARIANTS",
            )


def status(
    api: OllamaAPI,
    catalog: Catalog,
    weights_name: str | None = None,
    names: list[str] | None = None,
) -> list[Registration]:
    """The registration on this daemon of each variant named (default: the default set)."""
    api.supported_version()
    bases = BaseDigests(api, catalog)
    return [registration(api, catalog, v, weights_name, bases) for v in catalog.chosen(names)]
