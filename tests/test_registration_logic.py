"""The one answer to "is this variant registered right?", and doctor's and validate's use of it,
against a fake daemon at the HTTP level (real HTTP on loopback, answers shaped like Ollama's).

The live tests prove the same against the real daemon; these pin down the decisions: which
weights a variant runs over, what differs, and what each command says about it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from qwq_ollama.catalog.schema import Catalog
from qwq_ollama.checks.doctor import diagnose
from qwq_ollama.checks.validate import ValidationReport
from qwq_ollama.daemon.client import OllamaAPI
from qwq_ollama.daemon.registry import registration, status
from qwq_ollama.errors import DaemonError
from qwq_ollama.facts import OLLAMA_TESTED

from .conftest import SMALL_BLOB, FakeDaemon, show_answer

OTHER_BLOB = "sha256:" + "b" * 64


def test_a_variant_as_the_catalog_says_is_up_to_date(
    catalog: Catalog, fake: FakeDaemon, fake_api: OllamaAPI
) -> None:
    fake.base("smollm2-135m", SMALL_BLOB)
    fake.models["qwq-fixed"] = show_answer(catalog, "qwq-fixed", "smollm2-135m", SMALL_BLOB)
    found = registration(fake_api, catalog, catalog.variant("qwq-fixed"), "smollm2-135m")
    assert found.up_to_date and found.over == "smollm2-135m" and found.drift == {}


@pytest.mark.parametrize(
    ("name", "modelfile_tail", "drift"),
    [
        # registered without the PARSER the catalog gives it (an older create, a hand edit)
        ("qwq-fixed", "", {"parser": "parser (catalog qwen3-thinking, live unset)"}),
        # a PARSER written inside the TEMPLATE's text is template, not a command
        (
            "qwq-fixed",
            'TEMPLATE """x\nPARSER qwen3-thinking\n"""\n',
            {"parser": "parser (catalog qwen3-thinking, live unset)"},
        ),
        # a PARSER on a variant the catalog gives none (it would file answers as thinking)
        (
            "qwq-noprefill",
            "PARSER qwen3-thinking\n",
            {"parser": "parser (catalog unset, live qwen3-thinking)"},
        ),
    ],
)
def test_the_parser_is_read_from_the_modelfile_and_a_wrong_one_is_drift(
    catalog: Catalog,
    fake: FakeDaemon,
    fake_api: OllamaAPI,
    name: str,
    modelfile_tail: str,
    drift: dict[str, str],
) -> None:
    """Ollama reports a model's PARSER only in its Modelfile text (no pinned release fills
    /api/show's `parser`), so that is where registration must read it."""
    fake.base("smollm2-135m", SMALL_BLOB)
    fake.models[name] = show_answer(
        catalog,
        name,
        "smollm2-135m",
        SMALL_BLOB,
        modelfile=f"# Modelfile\nFROM /models/blobs/{SMALL_BLOB.replace(':', '-')}\n"
        + modelfile_tail,
    )
    found = registration(fake_api, catalog, catalog.variant(name), "smollm2-135m")
    assert found.drift == drift


def test_other_weights_are_named_not_the_license_that_follows(
    catalog: Catalog, fake: FakeDaemon, fake_api: OllamaAPI
) -> None:
    # Registered over the small weights; the catalog's own weights were never imported (as
    # after a create killed before it imported them): the weights differ, nothing else does.
    fake.base("smollm2-135m", SMALL_BLOB)
    fake.models["qwq-fixed"] = show_answer(catalog, "qwq-fixed", "smollm2-135m", SMALL_BLOB)
    found = registration(fake_api, catalog, catalog.variant("qwq-fixed"))
    assert found.over == "smollm2-135m"
    assert found.drift == {"weights": "weights (registered over smollm2-135m, not qwq-32b)"}
    assert found.only_weights_differ


def test_weights_nobody_vouches_for_are_a_difference(
    catalog: Catalog, fake: FakeDaemon, fake_api: OllamaAPI
) -> None:
    fake.models["qwq-fixed"] = show_answer(catalog, "qwq-fixed", "smollm2-135m", OTHER_BLOB)
    found = registration(fake_api, catalog, catalog.variant("qwq-fixed"), "smollm2-135m")
    assert found.over is None
    assert found.drift == {
        "weights": "weights (cannot be confirmed: the base model "
        "qwq-ollama-weights/smollm2-135m is not registered)"
    }


def test_changed_parameters_carry_both_values(
    catalog: Catalog, fake: FakeDaemon, fake_api: OllamaAPI
) -> None:
    fake.base("smollm2-135m", SMALL_BLOB)
    fake.models["qwq-fixed"] = show_answer(
        catalog, "qwq-fixed", "smollm2-135m", SMALL_BLOB, parameters={"temperature": 0.9}
    )
    found = registration(fake_api, catalog, catalog.variant("qwq-fixed"), "smollm2-135m")
    assert found.drift == {"parameters": "parameters (temperature: catalog 0.6, live 0.9)"}


