"""Render the catalog into its files: HF chat templates, Ollama templates and Modelfiles.

The Jinja sources in `templates/` are read by a sandboxed environment with its own delimiters
(`(( ))`, `(% %)`, `(# #)`), so the HF Jinja and Go-template text inside them passes through
untouched. Every output is built in memory first; nothing is written if any variant fails.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from qwq_ollama.atomic import write_many_atomic
from qwq_ollama.catalog.chat_template import render_chat
from qwq_ollama.catalog.schema import Catalog, CatalogSpec, Variant, Weights
from qwq_ollama.errors import InputError
from qwq_ollama.catalog.modelfile import Unrepresentable, parameter_lines, quote_value

SCHEMA_NAME = "models.schema.json"


def _jinja_string(text: str) -> str:
    """Body of a single-quoted Jinja string literal."""
    return text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")


def _go_string(text: str) -> str:
    """A Go double-quoted string literal (JSON escapes are a subset Go accepts)."""
    return json.dumps(text, ensure_ascii=False)


@functools.lru_cache(maxsize=16)
def meta_environment(templates_dir: Path) -> SandboxedEnvironment:
    """One environment per folder, so each source compiles once per process, not per variant.

    Jinja re-reads a source whose mtime changed, so edits are still seen.
    """
    env = SandboxedEnvironment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        block_start_string="(%", block_end_string="%)",
        variable_start_string="((", variable_end_string="))",
        comment_start_string="(#", comment_end_string="#)",
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined, autoescape=False,
    )
    env.filters["jinja_string"] = _jinja_string
    env.filters["go_string"] = _go_string
    return env


@dataclass(frozen=True)
class VariantRender:
    """Everything one variant renders to."""

    variant: Variant
    weights: Weights
    hf_template: str
    ollama_template: str
    modelfile: str


def _render_file(env: SandboxedEnvironment, name: str, **context: object) -> str:
    try:
        return env.get_template(name).render(**context)
    except jinja2.TemplateSyntaxError as exc:
        raise InputError(f"template syntax error: {exc.message}",
                         file=exc.filename or name, line=exc.lineno) from None
    except jinja2.TemplateNotFound as exc:
        raise InputError("template not found", file=exc.name) from None
    except jinja2.UndefinedError as exc:
        raise InputError(f"template uses an undefined value: {exc.message}",
                         file=Path(env.loader.searchpath[0]) / name  # type: ignore[union-attr]
                         ) from None
    except jinja2.TemplateError as exc:  # includes the sandbox's SecurityError
        raise InputError(f"template error: {exc}",
                         file=Path(env.loader.searchpath[0]) / name  # type: ignore[union-attr]
                         ) from None


def _modelfile_from(weights: Weights, out_dir: Path) -> str:
    """FROM as seen from the Modelfile's folder (Ollama resolves relative paths from there)."""
    target = weights.modelfile_from
    if weights.source in ("gguf", "builtin"):
        target = os.path.relpath(target, out_dir.resolve())
        if not target.startswith("."):
            target = "./" + target
    return target


def render_variant(catalog: Catalog, variant: Variant, *, weights: Weights | None = None,
                   out_dir: Path | None = None) -> VariantRender:
    """Render one variant over its own weights or the given ones."""
    weights = weights or catalog.weights[variant.weights]
    env = meta_environment(catalog.templates_dir)
    family = variant.template
    context = {"variant": variant.name, "prefill": variant.think_prefill,
               "generation_prompt": variant.generation_prompt}
    hf_template = _render_file(env, f"{family}/chat_template.jinja.j2", **context)
    ollama_template = _render_file(env, f"{family}/ollama.gotmpl.j2", **context)
    quoted = _quoted_fields(catalog, variant, weights, ollama_template)
    modelfile = _render_file(
        env, "Modelfile.j2", variant=variant,
        from_=_modelfile_from(weights, out_dir or catalog.path.parent), **quoted,
    )
    return VariantRender(variant, weights, hf_template, ollama_template, modelfile)


