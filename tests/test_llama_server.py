"""The llama.cpp engine without a server: what the client sends and reads, how a private server
that cannot start is reported, the export's llama-server flags and notes, the template copy, and
the command line's refusals. The live server is in test_llama_cpp_live.py."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import time
from pathlib import Path
from typing import Any

import gguf
import pytest

from qwq_ollama.artifacts.export import (
    LLAMA_CPP_DEFAULT_ORDER,
    PENALTY_ORDER,
    context_notes,
    effective_parameters,
    llama_cpp_command,
    llama_server_settings,
)
from qwq_ollama.artifacts.gguf_template import CHAT_TEMPLATE_KEY, write_with_chat_template
from qwq_ollama.catalog.prompts import NamedPrompt
from qwq_ollama.catalog.render import render_variant
from qwq_ollama.catalog.schema import Catalog
from qwq_ollama.checks.ab import RunStats, markdown, summarise, table_rows
from qwq_ollama.checks.llama_cpp import loaded_template
from qwq_ollama.engines.llama_server import (
    LlamaServer,
    _parts,
    openai_message,
    request_fields,
    server_url,
    streamed_part,
)
from qwq_ollama.engines.private_daemon import free_port
from qwq_ollama.engines.variant_server import serve_variant
from qwq_ollama.errors import DaemonError, InputError, RefusedError

from .conftest import run_cli
from .test_gguf_info import write_qwen2

MODEL = "unsloth-QwQ-32B-GGUF/QwQ-32B-Q4_K_M.gguf"


def test_ollama_messages_become_what_llama_server_reads() -> None:
    call = {"function": {"name": "add", "arguments": {"b": 2, "a": [1, "é"]}}}
    message = {"role": "assistant", "content": "", "thinking": "add them", "tool_calls": [call]}
    sent = openai_message(message)
    assert sent == {
        "role": "assistant",
        "content": "",
        "reasoning_content": "add them",
        "tool_calls": [
            {
                "type": "function",
                "function": {"name": "add", "arguments": '{"b": 2, "a": [1, "é"]}'},
            }
        ],
    }
    assert (
        json.loads(sent["tool_calls"][0]["function"]["arguments"]) == call["function"]["arguments"]
    )  # key order kept: the template prints them in the client's order
    assert openai_message({"role": "tool", "content": "3", "tool_name": "add"}) == {
        "role": "tool",
        "content": "3",
        "name": "add",
    }
    assert "thinking" in message  # the caller's message is left as it was
    # An OpenAI client's call (id, JSON-text arguments) goes as it came, not quoted twice.
    openai_call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "add", "arguments": '{"a": 1}'},
    }
    assert openai_message({"role": "assistant", "content": None, "tool_calls": [openai_call]})[
        "tool_calls"
    ] == [openai_call]


def test_request_options_map_to_llama_server_fields() -> None:
    assert request_fields({"num_predict": 64, "seed": 1, "temperature": 0}) == {
        "max_tokens": 64,
        "seed": 1,
        "temperature": 0,
    }
    with pytest.raises(InputError, match="option 'num_ctx' has no llama-server counterpart"):
        request_fields({"num_ctx": 4096})


def test_stream_chunks_become_parts_with_reasoning_apart() -> None:
    def chunk(delta: dict, reason: str | None = None, **extra: object) -> dict:
        return {"choices": [{"delta": delta, "finish_reason": reason, "index": 0}], **extra}

    thinking = streamed_part(chunk({"reasoning_content": "hmm"}))
    assert thinking is not None and (thinking.message.thinking, thinking.message.content) == (
        "hmm",
        "",
    )
    assert streamed_part(chunk({"role": "assistant", "content": None})) is None
    last = streamed_part(chunk({}, "length", timings={"predicted_n": 8, "predicted_ms": 400.0}))
    assert last is not None and last.done and last.done_reason == "length"
    assert (last.eval_count, last.eval_duration) == (8, 400_000_000)
    # One token (an immediate end of turn) has no decode time: no rate, not a million tokens/s.
    single = streamed_part(chunk({}, "stop", timings={"predicted_n": 1, "predicted_ms": 0.001}))
    assert single is not None and single.eval_duration is None
    assert streamed_part({"choices": [], "usage": {}}) is None


def test_server_sent_events_end_at_done_and_errors_are_refusals() -> None:
    lines = [
        'data: {"choices":[{"delta":{"content":"a"},"finish_reason":null}]}',
        "",
        "data: [DONE]",
        'data: {"choices":[{"delta":{"content":"never"}}]}',
    ]
    assert [p.message.content for p in _parts(iter(lines))] == ["a"]
    broken = ['data: {"error":{"code":500,"message":"context exceeded"}}']
    with pytest.raises(RefusedError, match="llama-server stopped a chat: context exceeded"):
        list(_parts(iter(broken)))


@pytest.mark.parametrize(
    "given,url",
    [
        ("127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://[::1]:9000/", "http://[::1]:9000"),
        ("https://box.lan", "https://box.lan"),
    ],
)
def test_server_addresses(given: str, url: str) -> None:
    assert server_url(given) == url


@pytest.mark.parametrize("given", ["ftp://host:1", "http://", "http://a b:1"])
def test_bad_server_addresses_are_refused(given: str) -> None:
    with pytest.raises(InputError, match="--llama-server: not a llama-server address"):
        server_url(given)


def test_a_template_as_llama_cpp_holds_it() -> None:
    assert loaded_template("a\r\nb\n") == "a\nb"
    assert loaded_template("a\n\n") == "a\n"  # one trailing newline only, as Jinja drops


def test_a_server_that_dies_while_starting_is_reported_with_its_log(tmp_path: Path) -> None:
    port = free_port()
    server = LlamaServer(
        ["sh", "-c", "echo 'failed to load model x'; exit 3"],
        f"http://127.0.0.1:{port}",
        startup_timeout=30,
    )
    with pytest.raises(DaemonError) as caught:
        server.start()
    assert str(caught.value) == (
        "llama-server exited with code 3 while starting; log: failed to load model x"
    )
    assert not server.state_dir.exists()


def test_a_server_that_never_answers_is_stopped_with_its_children(tmp_path: Path) -> None:
    marker = tmp_path / "pid"
    server = LlamaServer(
        ["sh", "-c", f"sleep 60 & echo $! > {marker}; wait"],
        f"http://127.0.0.1:{free_port()}",
        startup_timeout=1,
    )
    with pytest.raises(DaemonError, match="did not answer on http://127.0.0.1:.* within 1 s"):
        server.start()
    child = int(marker.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_engine_needs_exactly_one_server(catalog: Catalog, tmp_path: Path) -> None:
    variant = catalog.variant("qwq-fixed")
    choices: list[dict[str, Any]] = [{}, {"url": "127.0.0.1:1", "gguf": tmp_path / "x.gguf"}]
    for kwargs in choices:
        with pytest.raises(InputError, match="needs either --llama-server URL"):
            with serve_variant(catalog, variant, **kwargs):
                pass
    with pytest.raises(InputError, match=f"{tmp_path / 'none.gguf'}: --gguf: no such GGUF"):
        with serve_variant(catalog, variant, gguf=tmp_path / "none.gguf"):
            pass


def test_the_server_command_returns_reasoning_apart_and_closes_a_final_turn(
    catalog: Catalog,
) -> None:
    cmd = llama_cpp_command(
        catalog,
        "qwq-fixed",
        binary="llama-server",
        model_path=MODEL,
        template_path="t.jinja",
        host="0.0.0.0",
        port=8081,
    )
    assert cmd.argv[-7:] == [
        "--reasoning-format",
        "deepseek",
        "--no-prefill-assistant",
        "--host",
        "0.0.0.0",
        "--port",
        "8081",
    ]
    assert "reasoning_content" in cmd.comment and "--no-prefill-assistant" in cmd.comment
    plain = llama_cpp_command(
        catalog, "qwq-fixed", binary="llama-cli", model_path=MODEL, template_path="t.jinja"
    )
    assert "--reasoning-format" not in plain.argv and "--port" not in plain.argv


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"binary": "llama-cli", "port": 8080}, "--host and --port are for llama-server"),
        ({"binary": "llama-server", "port": 70000}, "port must be 1-65535"),
    ],
)
def test_bad_server_options_are_refused(catalog: Catalog, kwargs: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        llama_cpp_command(catalog, "qwq-fixed", model_path=MODEL, template_path="t", **kwargs)


def test_what_props_must_show_comes_from_the_catalog(catalog: Catalog) -> None:
    for name in catalog.variants:
        params = effective_parameters(catalog.variant(name))
        wanted = llama_server_settings(catalog, name)
        for key in ("temperature", "top_k", "top_p", "min_p", "repeat_penalty"):
            assert wanted[key] == params[key]
        penalised = params["repeat_penalty"] != 1.0
        assert wanted["samplers"] == list(PENALTY_ORDER if penalised else LLAMA_CPP_DEFAULT_ORDER)
        cmd = llama_cpp_command(
            catalog, name, binary="llama-server", model_path=MODEL, template_path="t"
        )
        assert ("--samplers" in cmd.argv) == penalised


def test_the_context_note_reads_the_models_training_context(
    catalog: Catalog, small_gguf: Path
) -> None:
    notes = context_notes(catalog, "qwq-fixed", binary="llama-server", model_path=str(small_gguf))
    assert notes == [
        f"{small_gguf} was trained with a context of 8192 tokens: llama-server caps "
        "--ctx-size 16384 to 8192 (its /props reports n_ctx 8192), as Ollama "
        "clamps num_ctx"
    ]
    assert context_notes(catalog, "qwq-fixed", binary="llama-server", model_path=MODEL) == []
    assert context_notes(catalog, "qwq-fixed", binary="llama-cli", model_path=str(small_gguf)) == []


def test_export_cli_prints_the_note_and_a_runnable_server_line(small_gguf: Path) -> None:
    result = run_cli(
        "export",
        "llama-cpp",
        "qwq-fixed",
        "--binary",
        "llama-server",
        "--model",
        str(small_gguf),
        "--port",
        "8099",
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith(f"note: {small_gguf} was trained with a context of 8192")
    assert shlex.split(result.stdout.splitlines()[-1]) == ["--port", "8099"]


def test_an_embedded_copy_changes_the_template_and_nothing_else(
    catalog: Catalog, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    # A complete GGUF with a vocabulary of a few tokens: gguf-py parses a real one's 49k tokens
    # in seconds per reading, which would test nothing more.
    original = write_qwen2(tmp_path / "tiny.gguf", template="{{ messages }}")
    template = render_variant(catalog, catalog.variant("qwq-fixed")).hf_template
    copy = write_with_chat_template(original, tmp_path / "copy.gguf", template)
    assert capfd.readouterr() == ("", "")  # no progress bar from the library
    source, written = gguf.GGUFReader(original), gguf.GGUFReader(copy)
    assert _field(written, CHAT_TEMPLATE_KEY) == template
    assert _field(source, CHAT_TEMPLATE_KEY) != template
    assert _tensor_digests(written) == _tensor_digests(source)
    kept = {f for f in source.fields if not f.startswith("GGUF.")}
    assert kept == {f for f in written.fields if not f.startswith("GGUF.")}
    with pytest.raises(InputError, match="must not overwrite its source"):
        write_with_chat_template(copy, copy, template)


def _tensor_digests(reader: gguf.GGUFReader) -> list[tuple[str, str]]:
    return [(t.name, hashlib.sha256(t.data.tobytes()).hexdigest()) for t in reader.tensors]


def _field(reader: gguf.GGUFReader, key: str) -> object:
    found = reader.get_field(key)
    return found.contents() if found is not None else None


def _run(variant: str, engine: str, seed: int, rate: float) -> RunStats:
    return RunStats(variant, seed, False, None, 0.5, 10, 5, rate, None, "stop", engine)


def test_compare_shows_an_engine_column_only_for_several_engines() -> None:
    one = summarise([_run("qwq-fixed", "ollama", 1, 20.0)])
    assert table_rows(one)[0][:2] == ["variant", "runs"]
    runs = [
        _run("qwq-fixed", "ollama", 1, 20.0),
        _run("qwq-fixed", "llama.cpp", 1, 30.0),
        _run("qwq-fixed", "llama.cpp", 2, 0.0),
    ]  # a run ended by its first token
    both = summarise(runs)
    rows = table_rows(both)
    assert rows[0][:3] == ["variant", "engine", "runs"]
    assert [r[:3] for r in rows[1:]] == [
        ["qwq-fixed", "ollama", "1"],
        ["qwq-fixed", "llama.cpp", "2"],
    ]
    assert both[1].tokens_per_second == 30.0  # the run without a rate does not halve it
    text = markdown(NamedPrompt("p", "x", code=False, run=False), both, runs, None)
    assert "| variant | engine | seed | looped |" in text
    assert "| qwq-fixed | llama.cpp | 2 | False | - | stop | - |" in text


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["validate", "qwq-fixed", "--engine", "llama-cpp"],  # unseeded: refused first
            "needs either --llama-server URL",
        ),
        (
            [
                "validate",
                "qwq-fixed",
                "--engine",
                "llama-cpp",
                "--checks",
                "registration",
                "--gguf",
                "x",
            ],
            "unknown check 'registration' for llama-cpp",
        ),
        (
            # unseeded: refused first
            ["validate", "--engine", "llama-cpp", "--llama-server", "127.0.0.1:1"],
            "a running llama-server runs one variant",
        ),
        (
            ["validate", "qwq-fixed", "--engine", "vllm"],  # unseeded: refused first
            "unknown engine 'vllm'",
        ),
        (["compare", "qwq-fixed", "--engines", "ollama,vllm"], "unknown engine 'vllm'"),
        (
            ["compare", "qwq-fixed", "qwq-minp", "--engines", "llama-cpp", "--llama-server", "h:1"],
            "a running llama-server runs one variant",
        ),
        (
            ["embed-template", "qwq-fixed", "nowhere.gguf", "--out", "x.gguf"],
            "nowhere.gguf: no such file",
        ),
    ],
)
def test_cli_refusals_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
