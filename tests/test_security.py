"""Templates are sandboxed, conversation text is data, and secrets never reach output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qwq_ollama.errors import InputError
from qwq_ollama.catalog.chat_template import render_chat

from .conftest import run_cli

SECRET = "hf_qwqOllamaTestSecret0123456789"


@pytest.mark.parametrize("template", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ messages.__class__.__init__.__globals__ }}",
    "{% set x = messages.append(1) %}{{ x }}",  # immutable sandbox: no mutation of inputs
    "{{ cycler.__init__.__globals__.os.system('echo pwned') }}",
])
def test_model_supplied_chat_templates_cannot_escape_the_sandbox(template: str) -> None:
    messages = [{"role": "user", "content": "hi"}]
    with pytest.raises(InputError, match="chat template"):
        render_chat(template, messages)
    assert messages == [{"role": "user", "content": "hi"}]


def test_secrets_never_appear_in_output_logs_or_reports(daemon, registered, tmp_path: Path
                                                        ) -> None:
    env = {"HF_TOKEN": SECRET, "HUGGING_FACE_HUB_TOKEN": SECRET}
    conv = tmp_path / "c.json"
    conv.write_text(json.dumps([{"role": "user", "content": "hi"}]))
    outputs = []
    for args in (["render", "--check"], ["list", "--weights", "smollm2-135m"],
                 ["prompt", "qwq-fixed", "--messages", str(conv), "--engine", "ollama"],
                 ["validate", "qwq-fixed", "--weights", "smollm2-135m", "--checks",
                  "fidelity,registration", "--json", str(tmp_path / "v.json"),
                  "--report", str(tmp_path / "v.md")],
                 ["create", "--weights", "nowhere"], ["prompt", "nope", "--messages", "x"]):
        result = run_cli(*args, "--host", daemon.host, env=env) if args[0] not in (
            "render",) else run_cli(*args, env=env)
        outputs += [result.stdout, result.stderr]
    outputs += [(tmp_path / "v.json").read_text(), (tmp_path / "v.md").read_text(),
                daemon.log_path.read_text(errors="replace")]
    assert outputs[6]  # the validate run produced a table
    for text in outputs:
        assert SECRET not in text


def test_the_private_daemon_does_not_inherit_tokens(ollama_binary, tmp_path: Path,
                                                    monkeypatch) -> None:
    from qwq_ollama.server.private_daemon import OllamaDaemon

    monkeypatch.setenv("HF_TOKEN", SECRET)
    with OllamaDaemon(ollama_binary.path, tmp_path / "models") as daemon:
        environ = Path(f"/proc/{daemon.process.pid}/environ").read_bytes()  # type: ignore[union-attr]
        assert b"OLLAMA_MODELS=" in environ
        assert SECRET.encode() not in environ
