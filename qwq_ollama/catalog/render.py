"""Render the catalog into its files: HF chat templates, Ollama templates and Modelfiles.

The Jinja sources in `templates/` are read by a sandboxed environment with its own delimiters
(`(( ))`, `(% %)`, `(# #)`), so the HF Jinja and Go-template text inside them passes through
untouched. Every output is built in memory first and parsed the way its reader will parse it
(check_outputs); nothing is written if any variant fails.
"""

from __future__ import annotations

import functools
import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from qwq_ollama.atomic import read_existing, write_many_atomic
from qwq_ollama.catalog.chat_template import compile_chat_template, render_chat
from qwq_ollama.catalog.conversation import as_hf_messages
from qwq_ollama.catalog.gotemplate import GoUnavailable, parse_problems
from qwq_ollama.catalog.modelfile import (
    COMMANDS,
    ModelfileSyntaxError,
    Unrepresentable,
    parameter_lines,
    parameter_texts,
    parse_modelfile,
    quote_value,
)
from qwq_ollama.catalog.schema import Catalog, CatalogSpec, Variant, Weights
from qwq_ollama.errors import InputError

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
        block_start_string="(%",
        block_end_string="%)",
        variable_start_string="((",
        variable_end_string="))",
        comment_start_string="(#",
        comment_end_string="#)",
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
    )
    env.filters["jinja_string"] = _jinja_string
    env.filters["go_string"] = _go_string
    return env


@dataclass(frozen=True)
class VariantRender:
    """Everything one variant renders to, and the Modelfile commands the catalog means by it."""

    variant: Variant
    weights: Weights
    hf_template: str
    ollama_template: str
    modelfile: str
    meant: tuple[tuple[str, str], ...]


def _render_file(env: SandboxedEnvironment, name: str, **context: object) -> str:
    try:
        return env.get_template(name).render(**context)
    except jinja2.TemplateSyntaxError as exc:
        raise InputError(
            f"template syntax error: {exc.message}", file=exc.filename or name, line=exc.lineno
        ) from None
    except jinja2.TemplateNotFound as exc:
        raise InputError("template not found", file=exc.name) from None
    except jinja2.UndefinedError as exc:
        raise InputError(
            f"template uses an undefined value: {exc.message}",
            file=Path(env.loader.searchpath[0]) / name,  # type: ignore[union-attr]
        ) from None
    except jinja2.TemplateError as exc:  # includes the sandbox's SecurityError
        raise InputError(
            f"template error: {exc}",
            file=Path(env.loader.searchpath[0]) / name,  # type: ignore[union-attr]
        ) from None


def _modelfile_from(weights: Weights, out_dir: Path) -> str:
    """FROM as seen from the Modelfile's folder (Ollama resolves relative paths from there)."""
    target = weights.modelfile_from
    if weights.source in ("gguf", "builtin"):
        target = os.path.relpath(target, out_dir.resolve())
        if not target.startswith("."):
            target = "./" + target
    return target


def render_variant(
    catalog: Catalog,
    variant: Variant,
    *,
    weights: Weights | None = None,
    out_dir: Path | None = None,
) -> VariantRender:
    """Render one variant over its own weights or the given ones."""
    weights = weights or catalog.weights[variant.weights]
    env = meta_environment(catalog.templates_dir)
    family = variant.template
    context = {
        "variant": variant.name,
        "prefill": variant.think_prefill,
        "thinking": variant.enable_thinking,
        "generation_prompt": variant.generation_prompt,
        "assistant_header": variant.family.assistant_header,
        "thinking_off": variant.family.off_text,
    }
    hf_template = _render_file(env, f"{family}/chat_template.jinja.j2", **context)
    ollama_template = _render_file(env, f"{family}/ollama.gotmpl.j2", **context)
    from_text = _modelfile_from(weights, out_dir or catalog.path.parent)
    quoted = _quoted_fields(catalog, variant, weights, ollama_template, from_text)
    modelfile = _render_file(env, "Modelfile.j2", variant=variant, **quoted)
    meant = _meant_commands(variant, weights, from_text, ollama_template)
    return VariantRender(variant, weights, hf_template, ollama_template, modelfile, meant)


def _quoted(text: str, error: Callable[[str], InputError]) -> str:
    try:
        return quote_value(text)
    except Unrepresentable as exc:
        raise error(str(exc)) from None


Prompter = Callable[..., str]


