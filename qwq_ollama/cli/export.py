"""Commands that write a variant's settings for other engines: export llama-cpp, hf, vllm, helm,
and embed-template (the chat template into a GGUF)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qwq_ollama.cli._options import CatalogOpt, OutOpt, QuietOpt, VariantsArg, catalog_at
from qwq_ollama.cli._output import err, say, write_raw

export_app = typer.Typer(
    rich_markup_mode=None,
    help="Write a variant's settings for another engine: llama.cpp, a "
    "Hugging Face GGUF repository, vLLM, LM Studio, the Ollama Helm "
    "chart.",
)


@export_app.command("llama-cpp")
def export_llama_cpp(
    variant: str,
    binary: Annotated[
        str,
        typer.Option(
            "--binary",
            help="llama-cli, llama-server, or "
            "llama-completion (what newer builds need for --prompt); a path to "
            "one works too.",
        ),
    ] = "llama-cli",
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="The GGUF. Default: where "
            "the guide's snapshot_download puts the variant's weights, e.g. "
            "unsloth-QwQ-32B-GGUF/QwQ-32B-Q4_K_M.gguf under the working dir; "
            "give your own path if it lives elsewhere.",
        ),
    ] = None,
    template: Annotated[
        Path | None,
        typer.Option(
            "--template",
            help="Chat template "
            "file. Default: <variant>.chat_template.jinja next to the catalog "
            "(written by `qwq-ollama render`).",
        ),
    ] = None,
    prompt: Annotated[
        str | None,
        typer.Option(
            "--prompt",
            help="One-shot run of this "
            "user message: the variant's template is applied here and passed "
            "with --prompt and -no-cnv, as in the guide.",
        ),
    ] = None,
    dry_multiplier: Annotated[
        float,
        typer.Option(
            "--dry-multiplier", help="DRY repetition penalty, 0 = off (the guide used 0.5)."
        ),
    ] = 0.0,
    export_preset: Annotated[
        Path | None,
        typer.Option(
            "--export-preset",
            help="Also "
            "write preset.ini (the sampling as llama.cpp's INI preset, to "
            "use as ~/.config/llama.cpp/config.ini) into this folder.",
        ),
    ] = None,
    host: Annotated[
        str | None,
        typer.Option(
            "--host",
            help="llama-server: the address to listen on (llama.cpp's default: 127.0.0.1).",
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", help="llama-server: the port (llama.cpp's default: 8080)."),
    ] = None,
    catalog: CatalogOpt = None,
) -> int:
    """Print the llama.cpp command, as a shell script, that runs a variant as on Ollama."""
    from qwq_ollama.artifacts import export as exporting

    cat = catalog_at(catalog)
    chosen = cat.variant(variant)
    template_path = template or exporting.default_template_path(cat, chosen)
    if not template_path.is_file():
        err(f"note: {template_path} does not exist yet: run `qwq-ollama render`")
    model_path = model or exporting.default_model_path(cat.weights_named(chosen.weights))
    command = exporting.llama_cpp_command(
        cat,
        chosen,
        binary=binary,
        template_path=str(template_path),
        prompt=prompt,
        model_path=model_path,
        dry_multiplier=dry_multiplier,
        host=host,
        port=port,
    )
    for note in exporting.context_notes(cat, chosen, binary=binary, model_path=model_path):
        err(f"note: {note}")
    if export_preset is not None:
        written = exporting.write_llama_cpp_preset(
            cat, chosen, export_preset, dry_multiplier=dry_multiplier
        )
        err(f"wrote {written}")
    write_raw(command.script)
    return 0


@export_app.command("hf")
def export_hf(variant: str, out: OutOpt, catalog: CatalogOpt = None) -> int:
    """Write the files of a GGUF repository for `ollama run hf.co/<repo>`: template, params."""
    from qwq_ollama.artifacts import export as exporting

    cat = catalog_at(catalog)
    for path in exporting.export_hf(cat, cat.variant(variant), out):
        say(f"wrote {path}")
    return 0


@export_app.command("vllm")
def export_vllm(
    variant: str,
    out: OutOpt,
    catalog: CatalogOpt = None,
    manifest: Annotated[
        str | None,
        typer.Option(
            "--manifest",
            help="Also write "
            "a Kubernetes manifest: kubeai (a KubeAI Model carrying "
            "the template, sampling and reasoning parser).",
        ),
    ] = None,
) -> int:
    """Write vLLM's generation_config.json and chat template; print the `vllm serve` command."""
    from qwq_ollama.artifacts import vllm

    cat = catalog_at(catalog)
    chosen = cat.variant(variant)
    paths, command = vllm.export_vllm(cat, chosen, out, manifest=manifest)
    for path in paths:
        err(f"wrote {path}")
    for note in vllm.vllm_notes(chosen):
        err(f"note: {note}")
    say(command)
    return 0


@export_app.command("lmstudio")
def export_lmstudio(
    variants: VariantsArg = None,
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="The folder: one <variant>/model.yaml "
            "each, as under ~/.lmstudio/hub/models/qwq-ollama/.",
        ),
    ] = Path("lmstudio"),
    catalog: CatalogOpt = None,
) -> int:
    """Write an LM Studio model.yaml per variant: weights, template, sampling, thinking."""
    from qwq_ollama.artifacts.lmstudio import export_lmstudio as write

    cat = catalog_at(catalog)
    names = variants or [  # the default set, as every command named none
        v.name for v in cat.chosen() if cat.weights_named(v.weights).source == "hf"
    ]
    for path in write(cat, [cat.variant(n).name for n in names], out):
        say(f"wrote {path}")
    return 0


@export_app.command("helm")
def export_helm(variant: str, out: OutOpt, catalog: CatalogOpt = None) -> int:
    """Write a ConfigMap with the variant's Modelfile and values for the Ollama Helm chart."""
    from qwq_ollama.artifacts import kubernetes

    cat = catalog_at(catalog)
    for path in kubernetes.export_helm(cat, cat.variant(variant), out):
        say(f"wrote {path}")
    return 0


def _note(line: str) -> None:
    err(f"  {line}")


def embed_template(
    variant: str,
    gguf: Annotated[Path, typer.Argument(help="The GGUF to copy.")],
    out: Annotated[
        Path,
        typer.Option("--out", help="The new GGUF (never the source; written whole or not at all)."),
    ],
    catalog: CatalogOpt = None,
    quiet: QuietOpt = False,
) -> int:
    """Copy a GGUF with the variant's chat template embedded; every tensor proven identical."""
    from qwq_ollama.artifacts.gguf_template import write_with_chat_template
    from qwq_ollama.catalog.render import render_variant

    cat = catalog_at(catalog)
    template = render_variant(cat, cat.variant(variant)).hf_template
    say(
        f"wrote {write_with_chat_template(gguf, out, template, None if quiet else _note)} "
        f"(tensors identical to "
        f"{gguf}; chat template of {variant})"
    )
    return 0