Prompter = Callable[..., str]


def hf_prompter(catalog: Catalog, variant: Variant) -> Prompter:
    """`(messages, tools=None) -> prompt` through the variant's Hugging Face template, rendered
    once: the reference every engine's prompt is judged against, for any number of chats."""
    template = render_variant(catalog, variant).hf_template

    def prompt(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None,
               *, add_generation_prompt: bool = True) -> str:
        return render_chat(template, messages, tools=tools,
                           add_generation_prompt=add_generation_prompt)

    return prompt


def _quoted_fields(catalog: Catalog, variant: Variant, weights: Weights,
                   ollama_template: str) -> dict[str, object]:
    """Quote every value for the Modelfile up front, so a refusal names its source."""
    name = variant.name
    try:
        template = quote_value(ollama_template)
    except Unrepresentable as exc:
        raise InputError(f"the Ollama template cannot be written to a Modelfile: {exc}",
                         file=catalog.templates_dir / variant.template / "ollama.gotmpl.j2"
                         ) from None
    system = None
    if variant.system is not None:
        try:
            system = quote_value(variant.system)
        except Unrepresentable as exc:
            raise _catalog_error(catalog, name, "system", f"SYSTEM {exc}") from None
    try:
        parameters = parameter_lines(variant.parameters.as_dict())
    except Unrepresentable as exc:
        raise _catalog_error(catalog, name, "parameters", f"PARAMETER {exc}") from None
    license_text = None
    if weights.license:
        try:
            license_text = quote_value(weights.license)
        except Unrepresentable as exc:
            raise InputError(f"LICENSE {exc}", file=catalog.path,
                             line=catalog.line_of("weights", weights.name, "license"),
                             field=f"weights.{weights.name}.license") from None
    return {"template": template, "system": system, "parameters": parameters,
            "license": license_text}


def _catalog_error(catalog: Catalog, variant: str, key: str, message: str) -> InputError:
    line = catalog.located.lines.get(("variants", variant, key))
    field_path = f"variants.{variant}.{key}"
    if line is None:
        line = catalog.located.lines.get(("defaults", key))
        field_path = f"defaults.{key}" if line is not None else field_path
    return InputError(message, file=catalog.path, line=line, field=field_path)


def schema_text() -> str:
    """JSON Schema of the catalog, for editors (`# yaml-language-server: $schema=...`)."""
    return json.dumps(CatalogSpec.model_json_schema(), indent=2, ensure_ascii=False) + "\n"


def planned_outputs(catalog: Catalog, out_dir: Path | None = None,
                    weights: Weights | None = None) -> dict[Path, str]:
    """Every file `render` owns, with its content."""
    out = out_dir or catalog.path.parent
    files: dict[Path, str] = {}
    for variant in catalog.variants.values():
        result = render_variant(catalog, variant, weights=weights, out_dir=out)
        files[out / f"{variant.name}.Modelfile"] = result.modelfile
        files[out / f"{variant.name}.chat_template.jinja"] = result.hf_template
    if out_dir is None:
        files[out / SCHEMA_NAME] = schema_text()
    return files


@dataclass
class RenderResult:
    written: list[Path] = field(default_factory=list)
    stale: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)


def render_all(catalog: Catalog, *, check: bool = False, out_dir: Path | None = None,
               weights: Weights | None = None) -> RenderResult:
    """Write the outputs that differ (atomically), or with check=True only report them."""
    result = RenderResult()
    changed: dict[Path, str] = {}
    for path, text in planned_outputs(catalog, out_dir, weights).items():
        try:
            current = path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError):  # missing, unreadable, or not under a folder
            current = None
        if current == text:
            result.unchanged.append(path)
        else:
            result.stale.append(path)
            changed[path] = text
    if not check and changed:
        try:
            write_many_atomic(changed)
        except OSError as exc:
            raise InputError(f"cannot write: {exc.strerror}", file=exc.filename) from None
        result.written = list(changed)
    return result
