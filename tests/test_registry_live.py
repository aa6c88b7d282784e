"""Registering the catalog's variants with the real daemon, over the small model."""

from __future__ import annotations

import subprocess
from pathlib import Path

from qwq_ollama.catalog.render import render_all, render_variant
from qwq_ollama.daemon.client import OllamaAPI
from qwq_ollama.daemon.registry import Registrar, base_model_name, blob_of, status

from .conftest import catalog_with_copies, run_cli


def test_every_variant_registers_with_the_catalogs_template_and_parameters(
    api: OllamaAPI, registered
) -> None:
    for variant in registered.variants.values():
        shown = api.show(variant.name)
        assert shown is not None, variant.name
        assert shown.template == render_variant(registered, variant).ollama_template
        assert shown.parameters == variant.parameters.as_dict()
        assert "num_ctx" in shown.parameters
        # read back from the daemon's Modelfile text: the prefilled variants' PARSER, else none
        assert shown.parser == variant.parser, variant.name
    assert {v.parser for v in registered.variants.values()} == {"qwen3-thinking", None}


def test_variants_are_thinking_and_tool_capable(api: OllamaAPI, registered) -> None:
    for name in registered.variants:
        capabilities = api.show(name).capabilities  # type: ignore[union-attr]
        assert "thinking" in capabilities and "tools" in capabilities, (name, capabilities)


def test_variants_share_one_weights_blob_from_the_base_model(api: OllamaAPI, registered) -> None:
    digest = blob_of(api, base_model_name(registered.weights["smollm2-135m"]))
    assert digest is not None
    for name in registered.variants:
        assert blob_of(api, name) == digest


def test_deleting_a_variant_keeps_the_weights(
    api: OllamaAPI, registered, project_copy: Path
) -> None:
    catalog = catalog_with_copies(project_copy, "qwq-minp", prefix="deleted")
    Registrar(api, catalog).create(["deleted-qwq-minp"], "smollm2-135m")
    digest = blob_of(api, base_model_name(catalog.weights["smollm2-135m"]))
    api.delete("deleted-qwq-minp")
    assert api.show("deleted-qwq-minp") is None
    assert api.has_blob(digest)  # type: ignore[arg-type]
    report = Registrar(api, catalog).create(["deleted-qwq-minp"], "smollm2-135m")
    assert report.created == ["deleted-qwq-minp"] and not report.base_created


def test_second_create_changes_nothing_and_says_so(daemon, registered) -> None:
    result = run_cli("create", "--weights", "smollm2-135m", "--host", daemon.host)
    assert result.returncode == 0, result.stderr
    for name in [v.name for v in registered.chosen()]:  # none named: the default set
        assert f"{name} is up to date" in result.stdout
    assert "created" not in result.stdout


def test_list_shows_registration_and_drift(
    api: OllamaAPI, daemon, registered, project_copy: Path
) -> None:
    catalog = catalog_with_copies(project_copy, "qwq-baseline", prefix="drifted")
    Registrar(api, catalog).create(["drifted-qwq-baseline"], "smollm2-135m")
    result = run_cli(
        "list", "--weights", "smollm2-135m", "--host", daemon.host, "--catalog", str(catalog.path)
    )
    assert result.returncode == 0, result.stderr
    [row] = [ln for ln in result.stdout.splitlines() if "drifted-qwq-baseline" in ln]
    assert "up to date" in row, result.stdout
    for _ in api.create(
        "drifted-qwq-baseline", from_="drifted-qwq-baseline", parameters={"repeat_penalty": 1.3}
    ):
        pass
    rows = {r.variant: r for r in status(api, catalog, "smollm2-135m")}
    assert list(rows["drifted-qwq-baseline"].drift) == ["parameters"]
    assert rows["qwq-fixed"].drift == {}
    report = Registrar(api, catalog).create(["drifted-qwq-baseline"], "smollm2-135m")
    assert report.created == ["drifted-qwq-baseline"]


def test_rendered_modelfiles_work_with_ollama_create_by_hand(
    ollama_binary, daemon, api: OllamaAPI, registered, tmp_path: Path
) -> None:
    render_all(registered, out_dir=tmp_path, weights=registered.weights["smollm2-135m"])
    for name in ("qwq-noprefill", "qwq-fixed"):  # without a PARSER and with one
        modelfile = tmp_path / f"{name}.Modelfile"
        subprocess.run(
            [str(ollama_binary.path), "create", f"by-hand-{name}", "-f", str(modelfile)],
            check=True,
            capture_output=True,
            env={"OLLAMA_HOST": daemon.host, "HOME": str(tmp_path)},
        )
        by_hand, ours = api.show(f"by-hand-{name}"), api.show(name)
        assert by_hand is not None and ours is not None
        assert by_hand.template == ours.template
        assert by_hand.parameters == ours.parameters
        assert by_hand.license == ours.license
        assert by_hand.parser == ours.parser == registered.variant(name).parser


def test_the_daemon_remembers_which_file_the_weights_came_from(
    api: OllamaAPI, registered, small_gguf: Path
) -> None:
    """From 0.30 on the base model holds a converted copy, not the uploaded file: an alias
    names the file, so a re-run imports nothing on either version."""
    from qwq_ollama.daemon.digests import file_digest
    from qwq_ollama.daemon.registry import source_alias

    weights = registered.weights["smollm2-135m"]
    base, alias = base_model_name(weights), source_alias(weights, file_digest(small_gguf))
    assert blob_of(api, alias) == blob_of(api, base) is not None
    assert not Registrar(api, registered).create(["qwq-fixed"], "smollm2-135m").base_created
    aliases = [n for n in api.list_names() if n.startswith(f"{base}:source-")]
    assert aliases == [f"{alias}"]
