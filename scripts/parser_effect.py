"""What does adding `PARSER qwen3-thinking` to a variant change, on each pinned Ollama?

For each family's variants (over stand-ins of the family's architecture, as docs/fidelity.md),
a private daemon registers the variant as the catalog renders it without its own `parser`, and
a copy `<name>-parser` made `from` it with `parser: qwen3-thinking`. Compared:

- prompt: the corpus prompts of the copy against the variant's (`_debug_render_only`);
- selection: the same with OLLAMA_GO_TEMPLATE=0, which source builds the prompt (as `validate`
  tells it: checks.fidelity.template_source over the corpus);
- capabilities: what /api/show reports for each;
- parse-back: the variant's output shapes (checks/parse_back.py) through the release's own code,
  the TEMPLATE's parsers against the built-in parser, streamed; right = the message it encodes.

Prints a Markdown table (docs/oracles.md quotes it).

    .venv/bin/python scripts/parser_effect.py [--version 0.34.4 ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

import httpx

from qwq_ollama.catalog.builtin_weights import ensure_smollm2
from qwq_ollama.catalog.conversation import load_corpus
from qwq_ollama.catalog.render import hf_prompter, render_variant
from qwq_ollama.catalog.schema import Catalog, Variant, load_catalog
from qwq_ollama.checks.fidelity import judge_prompts, official_renderer, template_source
from qwq_ollama.checks.fidelity_table import over_stand_ins
from qwq_ollama.checks.parse_back import (
    WEATHER_TOOL,
    chunks_of,
    normal,
    output_cases,
    parse_back,
)
from qwq_ollama.checks.validate import live_prompt
from qwq_ollama.daemon.client import OllamaAPI
from qwq_ollama.daemon.registry import Registrar
from qwq_ollama.engines.install import ensure_ollama
from qwq_ollama.engines.private_daemon import OllamaDaemon
from qwq_ollama.facts import OLLAMA_TESTED

PARSER = "qwen3-thinking"
VARIANTS = ("qwq-fixed", "qwq-noprefill", "qwen3-thinking", "qwen3-nothink", "r1-distill-qwen")


def register(binary: Path, models: Path, catalog: Catalog, env: dict[str, str]) -> OllamaDaemon:
    daemon = OllamaDaemon(binary, models, env=env)
    daemon.__enter__()
    api = OllamaAPI(daemon.host)
    Registrar(api, catalog).create(names=list(VARIANTS))
    for name in VARIANTS:
        reply = httpx.post(
            f"{daemon.host}/api/create",
            timeout=120,
            json={"model": f"{name}-parser", "from": name, "parser": PARSER, "stream": False},
        )
        reply.raise_for_status()
    return daemon


def source(api: OllamaAPI, catalog: Catalog, variant: Variant, name: str) -> str:
    """Which template built `name`'s corpus prompts, as `validate` tells it
    (checks.fidelity.template_source): go_template, jinja, other, or unknown (R1's official
    template prints no tool schema to tell by)."""
    render = official_renderer(hf_prompter(catalog, variant))
    shown = api.show(name)
    corpus = load_corpus()
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
    return template_source(results, corpus)


def parse_score(version: str, catalog: Catalog, variant: Variant, parser: str) -> str:
    family = variant.family
    with_tools = "<tool_call>" in family.official_file.read_text(encoding="utf-8")
    cases = output_cases(
        variant.generation_prompt, family.think_open, family.think_close, with_tools
    )
    tools = [WEATHER_TOOL] if with_tools else None
    prompt = hf_prompter(catalog, variant)([{"role": "user", "content": "Weather?"}], tools)
    got = parse_back(
        version,
        render_variant(catalog, variant).ollama_template,
        prompt,
        [chunks_of(c.output, c.split_at) for c in cases],
        tools=tools,
        parser=parser,
        last_message={"role": "user", "content": "Weather?"},
    )
    wrong = [c.name for c, g in zip(cases, got, strict=True) if normal(g) != c.want]
    return f"{len(cases) - len(wrong)}/{len(cases)}" + (f" ({', '.join(wrong)})" if wrong else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", nargs="*", default=list(OLLAMA_TESTED))
    args = parser.parse_args()
    ensure_smollm2()
    # each variant as the TEMPLATE's parsers alone would run it, whatever the catalog adopted
    catalog = over_stand_ins(load_catalog())
    catalog = dataclasses.replace(
        catalog,
        variants={n: dataclasses.replace(v, parser=None) for n, v in catalog.variants.items()},
    )
    print(
        f"| Ollama | variant | prompt ({len(load_corpus())}) | "
        "source, GO_TEMPLATE=0: TEMPLATE / +PARSER | "
        "capabilities | parse-back TEMPLATE | parse-back +PARSER |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for version in args.version:
        binary = ensure_ollama(version).path
        with tempfile.TemporaryDirectory() as tmp:
            daemon = register(binary, Path(tmp) / "a", catalog, {})
            api = OllamaAPI(daemon.host)
            same: dict[str, int] = {}
            caps: dict[str, str] = {}
            for name in VARIANTS:
                same[name] = sum(
                    api.render_prompt(name, c.messages, c.tools)
                    == api.render_prompt(f"{name}-parser", c.messages, c.tools)
                    for c in load_corpus()
                )
                plain, with_parser = api.show(name), api.show(f"{name}-parser")
                caps[name] = (
                    "same"
                    if plain and with_parser and plain.capabilities == with_parser.capabilities
                    else f"{plain and plain.capabilities} -> "
                    f"{with_parser and with_parser.capabilities}"
                )
            daemon.__exit__(None, None, None)
            daemon = register(binary, Path(tmp) / "b", catalog, {"OLLAMA_GO_TEMPLATE": "0"})
            api = OllamaAPI(daemon.host)
            chosen = {
                name: f"{source(api, catalog, catalog.variant(name), name)} / "
                f"{source(api, catalog, catalog.variant(name), name + '-parser')}"
                for name in VARIANTS
            }
            daemon.__exit__(None, None, None)
        for name in VARIANTS:
            variant = catalog.variant(name)
            print(
                f"| {version} | {name} | {same[name]} same | {chosen[name]} | {caps[name]} | "
                f"{parse_score(version, catalog, variant, '')} | "
                f"{parse_score(version, catalog, variant, PARSER)} |"
            )


if __name__ == "__main__":
    main()
