"""`qwq-ollama plan` read as a person reads it: when nothing fits it says why instead of a
negative budget and an unexplained MAX 0, when it plans a shorter num_ctx than the catalog's it
says so (on stderr, the table alone on stdout), and `--json` carries the same as docs/reference.md documents. Offline: the small
model's header, on disk."""

from __future__ import annotations

import json
import re

from .conftest import run_cli
from .test_cli_contract import documented_fields

SMALL = ("qwq-fixed", "--weights", "smollm2-135m")  # num_ctx 16384 over a model trained on 8192


def test_a_gpu_too_small_for_anything_is_explained() -> None:
    shown = run_cli("plan", *SMALL, "--vram", "1GiB")
    assert shown.returncode == 0, shown.stderr
    first = shown.stdout.splitlines()[0]
    assert "so no layer goes on it" in first and not re.search(r"use -\d", first), first
    assert re.search(r"^qwq-fixed\s+8192 .* partial\s+0 0$", shown.stdout, re.M), shown.stdout
    assert "qwq-fixed: MAX 0: no num_ctx keeps every layer on the GPU" in shown.stderr


def test_a_num_ctx_beyond_the_training_context_is_said() -> None:
    shown = run_cli("plan", *SMALL, "--vram", "24GiB")
    assert shown.returncode == 0, shown.stderr
    assert (
        "qwq-fixed: num_ctx 16384 is beyond the model's training context: Ollama runs it at "
        "8192, and the row is planned at that"
    ) in shown.stderr.splitlines()
    assert "MAX 0" not in shown.stderr


def test_plan_json_is_the_documented_document() -> None:
    shown = run_cli("plan", *SMALL, "--vram", "1GiB", "--json")
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert set(document) - {"schema_version"} == documented_fields("plan --json")
    (row,) = document["variants"]
    assert (row["variant"], row["num_ctx_asked"], row["num_ctx"]) == ("qwq-fixed", 16384, 8192)
    assert (row["on_gpu"], row["max_ctx"]) == ("partial", 0)
    assert document["budget"] <= 0 and row["total"] == row["weights"] + row["kv"] + row["compute"]
    assert len(document["notes"]) == 2
