"""Templates are sandboxed, conversation text is data, and secrets never reach output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qwq_ollama.catalog.chat_template import render_chat
from qwq_ollama.engines.private_daemon import OllamaDaemon
from qwq_ollama.errors import InputError

from .conftest import run_cli

SECRET = "hf_qwqOllamaTestSecret0123456789"


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ messages.__class__.__init__.__globals__ }}",
        "{% set x = messages.append(1) %}{{ x }}",  # immutable sandbox: no mutation of inputs
        "{{ cycler.__init__.__globals__.os.system('echo pwned') }}",
    ],
)
def test_model_supplied_chat_templates_cannot_escape_the_sandbox(template: str) -> None:
    messages = [{"role": "user", "content": "hi"}]
    with pytest.raises(InputError, match="chat template"):
        render_chat(template, messages)
    assert messages == [{"role": "user", "content": "hi"}]


def test_secrets_never_appear_in_output_logs_or_reports(daemon, registered, tmp_path: Path) -> None:
    env = {"HF_TOKEN": SECRET, "HUGGING_FACE_HUB_TOKEN": SECRET}
    conv = tmp_path / "c.json"
    conv.write_text(json.dumps([{"role": "user", "content": "hi"}]))
    host = ["--host", daemon.host]
    runs = {
        name: run_cli(*args, env=env)
        for name, args in {
            "render": ["render", "--check"],
            "list": ["list", "--weights", "smollm2-135m", *host],
            "prompt": ["prompt", "qwq-fixed", "--messages", str(conv), "--engine", "ollama", *host],
            "validate": [
                "validate",
                "qwq-fixed",
                "--weights",
                "smollm2-135m",
                "--checks",
                "fidelity,registration",
                "--json-file",
                str(tmp_path / "v.json"),
                "--report",
                str(tmp_path / "v.md"),
                *host,
            ],
            "create-unknown-weights": ["create", "--weights", "nowhere", *host],
            "prompt-unknown-variant": ["prompt", "nope", "--messages", "x", *host],
        }.items()
    }
    # Each command did its work (or refused its bad input), so there was output to leak into.
    assert {name: r.returncode for name, r in runs.items()} == {
        "render": 0,
        "list": 0,
        "prompt": 0,
        "validate": 0,
        "create-unknown-weights": 2,
        "prompt-unknown-variant": 2,
    }
    assert "qwq-fixed" in runs["validate"].stdout  # the validate run produced its table
    outputs = [text for r in runs.values() for text in (r.stdout, r.stderr)]
    outputs += [
        (tmp_path / "v.json").read_text(),
        (tmp_path / "v.md").read_text(),
        daemon.log_path.read_text(errors="replace"),
    ]
    for text in outputs:
        assert SECRET not in text


def test_the_private_daemon_does_not_inherit_tokens(
    ollama_binary, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", SECRET)
    with OllamaDaemon(ollama_binary.path, tmp_path / "models") as daemon:
        environ = Path(f"/proc/{daemon.process.pid}/environ").read_bytes()  # type: ignore[union-attr]
        assert b"OLLAMA_MODELS=" in environ
        assert SECRET.encode() not in environ
