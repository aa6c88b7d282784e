"""`qwq-ollama validate` and `prompt` against the real daemon."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

from qwq_ollama.catalog.schema import load_catalog
from qwq_ollama.checks.validate import validate
from qwq_ollama.daemon.client import OllamaAPI
from qwq_ollama.daemon.registry import Registrar

from .conftest import DATA, run_cli

OVER_SMOLLM2 = {
    "qwq": {"identical": 14, "transformed": 7},
    "qwen3": {"identical": 16, "transformed": 5},
    "deepseek-r1": {"transformed": 21},
}


def test_fidelity_holds_for_every_variant(api: OllamaAPI, registered) -> None:
    report = validate(
        api,
        registered,
        list(registered.variants),
        weights_name="smollm2-135m",
        checks=("fidelity", "registration"),
    )
    assert len(report.findings) == 2 * len(registered.variants)
    for finding in report.findings:
        assert finding.status in ("pass", "known"), (finding.subject, finding.message)
    for finding in (f for f in report.findings if f.check == "fidelity"):
        conversations = finding.details["conversations"]
        declared = registered.variant(finding.subject).family.divergences
        # Every conversation compared byte for byte, and with what, exactly. Over SmolLM2 (a
        # llama model) Ollama strips no earlier reasoning for Qwen3, so one more Qwen3
        # conversation than over a qwen3 stand-in (tests/test_families_live.py) is compared
        # with its content printed whole.
        compared = Counter(
            "identical" if c["status"] == "pass" else c["compared_with"] for c in conversations
        )
        assert dict(compared) == OVER_SMOLLM2[registered.variant(finding.subject).template], (
            finding.subject,
            conversations,
        )
        known = {k for c in conversations for k in c["divergences"]}
        assert known <= {d.key for d in declared}, finding.subject


def test_validate_names_a_deliberately_broken_template(
    api: OllamaAPI, daemon, project_copy: Path
) -> None:
    family = project_copy / "templates" / "broken"
    shutil.copytree(project_copy / "templates" / "qwq", family)
    gotmpl = family / "ollama.gotmpl.j2"
    # The classic hand-edit mistake: a user turn that is never closed.
    gotmpl.write_text(
        gotmpl.read_text().replace(
            '{{ .Role }}{{ "\\n" }}{{ .Content }}{{ "<|im_end|>\\n" }}',
            '{{ .Role }}{{ "\\n" }}{{ .Content }}{{ "\\n" }}',
            1,
        )
    )
    catalog_file = project_copy / "modelfiles" / "models.yaml"
    catalog_file.write_text(
        catalog_file.read_text()
        + ("  qwq-broken:\n    description: deliberately broken\n    template: broken\n")
    )
    catalog = load_catalog(catalog_file)
    Registrar(api, catalog).create(["qwq-broken"], "smollm2-135m")
    result = run_cli(
        "validate",
        "qwq-broken",
        "--weights",
        "smollm2-135m",
        "--checks",
        "fidelity",
        "--catalog",
        str(catalog_file),
        "--host",
        daemon.host,
        "--json-file",
        str(project_copy / "out.json"),
    )
    assert result.returncode == 1
    assert "FAIL   fidelity      qwq-broken             " in result.stdout
    assert "first difference at char" in result.stdout
    saved = json.loads((project_copy / "out.json").read_text())
    assert saved["failed"] is True


def test_validate_unregistered_variant_is_exit_2_with_a_hint(daemon, project_copy: Path) -> None:
    catalog_file = project_copy / "modelfiles" / "models.yaml"
    catalog_file.write_text(catalog_file.read_text() + "  qwq-nowhere: {}\n")
    result = run_cli(
        "validate",
        "qwq-nowhere",
        "--catalog",
        str(catalog_file),
        "--seed",
        "1",
        "--host",
        daemon.host,
        "--json-file",
        str(project_copy / "partial.json"),
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: variant qwq-nowhere is not registered at {daemon.host}: "
        "run `qwq-ollama create qwq-nowhere`"
    )
    partial = json.loads((project_copy / "partial.json").read_text())
    assert partial["findings"][0]["status"] == "error"


def test_prompt_prints_the_same_bytes_from_both_engines(daemon, registered) -> None:
    conv = DATA / "conversations" / "system-user-assistant-user.json"
    hf = run_cli("prompt", "qwq-fixed", "--messages", str(conv), "--engine", "hf")
    live = run_cli(
        "prompt", "qwq-fixed", "--messages", str(conv), "--engine", "ollama", "--host", daemon.host
    )
    assert hf.returncode == 0 and live.returncode == 0, hf.stderr + live.stderr
    # The conversation carries reasoning in history content (a known divergence), so compare
    # the parts both must agree on: the header and the generation prompt.
    assert hf.stdout.startswith("<|im_start|>system\nYou are QwQ")
    assert hf.stdout.endswith(
        "<|im_start|>user\nAnother one?<|im_end|>\n<|im_start|>assistant\n<think>\n"
    )
    assert live.stdout.endswith(
        "<|im_start|>user\nAnother one?<|im_end|>\n<|im_start|>assistant\n<think>\n"
    )


def test_prompt_is_byte_exact_for_a_plain_conversation(daemon, registered, tmp_path) -> None:
    conv = tmp_path / "c.json"
    conv.write_text(json.dumps([{"role": "user", "content": "{{ .Prompt }} {% raw %} é"}]))
    hf = run_cli("prompt", "qwq-noprefill", "--messages", str(conv))
    live = run_cli(
        "prompt",
        "qwq-noprefill",
        "--messages",
        str(conv),
        "--engine",
        "ollama",
        "--host",
        daemon.host,
    )
    expected = "<|im_start|>user\n{{ .Prompt }} {% raw %} é<|im_end|>\n<|im_start|>assistant\n"
    assert hf.stdout == expected
    assert live.stdout == expected