def test_list_doctor_and_validate_agree(
    catalog: Catalog, fake: FakeDaemon, fake_api: OllamaAPI
) -> None:
    from qwq_ollama.checks.validate import check_registration

    fake.base("smollm2-135m", SMALL_BLOB)
    for name in catalog.variants:
        fake.models[name] = show_answer(catalog, name, "smollm2-135m", SMALL_BLOB)
    rows = status(fake_api, catalog)
    assert {row.variant: list(row.drift) for row in rows} == {
        v.name: ["weights"] for v in catalog.chosen()
    }
    doctor = [f for f in diagnose(fake_api, catalog) if f.check == "registration"]
    assert {f.status for f in doctor} == {"warn"}
    assert all("registered over weights smollm2-135m" in f.message for f in doctor)
    verdict = check_registration(fake_api, catalog, catalog.variant("qwq-fixed"), None)
    assert verdict.status == "fail"
    assert verdict.message.startswith(
        "differs from the catalog in weights (registered over smollm2-135m, not qwq-32b)"
    )


@pytest.mark.parametrize(
    "version, status_, words",
    [
        ("0.34.4", "pass", "Ollama 0.34.4 at "),
        ("0.32.15", "pass", "Ollama 0.32.15 at "),
        ("0.28.1", "pass", "Ollama 0.28.1 at "),
        (
            "0.35.0",
            "warn",
            "untested version (tested: 0.34.4, 0.32.15, 0.24.0); the checks still ran",
        ),
        ("0.20.3", "fail", "older than 0.24.0"),
    ],
)
def test_doctor_judges_the_daemon_version(
    catalog: Catalog,
    httpserver: HTTPServer,
    fake_api: OllamaAPI,
    version: str,
    status_: str,
    words: str,
) -> None:
    FakeDaemon(httpserver, version)
    first = diagnose(fake_api, catalog, "smollm2-135m")[0]
    assert (first.check, first.status) == ("daemon", status_)
    assert words in first.message
    assert "downgrade" not in (first.fix or "") and "0.24.0 (`" not in (first.fix or "")


def test_a_daemon_older_than_the_minimum_is_refused_in_one_line(
    httpserver: HTTPServer, fake_api: OllamaAPI
) -> None:
    FakeDaemon(httpserver, "0.11.4")
    with pytest.raises(DaemonError) as caught:
        fake_api.supported_version()
    assert str(caught.value) == (
        f"Ollama 0.11.4 at {fake_api.host} is too old: this tool needs Ollama 0.24.0 or newer"
    )


def test_a_daemon_rendering_another_template_fails_fidelity(
    catalog: Catalog, fake: FakeDaemon, httpserver: HTTPServer, fake_api: OllamaAPI
) -> None:
    """A daemon that renders with a Jinja chat template (a GGUF's own, as Ollama 0.30+ may
    choose) instead of the catalog's Go TEMPLATE fails, even when every prompt is identical."""
    from qwq_ollama.catalog.render import hf_prompter
    from qwq_ollama.checks.validate import check_fidelity

    variant = catalog.variant("qwq-fixed")
    as_jinja = hf_prompter(catalog, variant)

    def render(request: Any) -> Any:
        from werkzeug.wrappers import Response

        body = request.get_json()
        prompt = as_jinja(body["messages"], body.get("tools"))
        return Response(
            json.dumps({"_debug_info": {"rendered_template": prompt}}),
            content_type="application/json",
        )

    httpserver.expect_request("/api/chat", method="POST").respond_with_handler(render)
    verdict = check_fidelity(fake_api, catalog, variant)
    assert verdict.status == "fail"
    assert verdict.details["template_source"] == "jinja"
    assert verdict.message == (
        "the daemon builds prompts with a Jinja chat template (the "
        "GGUF's own), not the catalog's Modelfile TEMPLATE (Go)"
    )
    assert verdict.fix is not None and "OLLAMA_GO_TEMPLATE" in verdict.fix


@pytest.mark.parametrize(
    "version, untested", [("0.35.0", True), ("0.34.4", False), ("0.28.1", False)]
)
def test_validate_says_once_that_a_newer_daemon_is_untested_and_goes_on(
    catalog: Catalog, httpserver: HTTPServer, fake_api: OllamaAPI, version: str, untested: bool
) -> None:
    from qwq_ollama.checks.validate import validate

    FakeDaemon(httpserver, version)  # none of the variants is registered there
    report = ValidationReport()
    with pytest.raises(DaemonError):
        validate(fake_api, catalog, ["qwq-fixed"], checks=("registration",), report=report)
    notes = [f for f in report.findings if "untested version" in f.message]
    assert len(notes) == int(untested)
    if untested:
        assert notes[0].status == "warn"  # never a failure by itself
        assert notes[0].message.endswith(
            f"untested version (tested: {', '.join(OLLAMA_TESTED)}); the checks still ran"
        )
    # the checks went on: the unregistered variant is the finding that stops them
    assert report.findings[-1].check == "registered"