def hf_prompter(catalog: Catalog, variant: Variant) -> Prompter:
    """`(messages, tools=None) -> prompt` through the variant's Hugging Face template, rendered
    once: the reference every engine's prompt is judged against, for any number of chats."""
    template = render_variant(catalog, variant).hf_template
    tokens = variant.family.template_tokens

    def prompt(
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        *,
        add_generation_prompt: bool = True,
    ) -> str:
        return render_chat(
            template,
            as_hf_messages(messages),
            tools=tools,
            add_generation_prompt=add_generation_prompt,
            **tokens,
        )

    return prompt


def _quoted_fields(
    catalog: Catalog, variant: Variant, weights: Weights, ollama_template: str, from_text: str
) -> dict[str, object]:
    """Quote every value for the Modelfile up front, so a refusal names its source."""
    name = variant.name
    template_file = catalog.templates_dir / variant.template / "ollama.gotmpl.j2"
    fields: dict[str, object] = {
        "from_": _quoted(from_text, lambda m: _weights_error(catalog, weights, f"FROM {m}")),
        "template": _quoted(
            ollama_template,
            lambda m: InputError(
                f"the Ollama template cannot be written to a Modelfile: {m}", file=template_file
            ),
        ),
        "system": None,
        "license": None,
    }
    if variant.system is not None:
        fields["system"] = _quoted(
            variant.system, lambda m: _catalog_error(catalog, name, "system", f"SYSTEM {m}")
        )
    try:
        fields["parameters"] = parameter_lines(variant.parameters.as_dict())
    except Unrepresentable as exc:
        raise _catalog_error(catalog, name, "parameters", f"PARAMETER {exc}") from None
    if weights.license:
        fields["license"] = _quoted(
            weights.license,
            lambda m: catalog.error(f"LICENSE {m}", "weights", weights.name, "license"),
        )
    return fields


def _meant_commands(
    variant: Variant, weights: Weights, from_text: str, ollama_template: str
) -> tuple[tuple[str, str], ...]:
    """What the Modelfile must say, as (command, value) the way parse_modelfile reads it."""
    commands = [("model", from_text), ("template", ollama_template)]
    if variant.system is not None:
        commands.append(("system", variant.system))
    if variant.parser is not None:
        commands.append(("parser", variant.parser))
    commands += parameter_texts(variant.parameters.as_dict())
    if weights.license:
        commands.append(("license", weights.license))
    return tuple(commands)


def _weights_error(catalog: Catalog, weights: Weights, message: str) -> InputError:
    return catalog.error(message, "weights", weights.name, weights.source)


def _catalog_error(catalog: Catalog, variant: str, key: str, message: str) -> InputError:
    lines = catalog.located.lines
    if ("variants", variant, key) not in lines and ("defaults", key) in lines:
        return catalog.error(message, "defaults", key)
    return catalog.error(message, "variants", variant, key)


def check_outputs(catalog: Catalog, renders: list[VariantRender]) -> list[str]:
    """Parse every output as its reader will, refusing (InputError) what a reader would refuse.

    The chat template with transformers' Jinja environment, the Ollama template with Go's
    text/template, the Modelfile with Ollama's grammar (and it must mean what the catalog
    means). Returns notes on checks that could not run here.
    """
    for render in renders:
        _check_chat_template(catalog, render)
        _check_modelfile(catalog, render)
    try:
        problems = parse_problems([r.ollama_template for r in renders])
    except GoUnavailable as exc:
        return [
            f"{exc}, so the Ollama templates were not parsed before writing; the daemon "
            "still parses each one `create` sends"
        ]
    for render, problem in zip(renders, problems, strict=True):
        if problem is not None:
            source = catalog.templates_dir / render.variant.template / "ollama.gotmpl.j2"
            raise _output_error(
                source,
                render.ollama_template,
                problem[0],
                f"renders for {render.variant.name} an Ollama template that "
                f"Go's text/template refuses: {problem[1]}",
            )
    return []


def _check_chat_template(catalog: Catalog, render: VariantRender) -> None:
    source = catalog.templates_dir / render.variant.template / "chat_template.jinja.j2"
    what = f"renders for {render.variant.name} a chat template that transformers' Jinja"
    try:
        compile_chat_template(render.hf_template)
    except jinja2.TemplateSyntaxError as exc:  # assertion errors (unknown filter) included
        raise _output_error(
            source, render.hf_template, exc.lineno, f"{what} cannot parse: {exc.message}"
        ) from None
    except SyntaxError as exc:  # Jinja compiles `{% break %}` outside a loop to broken Python
        raise _output_error(
            source, render.hf_template, None, f"{what} cannot compile: {exc.msg}"
        ) from None


