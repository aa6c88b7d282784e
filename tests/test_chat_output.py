"""`qwq-ollama chat --json` and `--answer-only` on a real daemon of each pinned release: one JSON
document as docs/reference.md gives it, or the answer alone with no headings. Seeded, and only
what holds for every sample is asserted (the stream's shape, never what the model said)."""

from __future__ import annotations

import json
from pathlib import Path

from qwq_ollama.checks.generation import REPEAT_LIMIT
from qwq_ollama.engines.install import OllamaBinary
from qwq_ollama.engines.private_daemon import OllamaDaemon

from .conftest import run_cli
from .test_cli_contract import documented_fields

VARIANT = "qwq-noprefill"


def test_chat_json_and_answer_only(
    ollama_binary: OllamaBinary, small_gguf: Path, tmp_path: Path
) -> None:
    assert small_gguf.exists()
    with OllamaDaemon(ollama_binary.path, tmp_path / "models") as daemon:
        host = ["--host", daemon.host]
        made = run_cli("create", VARIANT, "--weights", "smollm2-135m", "-q", *host)
        assert made.returncode == 0, made.stderr
        ask = (VARIANT, "Say hi.", "--num-predict", "24", *host)
        as_json = run_cli("chat", *ask, "--seed", "3", "--json")
        assert as_json.returncode == 0, as_json.stderr
        document = json.loads(as_json.stdout)  # stdout is the one document: nothing streamed
        assert set(document) - {"schema_version"} == documented_fields("chat --json")
        assert document["variant"] == VARIANT and document["thinking_capped_at"] is None
        assert isinstance(document["thinking"], str) and isinstance(document["content"], str)
        assert 0 <= document["eval_count"] <= 24
        assert document["done_reason"] in ("stop", "length", REPEAT_LIMIT)
        answer = run_cli("chat", *ask, "--seed", "3", "--answer-only")
        assert answer.returncode == 0, answer.stderr
        assert not answer.stdout.startswith("--- thinking ---")
        assert "\n--- done: " not in answer.stdout and answer.stdout.endswith("\n")
        plain = run_cli("chat", *ask, "--seed", "3")
        assert plain.stdout.startswith("--- thinking ---\n") and "\n--- done: " in plain.stdout
