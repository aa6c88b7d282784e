"""The HTTP client against a scripted fake_api daemon (pytest-httpserver): what each answer of the
daemon becomes for the caller. No Ollama needed; the real daemon's side is in the live tests."""

from __future__ import annotations

import json

import pytest
from pytest_httpserver import HTTPServer

from qwq_ollama.daemon.answers import ProgressUpdate, Shown
from qwq_ollama.daemon.client import OllamaAPI
from qwq_ollama.daemon.wire import blob_digest_of, parse_show_parameters
from qwq_ollama.errors import DaemonError, RefusedError

DIGEST = "sha256:" + "ab" * 32


def test_show_of_a_model_the_daemon_does_not_have_is_none(
    httpserver: HTTPServer, fake_api: OllamaAPI
) -> None:
    httpserver.expect_request(
        "/api/show", method="POST", json={"model": "nowhere"}
    ).respond_with_json({"error": "model 'nowhere' not found"}, status=404)
    assert fake_api.show("nowhere") is None


def test_show_returns_the_daemons_answer(httpserver: HTTPServer, fake_api: OllamaAPI) -> None:
    answer = {
        "template": "{{ .Prompt }}",
        "parameters": 'stop "<|im_end|>"',
        "capabilities": ["completion", "thinking"],
    }
    httpserver.expect_request(
        "/api/show", method="POST", json={"model": "qwq-fixed"}
    ).respond_with_json(answer)
    assert fake_api.show("qwq-fixed") == Shown(
        template="{{ .Prompt }}",
        parameters={"stop": ["<|im_end|>"]},
        capabilities=("completion", "thinking"),
    )


@pytest.mark.parametrize("status", [400, 500, 503])
def test_a_failing_show_is_a_daemon_error_with_the_daemons_reason(
    httpserver: HTTPServer, fake_api: OllamaAPI, status: int
) -> None:
    httpserver.expect_request("/api/show").respond_with_json(
        {"error": "disk on fire"}, status=status
    )
    with pytest.raises(DaemonError) as caught:
        fake_api.show("qwq-fixed")
    message = str(caught.value)
    assert "qwq-fixed" in message and "disk on fire" in message and str(status) in message
    assert "\n" not in message


def test_a_non_json_error_body_is_still_reported(
    httpserver: HTTPServer, fake_api: OllamaAPI
) -> None:
    httpserver.expect_request("/api/tags").respond_with_data("bad gateway", status=502)
    with pytest.raises(DaemonError, match="bad gateway"):
        fake_api.list_names()


def test_tags_become_names_and_manifest_digests(
    httpserver: HTTPServer, fake_api: OllamaAPI
) -> None:
    models = [
        {"name": "qwq-fixed:latest", "model": "qwq-fixed:latest", "digest": "d1", "size": 1},
        {"name": "qwq-ollama-weights/smollm2-135m:latest", "digest": "d2"},
    ]
    httpserver.expect_request("/api/tags", method="GET").respond_with_json({"models": models})
    assert fake_api.model_digests() == {
        "qwq-fixed:latest": "d1",
        "qwq-ollama-weights/smollm2-135m:latest": "d2",
    }
    assert fake_api.list_names() == ["qwq-fixed:latest", "qwq-ollama-weights/smollm2-135m:latest"]


@pytest.mark.parametrize("body", [{}, {"models": []}])
def test_a_daemon_without_models_lists_none(
    httpserver: HTTPServer, fake_api: OllamaAPI, body: dict
) -> None:
    httpserver.expect_request("/api/tags").respond_with_json(body)
    assert fake_api.list_names() == []


@pytest.mark.parametrize("status, present", [(200, True), (404, False)])
def test_has_blob_follows_the_status(
    httpserver: HTTPServer, fake_api: OllamaAPI, status: int, present: bool
) -> None:
    httpserver.expect_request(f"/api/blobs/{DIGEST}", method="HEAD").respond_with_data(
        "", status=status
    )
    assert fake_api.has_blob(DIGEST) is present


def test_a_model_the_daemon_refuses_is_a_refusal_naming_it(
    httpserver: HTTPServer, fake_api: OllamaAPI
) -> None:
    httpserver.expect_request("/api/create", method="POST").respond_with_json(
        {"error": "template: :1: unexpected EOF"}, status=400
    )
    with pytest.raises(RefusedError) as caught:
        list(fake_api.create("qwq-broken", from_="base", template="{{ if .Messages }}"))
    assert str(caught.value).startswith("Ollama refused qwq-broken: ")
    assert "unexpected EOF" in str(caught.value)


