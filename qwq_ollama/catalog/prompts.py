"""The named prompts shipped with the package (the guide's Flappy Bird test among them)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files

from qwq_ollama.errors import InputError


@dataclass(frozen=True)
class NamedPrompt:
    name: str
    text: str
    code: bool  # check the answer's last python block
    run: bool  # and run it headless


@lru_cache(maxsize=1)
def builtin_prompts() -> dict[str, NamedPrompt]:
    data = json.loads(files("qwq_ollama").joinpath("data/prompts.json").read_text("utf-8"))
    return {
        name: NamedPrompt(name, p["text"], bool(p["code"]), bool(p["run"]))
        for name, p in data["prompts"].items()
    }


def get_prompt(name: str) -> NamedPrompt:
    prompts = builtin_prompts()
    if name not in prompts:
        raise InputError(f"unknown prompt {name!r} (known: {', '.join(prompts)})", field="--prompt")
    return prompts[name]
