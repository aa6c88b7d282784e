"""Which template does Ollama >= 0.30 build each variant's prompt with, and how faithfully?

For the small model's GGUF as shipped (its own chat template), without a template, and with the
variant's verified Hugging Face template embedded, with OLLAMA_GO_TEMPLATE unset, off and on: a
private daemon registers qwq-fixed and qwq-noprefill, then reports the source it logged
("template selection"), the source our API probe sees, and the corpus prompts against the HF
rendering. Prints a Markdown table (docs/fidelity.md quotes it).

    .venv/bin/python scripts/template_selection.py [--version 0.32.15]
"""

from __future__ import annotations

import argparse
import re
import shutil
import tempfile
from pathlib import Path

import yaml

from qwq_ollama.artifacts.gguf_template import write_with_chat_template
from qwq_ollama.catalog.builtin_weights import ensure_smollm2
from qwq_ollama.catalog.conversation import load_corpus
from qwq_ollama.catalog.render import hf_prompter, render_variant
from qwq_ollama.catalog.schema import load_catalog
from qwq_ollama.checks.fidelity import judge_prompts, official_renderer, template_source
from qwq_ollama.checks.validate import live_prompt
from qwq_ollama.daemon.client import OllamaAPI
from qwq_ollama.daemon.registry import Registrar
from qwq_ollama.engines.install import ensure_ollama
from qwq_ollama.engines.private_daemon import OllamaDaemon
from qwq_ollama.facts import OLLAMA_CURRENT

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("qwq-fixed", "qwq-noprefill")
SETTINGS = {
    "unset": {},
    "OLLAMA_GO_TEMPLATE=0": {"OLLAMA_GO_TEMPLATE": "0"},
    "OLLAMA_GO_TEMPLATE=1": {"OLLAMA_GO_TEMPLATE": "1"},
}


def ggufs(work: Path) -> dict[str, Path]:
    """The three kinds of weights file, all SmolLM2's tensors."""
    shipped = ensure_smollm2()
    base = load_catalog(ROOT / "modelfiles" / "models.yaml")
    template = render_variant(base, base.variant("qwq-fixed")).hf_template
    return {
        "own template (SmolLM2's)": shipped,
        "no template": write_with_chat_template(shipped, work / "none.gguf", None),
        "qwq-fixed's HF template": write_with_chat_template(shipped, work / "ours.gguf", template),
    }


def catalog_over(gguf: Path, work: Path) -> Path:
    """A copy of the catalog whose small weights are this file."""
    shutil.copytree(ROOT / "templates", work / "templates", dirs_exist_ok=True)
    data = yaml.safe_load((ROOT / "modelfiles" / "models.yaml").read_text())
    data["templates"] = str(work / "templates")
    data["weights"]["smollm2-135m"] = {"gguf": str(gguf)}
    path = work / "models.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def measure(
    binary: Path, catalog_file: Path, env: dict[str, str], work: Path, notes: list[str]
) -> list[str]:
    """One table row's cells; names of conversations that differ unexplained go to `notes`."""
    catalog = load_catalog(catalog_file)
    corpus = load_corpus()
    cells = []
    with OllamaDaemon(binary, work / "models", env=env) as daemon:
        api = OllamaAPI(daemon.host)
        Registrar(api, catalog).create(list(VARIANTS), "smollm2-135m")
        for name in VARIANTS:
            variant = catalog.variant(name)
            render = official_renderer(hf_prompter(catalog, variant))
            shown = api.show(name)
            results = [
                judge_prompts(
                    c.name,
                    c,
                    render(c),
                    live_prompt(api, name, c),
                    known=variant.family.divergences,
                    render=render,
                    architecture=(shown.architecture if shown else None) or "",
                )
                for c in corpus
            ]
            counts = {s: sum(r.status == s for r in results) for s in ("pass", "known", "fail")}
            unexplained = [r.conversation for r in results if r.status == "fail"]
            logged = re.findall(
                rf'template selection" model=\S*/{name}:latest selected=(\S+)',
                daemon.log_path.read_text(),
            )
            cells.append(
                f"{logged[-1] if logged else '-'} / {template_source(results, corpus)}"
                f" / {counts['pass']} identical, {counts['known']} known, "
                f"{counts['fail']} other"
            )
            if unexplained and len(unexplained) < len(results):
                notes.append(f"{name}: {', '.join(unexplained)}")
    shutil.rmtree(work / "models", ignore_errors=True)
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default=OLLAMA_CURRENT)
    version = parser.parse_args().version
    binary = ensure_ollama(version).path
    print(
        f"Ollama {version}: the source the daemon logged / the source the API probe saw / "
        "corpus prompts against the HF rendering (identical, known divergence, other)"
    )
    print()
    print("| weights file | OLLAMA_GO_TEMPLATE | " + " | ".join(VARIANTS) + " |")
    print("| --- | --- |" + " --- |" * len(VARIANTS))
    footnotes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="qwq-ollama-selection-") as tmp:
        work = Path(tmp)
        for label, gguf in ggufs(work).items():
            catalog_file = catalog_over(gguf, work)
            for setting, env in SETTINGS.items():
                notes: list[str] = []
                cells = measure(binary, catalog_file, env, work, notes)
                print(f"| {label} | {setting} | " + " | ".join(cells) + " |", flush=True)
                footnotes += [f"- {label}, {setting}, {note}" for note in notes]
    if footnotes:
        print("\nConversations that differ in other ways:\n" + "\n".join(footnotes))


if __name__ == "__main__":
    main()