def test_create_streams_the_daemons_status_lines(
    httpserver: HTTPServer, fake_api: OllamaAPI
) -> None:
    lines = [
        {"status": "using existing layer " + DIGEST},
        {"status": "copying file", "digest": DIGEST, "total": 10, "completed": 4},
        {"status": "success"},
    ]
    httpserver.expect_request("/api/create", method="POST").respond_with_data(
        "".join(json.dumps(line) + "\n" for line in lines), content_type="application/x-ndjson"
    )
    assert list(fake_api.create("qwq-fixed", from_="base")) == [
        ProgressUpdate("using existing layer " + DIGEST),
        ProgressUpdate("copying file", 10, 4),
        ProgressUpdate("success"),
    ]


def test_chat_with_an_unknown_model_says_how_to_register_it(
    httpserver: HTTPServer, fake_api: OllamaAPI
) -> None:
    httpserver.expect_request("/api/chat", method="POST").respond_with_json(
        {"error": "model 'qwq-nowhere' not found"}, status=404
    )
    with pytest.raises(DaemonError) as caught:
        # unseeded: a fake server answers
        list(fake_api.chat_stream("qwq-nowhere", [{"role": "user", "content": "hi"}]))
    assert str(caught.value) == (
        f"model qwq-nowhere is not registered at {fake_api.host}: run "
        "`qwq-ollama create qwq-nowhere`"
    )
    assert caught.value.exit_code == 2


def test_deleting_a_model_that_is_gone_already_is_fine(
    httpserver: HTTPServer, fake_api: OllamaAPI
) -> None:
    httpserver.expect_request("/api/delete", method="DELETE").respond_with_json(
        {"error": "model 'x' not found"}, status=404
    )
    fake_api.delete("x")  # no error: the model is gone, as asked
    assert [r.path for r, _ in httpserver.log] == ["/api/delete"]


def test_a_delete_the_daemon_refuses_is_reported(
    httpserver: HTTPServer, fake_api: OllamaAPI
) -> None:
    httpserver.expect_request("/api/delete", method="DELETE").respond_with_json(
        {"error": "permission denied"}, status=500
    )
    with pytest.raises(DaemonError, match="could not delete x: permission denied"):
        fake_api.delete("x")


def test_no_daemon_at_the_port_says_how_to_start_one() -> None:
    api = OllamaAPI("127.0.0.1:9", timeout=5.0)
    with pytest.raises(DaemonError) as caught:
        api.list_names()
    assert str(caught.value).startswith("cannot reach Ollama at http://127.0.0.1:9: start it")
    assert caught.value.exit_code == 3  # not 2: a script can tell "start it" from bad input


def test_a_daemon_that_answers_no_is_exit_2_not_unreachable(
    httpserver: HTTPServer, fake_api: OllamaAPI
) -> None:
    httpserver.expect_request("/api/show").respond_with_json({"error": "disk on fire"}, status=500)
    with pytest.raises(DaemonError) as caught:
        fake_api.show("qwq-fixed")
    assert caught.value.exit_code == 2


def test_show_parameters_text_reads_back_as_values() -> None:
    # /api/show prints one `%-30s %#v` line per value, in any order; numbers are float64.
    text = "\n".join(
        f"{name:<30} {value}"
        for name, value in [
            ("stop", '"<|im_end|>"'),
            ("temperature", "0.6"),
            ("num_ctx", "16384"),
            ("stop", '"say \\"hi\\"\\n"'),
            ("seed", "1.2e+07"),
            ("min_p", "0"),
            ("use_mmap", "false"),
            ("repeat_penalty", "1"),
        ]
    )
    assert parse_show_parameters(text + "\n") == {
        "stop": ["<|im_end|>", 'say "hi"\n'],
        "temperature": 0.6,
        "num_ctx": 16384,
        "seed": 12_000_000,
        "min_p": 0,
        "use_mmap": False,
        "repeat_penalty": 1,
    }
    assert isinstance(parse_show_parameters("seed 1.2e+07")["seed"], int)
    assert parse_show_parameters("") == {}


def test_the_weights_blob_is_read_from_the_shown_modelfile() -> None:
    hexdigest = DIGEST.removeprefix("sha256:")
    modelfile = (
        '# Modelfile generated by "ollama show"\n# FROM qwq-fixed:latest\n'
        f"FROM /home/u/.ollama/models/blobs/sha256-{hexdigest}\nTEMPLATE x\n"
    )
    assert blob_digest_of(modelfile) == DIGEST
    assert blob_digest_of("FROM qwq-ollama-weights/smollm2-135m\n") is None