def _check_modelfile(catalog: Catalog, render: VariantRender) -> None:
    source = catalog.templates_dir / "Modelfile.j2"
    what = f"renders for {render.variant.name} a Modelfile"
    try:
        read = parse_modelfile(render.modelfile)
    except ModelfileSyntaxError as exc:
        raise _output_error(
            source, render.modelfile, exc.line, f"{what} that Ollama refuses: {exc}"
        ) from None
    difference = _difference(read, list(render.meant))
    if difference:
        raise _output_error(
            source,
            render.modelfile,
            None,
            f"{what} that does not say what the catalog means: {difference}",
        )


def _difference(read: list[tuple[str, str]], meant: list[tuple[str, str]]) -> str | None:
    """How `read` differs from `meant`; the order matters only among repeats (stop, LICENSE)."""

    def in_order(commands: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return sorted(commands, key=lambda c: c[0])

    if in_order(read) == in_order(meant):
        return None
    extra, missing = Counter(read) - Counter(meant), Counter(meant) - Counter(read)
    if extra:
        return f"it says {_show(*next(iter(extra)))}, which the catalog does not"
    if missing:
        return f"it lacks {_show(*next(iter(missing)))}"
    return "its repeated commands come in another order"


def _show(command: str, value: str) -> str:
    word = (
        "FROM"
        if command == "model"
        else command.upper()
        if command in COMMANDS
        else f"PARAMETER {command}"
    )
    clipped = value if len(value) <= 40 else value[:40] + "..."
    return f"{word} {clipped!r}"


def _output_error(source: Path, rendered: str, line: int | None, problem: str) -> InputError:
    """A rendered output its reader would refuse, named by the source file it came from: at
    the source line that reads the same as the bad output line, when exactly one does."""
    lines = rendered.split("\n")
    where, source_line = "", None
    if line and line <= len(lines):
        text = lines[line - 1].strip()
        where = f" (its line {line}: {text[:60]!r})"
        source_line = _same_line_in(source, text)
    return InputError(f"{problem}{where}; nothing written", file=source, line=source_line)


def _same_line_in(source: Path, text: str) -> int | None:
    try:
        source_lines = source.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError):
        return None
    hits = [n for n, s in enumerate(source_lines, 1) if text and s.strip() == text]
    return hits[0] if len(hits) == 1 else None


def schema_text() -> str:
    """JSON Schema of the catalog, for editors (`# yaml-language-server: $schema=...`)."""
    return json.dumps(CatalogSpec.model_json_schema(), indent=2, ensure_ascii=False) + "\n"


def planned_outputs(
    catalog: Catalog, out_dir: Path | None = None, weights: Weights | None = None
) -> tuple[dict[Path, str], list[str]]:
    """Every file `render` owns, with its content, each parsed as its reader will parse it; and
    notes on checks that could not run."""
    out = out_dir or catalog.path.parent
    renders = [
        render_variant(catalog, variant, weights=weights, out_dir=out)
        for variant in catalog.variants.values()
    ]
    notes = check_outputs(catalog, renders)
    files: dict[Path, str] = {}
    for result in renders:
        files[out / f"{result.variant.name}.Modelfile"] = result.modelfile
        files[out / f"{result.variant.name}.chat_template.jinja"] = result.hf_template
    if out_dir is None:
        files[out / SCHEMA_NAME] = schema_text()
    return files, notes


@dataclass
class RenderResult:
    written: list[Path] = field(default_factory=list)
    stale: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # checks that could not run, and why


def render_all(
    catalog: Catalog,
    *,
    check: bool = False,
    out_dir: Path | None = None,
    weights: Weights | None = None,
) -> RenderResult:
    """Write the outputs that differ (atomically), or with check=True only report them."""
    files, notes = planned_outputs(catalog, out_dir, weights)
    result = RenderResult(notes=notes)
    changed: dict[Path, str] = {}
    for path, text in files.items():
        try:
            existing = read_existing(path)  # a FIFO or device there: refused, never opened
            current = None if existing is None else existing.decode("utf-8")
        except UnicodeDecodeError:
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
