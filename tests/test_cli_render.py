"""`render`, `render --check` and catalog errors, through the real command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from qwq_ollama.catalog.schema import Catalog

from .conftest import ROOT, run_cli, snapshot


def test_committed_outputs_are_current(catalog: Catalog) -> None:
    # Each variant's Modelfile and chat template, and the catalog's JSON Schema.
    outputs = {"models.schema.json"} | {
        f"{name}.{kind}"
        for name in catalog.variants
        for kind in ("Modelfile", "chat_template.jinja")
    }
    assert outputs <= {p.name for p in (ROOT / "modelfiles").iterdir()}
    result = run_cli("render", "--check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith(f"all {len(outputs)} outputs are up to date")


def test_check_catches_a_hand_edited_modelfile(project_copy: Path) -> None:
    catalog = project_copy / "modelfiles" / "models.yaml"
    modelfile = project_copy / "modelfiles" / "qwq-fixed.Modelfile"
    modelfile.write_text(modelfile.read_text().replace("temperature 0.6", "temperature 0.7"))
    before = snapshot(project_copy / "modelfiles")
    result = run_cli("render", "--check", "--catalog", str(catalog))
    assert result.returncode == 1
    assert result.stdout == f"stale: {modelfile}\n"
    assert snapshot(project_copy / "modelfiles") == before
    fixed = run_cli("render", "--catalog", str(catalog))
    assert fixed.returncode == 0 and f"wrote {modelfile}" in fixed.stdout
    assert "PARAMETER temperature 0.6\n" in modelfile.read_text()


@pytest.mark.parametrize(
    "edit, where",
    [
        (("temperature: 1.5", "temperature: -1"), "variants.qwq-minp.parameters.temperature"),
        (("top_p: 1.0", "top_p: 1.5"), "variants.qwq-minp.parameters.top_p"),
        (("num_ctx: 16384", "num_ctx: 0"), "defaults.parameters.num_ctx"),
        (
            ("    num_ctx: 16384\n", "    num_ctx: 16384\n    mirostat: 2\n"),
            "defaults.parameters.mirostat",
        ),
        (("  qwq-minp:\n", "  QWQ Minp:\n"), "variants.QWQ Minp"),
        (("  weights: qwq-32b\n", "  weights: qwq-64b\n"), "defaults.weights"),
        (("  template: qwq\n", "  template: nowhere\n"), "defaults.template"),
        (("  qwq-baseline:\n", "  qwq-fixed:\n"), "variants.qwq-fixed"),
        (("think_prefill: true", "think_prefill: yes please"), "defaults.think_prefill"),
    ],
)
def test_bad_catalog_is_one_line_exit_2_and_writes_nothing(project_copy: Path, edit, where) -> None:
    catalog = project_copy / "modelfiles" / "models.yaml"
    text = catalog.read_text()
    assert edit[0] in text
    catalog.write_text(text.replace(edit[0], edit[1], 1))
    needle = edit[1].strip().split("\n")[-1].strip()
    line = [i for i, ln in enumerate(catalog.read_text().splitlines(), 1) if needle in ln][-1]
    before = snapshot(project_copy / "modelfiles")
    result = run_cli("render", "--catalog", str(catalog))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"Error: {catalog}:")
    assert f": {where}: " in lines[0]
    reported_line = int(lines[0].split(":")[2])
    assert abs(reported_line - line) <= 1, (lines[0], line)
    assert snapshot(project_copy / "modelfiles") == before


def test_system_text_a_modelfile_cannot_carry_is_refused(project_copy: Path) -> None:
    catalog = project_copy / "modelfiles" / "models.yaml"
    catalog.write_text(
        catalog.read_text().replace(
            "    think_prefill: false\n",
            '    think_prefill: false\n    system: "Be brief.\\u00a0Always."\n',
        )
    )
    before = snapshot(project_copy / "modelfiles")
    result = run_cli("render", "--catalog", str(catalog))
    assert result.returncode == 2
    assert "variants.qwq-noprefill.system: SYSTEM contains U+00A0 (NO-BREAK SPACE)" in result.stderr
    assert snapshot(project_copy / "modelfiles") == before
