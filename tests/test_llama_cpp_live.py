"""llama.cpp for real: the command `export llama-cpp VARIANT --binary llama-server` prints is run
(by bash, as printed, with the current pinned Ollama's own llama-server on PATH, the small GGUF as --model
and a free loopback port), and the live server is checked like Ollama: its settings (/props),
its prompts (/apply-template) against the HF template's, its streamed generations.

Each server starts once per session (about two seconds with the 98 MB model) and serves every
test of its variant.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from qwq_ollama.artifacts.export import (
    LLAMA_CPP_DEFAULT_ORDER,
    default_template_path,
    effective_parameters,
)
from qwq_ollama.catalog.conversation import (
    CONDITIONS,
    integral_floats_printed_whole,
    load_conversation,
    load_corpus,
    string_arguments_decoded,
    tool_description_defaulted,
)
from qwq_ollama.catalog.prompts import get_prompt
from qwq_ollama.catalog.render import hf_prompter, render_variant
from qwq_ollama.catalog.schema import Catalog
from qwq_ollama.checks.ab import compare_variants
from qwq_ollama.checks.generation import generate_watched
from qwq_ollama.checks.llama_cpp import (
    check_fidelity,
    check_settings,
    loaded_template,
    validate_llama_cpp,
)
from qwq_ollama.engines.install import CURRENT, PINNED, ensure_ollama
from qwq_ollama.engines.llama_server import LlamaServer, LlamaServerAPI
from qwq_ollama.engines.private_daemon import free_port
from qwq_ollama.engines.variant_server import find_llama_server

from .conftest import DATA, ROOT, run_cli
from .test_export import bash_argv

VARIANTS = ("qwq-fixed", "qwq-noprefill", "qwq-minp", "qwq-baseline")
SAMPLING = (
    "temperature",
    "top_k",
    "top_p",
    "min_p",
    "typical_p",
    "repeat_penalty",
    "repeat_last_n",
    "presence_penalty",
    "frequency_penalty",
    "dry_multiplier",
    "samplers",
)

LLAMA_BUILD = PINNED[CURRENT].llama_cpp.build  # type: ignore[union-attr]


@pytest.fixture(scope="session")
def llama_server_binary() -> Path:
    """The current pinned Ollama's llama-server, built with Ollama if need be."""
    ensure_ollama(CURRENT)
    return find_llama_server(CURRENT)


def export(variant: str, gguf: Path, port: int, *extra: str) -> tuple[str, str]:
    """The CLI's printed script and its notes."""
    result = run_cli(
        "export",
        "llama-cpp",
        variant,
        "--binary",
        "llama-server",
        "--model",
        str(gguf),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *extra,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout, result.stderr


class ExportedServers:
    """One llama-server per variant, started from the exported script on first use."""

    def __init__(self, binary: Path, gguf: Path) -> None:
        self.binary, self.gguf = binary, gguf
        self.running: dict[str, LlamaServer] = {}
        self.scripts: dict[str, tuple[str, str]] = {}
        self.start_seconds: dict[str, float] = {}

    def __call__(self, variant: str) -> LlamaServerAPI:
        if variant not in self.running:
            port = free_port()
            self.scripts[variant] = export(variant, self.gguf, port)
            path = f"{self.binary.parent}{os.pathsep}{os.environ['PATH']}"
            started = time.monotonic()
            self.running[variant] = LlamaServer(
                ["bash", "-c", self.scripts[variant][0]],
                f"http://127.0.0.1:{port}",
                env={"PATH": path},
                cwd=ROOT,
                startup_timeout=120,
            ).start()
            self.start_seconds[variant] = time.monotonic() - started
        return self.running[variant].api

    def stop_all(self) -> None:
        for server in self.running.values():
            server.stop()


@pytest.fixture(scope="session")
def exported(llama_server_binary: Path, small_gguf: Path) -> Iterator[ExportedServers]:
    servers = ExportedServers(llama_server_binary, small_gguf)
    yield servers
    servers.stop_all()


def props_params(api: LlamaServerAPI) -> dict[str, Any]:
    return api.props().sampling


@pytest.mark.parametrize("name", VARIANTS)
def test_the_exported_command_runs_with_every_value_of_the_variant(
    exported: ExportedServers, catalog: Catalog, name: str
) -> None:
    api = exported(name)
    script, notes = exported.scripts[name]
    variant = catalog.variant(name)
    params = effective_parameters(variant)
    shown = props_params(api)
    for key in ("temperature", "top_p", "min_p", "repeat_penalty"):
        assert shown[key] == pytest.approx(params[key], rel=1e-6), key
    assert shown["top_k"] == params["top_k"]
    argv = bash_argv(script, "llama-server")
    if params["repeat_penalty"] != 1.0:  # the penalty runs after top_k/top_p/min_p, as exported
        assert shown["samplers"] == argv[argv.index("--samplers") + 1].split(";")
        assert shown["samplers"].index("penalties") > shown["samplers"].index("min_p")
    else:
        assert "--samplers" not in argv and shown["samplers"] == list(LLAMA_CPP_DEFAULT_ORDER)
    # The template the server runs is the file `render` wrote, as llama.cpp loads it.
    rendered = default_template_path(catalog, variant).read_text()
    assert api.props().chat_template == loaded_template(rendered)
    assert rendered == render_variant(catalog, variant).hf_template
    # The small model was trained with 8192 tokens: llama-server caps num_ctx at it, and the
    # export said so before the server ever ran.
    trained = api.trained_context()
    assert api.props().n_ctx == min(params["num_ctx"], trained)
    assert trained == 8192 < params["num_ctx"]
    assert f"llama-server caps --ctx-size {params['num_ctx']} to {trained}" in notes
    assert exported.start_seconds[name] < 60


@pytest.fixture(scope="module")
def bare_server(
    llama_server_binary: Path,
    small_gguf: Path,
    catalog: Catalog,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LlamaServerAPI]:
    """qwq-baseline's template and model, its sampling from the exported preset.ini loaded as
    llama.cpp's user config, and none of the export's other flags."""
    config = tmp_path_factory.mktemp("llama-config")
    port = free_port()
    export("qwq-baseline", small_gguf, port, "--export-preset", str(config / "llama.cpp"))
    (config / "llama.cpp" / "preset.ini").rename(config / "llama.cpp" / "config.ini")
    template = default_template_path(catalog, catalog.variant("qwq-baseline"))
    argv = [
        str(llama_server_binary),
        "--model",
        str(small_gguf),
        "--ctx-size",
        "16384",
        "--chat-template-file",
        str(template),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with LlamaServer(
        argv, f"http://127.0.0.1:{port}", env={"XDG_CONFIG_HOME": str(config)}, startup_timeout=120
    ) as server:
        yield server.api


def test_the_preset_file_loads_the_same_sampling(
    exported: ExportedServers, bare_server: LlamaServerAPI
) -> None:
    from_preset = props_params(bare_server)
    from_flags = props_params(exported("qwq-baseline"))
    assert {k: from_preset[k] for k in SAMPLING} == {k: from_flags[k] for k in SAMPLING}
    assert from_preset["min_p"] == pytest.approx(0.1) and from_preset["repeat_penalty"] == (
        pytest.approx(1.1)
    )


def test_without_the_export_a_final_assistant_message_is_continued(
    exported: ExportedServers, bare_server: LlamaServerAPI, catalog: Catalog
) -> None:
    """Why the export says --no-prefill-assistant: llama-server's default continues the last
    assistant message (reasoning closed) where the HF template closes it and opens a turn."""
    conv = load_conversation(DATA / "conversations" / "tools-grouped-results.json")
    hf = hf_prompter(catalog, catalog.variant("qwq-baseline"))(conv.messages, conv.tools)
    assert hf.endswith("Done.<|im_end|>\n<|im_start|>assistant\n<think>\n")
    continued = bare_server.render_prompt("", conv.messages, conv.tools)
    assert continued.endswith("<|im_start|>assistant\n<think></think>Done.")
    assert exported("qwq-baseline").render_prompt("", conv.messages, conv.tools) == hf


@pytest.mark.parametrize("name", VARIANTS)
def test_every_corpus_prompt_is_the_hf_prompt_byte_for_byte(
    exported: ExportedServers, catalog: Catalog, name: str
) -> None:
    api = exported(name)
    hf = hf_prompter(catalog, catalog.variant(name))
    corpus = load_corpus()
    # llama-server decodes string tool-call arguments for the templates that print them with
    # tojson, gives a tool sent without a description an empty one and prints 1500.0 as 1500
    # (KNOWN_DIVERGENCES; the two agent loops carry the last two);
    # every other prompt is the HF one.
    decoded = {c.name for c in corpus if CONDITIONS["tool_call_arguments_as_string"](c)}
    assert len(decoded) == 2  # openai-tool-call, tool-call-string-arguments-and-ids
    described = {c.name for c in corpus if CONDITIONS["tool_without_description"](c)}
    assert described == {"agent-loop", "agent-loop-in-progress"}
    assert {c.name for c in corpus if CONDITIONS["integral_float_in_arguments"](c)} == described
    for conv in corpus:
        expected_conv = conv
        if conv.name in decoded:
            expected_conv = string_arguments_decoded(expected_conv)[0]
        if conv.name in described:
            expected_conv = tool_description_defaulted(expected_conv)[0]
            expected_conv = integral_floats_printed_whole(expected_conv)[0]
        expected = hf(expected_conv.messages, expected_conv.tools)
        assert api.render_prompt(name, conv.messages, conv.tools) == expected, conv.name
    finding = check_fidelity(api, catalog, catalog.variant(name))
    # Every variant here is QwQ's, whose template prints arguments with tojson.
    assert finding.status == "known", finding.message
    assert finding.message == (
        f"{len(corpus) - len(decoded) - len(described)}/{len(corpus)} identical; the rest "
        "differ only by known divergences: integral-float-printed-whole, "
        "null-content-read-as-empty, tool-call-arguments-string, tool-description-defaulted"
    )
    assert finding.details["template"] == "the variant's"


@pytest.mark.parametrize(
    "path", sorted((DATA / "conversations").glob("*.json")), ids=lambda p: p.stem
)
def test_the_test_conversations_too(
    exported: ExportedServers, catalog: Catalog, path: Path
) -> None:
    conv = load_conversation(path)
    for name in ("qwq-fixed", "qwq-noprefill"):
        hf = hf_prompter(catalog, catalog.variant(name))
        assert exported(name).render_prompt(name, conv.messages, conv.tools) == hf(
            conv.messages, conv.tools
        ), name


def test_a_server_running_another_variant_is_caught(
    exported: ExportedServers, catalog: Catalog
) -> None:
    api = exported("qwq-fixed")
    settings = check_settings(api, catalog, catalog.variant("qwq-baseline"))
    assert settings.status == "fail"
    assert "min_p 0.0, not 0.1" in settings.message and "repeat_penalty 1.0, not 1.1" in (
        settings.message
    )
    fidelity = check_fidelity(api, catalog, catalog.variant("qwq-noprefill"))
    assert fidelity.status == "fail"
    assert "HF '' vs llama.cpp '<think>\\n'" in fidelity.message  # the prefill, not the variant
    assert "not the variant's" in fidelity.message


@pytest.mark.parametrize("name", ["qwq-noprefill", "qwq-fixed"])
def test_prompt_cli_prints_the_servers_prompt(exported: ExportedServers, name: str) -> None:
    conv = DATA / "conversations" / "tools-grouped-results.json"
    hf = run_cli("prompt", name, "--messages", str(conv))
    live = run_cli(
        "prompt",
        name,
        "--messages",
        str(conv),
        "--engine",
        "llama-cpp",
        "--llama-server",
        exported(name).host,
    )
    assert live.returncode == 0, live.stderr
    assert live.stdout == hf.stdout and "<tools>" in hf.stdout


def test_prompt_cli_starts_a_private_server_over_a_gguf(
    llama_server_binary: Path, small_gguf: Path
) -> None:
    conv = DATA / "conversations" / "unicode-everywhere.json"
    hf = run_cli("prompt", "qwq-fixed", "--messages", str(conv))
    live = run_cli(
        "prompt",
        "qwq-fixed",
        "--messages",
        str(conv),
        "--engine",
        "llama-cpp",
        "--gguf",
        str(small_gguf),
    )
    assert live.returncode == 0, live.stderr
    assert live.stdout.encode() == hf.stdout.encode()


def test_validate_cli_on_llama_cpp(exported: ExportedServers, tmp_path: Path) -> None:
    out = tmp_path / "v.json"
    result = run_cli(
        "validate",
        "qwq-noprefill",
        "--engine",
        "llama-cpp",
        "--llama-server",
        exported("qwq-noprefill").host,
        "--seed",
        "1",
        "--num-predict",
        "96",
        "--json-file",
        str(out),
        "--report",
        str(tmp_path / "v.md"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    saved = json.loads(out.read_text())
    assert saved["engine"] == "llama.cpp" and saved["daemon_version"] == f"b{LLAMA_BUILD}"
    status = {f["check"]: f for f in saved["findings"]}
    # fidelity is "known": llama-server decodes string tool-call arguments (KNOWN_DIVERGENCES)
    assert [status[c]["status"] for c in ("fidelity", "settings", "generation")] == [
        "known",
        "pass",
        "pass",
    ]
    context = status["context"]
    assert context["status"] == "warn"
    assert "trained with a context of 8192 tokens" in context["message"]
    generation = status["generation"]["details"]
    assert generation["content_chars"] > 0 and generation["thinking_chars"] == 0
    assert f"llama.cpp b{LLAMA_BUILD}" in (tmp_path / "v.md").read_text()


def test_the_prefilled_reasoning_arrives_apart_and_stops_hold(
    exported: ExportedServers, catalog: Catalog
) -> None:
    servers = {"qwq-fixed": exported("qwq-fixed")}
    report = validate_llama_cpp(
        lambda v: _running(servers[v.name]),
        catalog,
        ["qwq-fixed"],
        checks=("generation",),
        seed=1,
        num_predict=64,
    )
    fixed = report.findings[0]
    # As on Ollama: SmolLM2 never closes the reasoning the template opened, so everything it
    # says is reasoning (reasoning_content), none leaks into the answer, and no answer comes.
    assert fixed.status == "fail"
    assert fixed.message.startswith("no answer: the reasoning never closed"), fixed.message
    assert "leaked" not in fixed.message and "stop token" not in fixed.message
    assert fixed.details["thinking_chars"] > 0 and fixed.details["content_chars"] == 0


def _running(api: LlamaServerAPI) -> AbstractContextManager[LlamaServerAPI]:
    """An already running server as the context manager validate_llama_cpp takes."""
    from contextlib import nullcontext

    return nullcontext(api)


def test_a_normal_answer_ends_at_the_end_of_turn(exported: ExportedServers) -> None:
    result, verdict = generate_watched(
        exported("qwq-noprefill"),
        "qwq-noprefill",
        get_prompt("sky").text,
        options={"temperature": 0, "seed": 1, "num_predict": 400},
    )
    assert verdict is None
    assert result.done and result.done_reason == "stop"
    assert result.content.strip() and "<|im_end|>" not in result.content
    assert result.eval_count > 0 and result.tokens_per_second > 0


def test_a_runaway_is_cut_and_the_server_stops_generating(exported: ExportedServers) -> None:
    api = exported("qwq-fixed")
    num_predict = 1500
    result, verdict = generate_watched(
        api,
        "qwq-fixed",
        get_prompt("poem-loop").text,
        options={"temperature": 0, "seed": 1, "num_predict": num_predict},
    )
    assert verdict is not None, result.thinking[-300:]
    assert result.stopped_early and not result.done
    assert len(result.chunks) < num_predict / 3
    assert verdict.detected_at_token - verdict.loop_start_token <= 200
    deadline = time.monotonic() + 10
    while api.busy_slots() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert api.busy_slots() == 0  # the dropped stream cancelled the request


def test_compare_puts_both_engines_side_by_side(
    exported: ExportedServers, daemon, registered, tmp_path: Path
) -> None:
    report = tmp_path / "cmp.md"
    result = run_cli(
        "compare",
        "qwq-fixed",
        "--prompt",
        "sky",
        "--seeds",
        "1",
        "--num-predict",
        "24",
        "--engines",
        "ollama,llama-cpp",
        "--host",
        daemon.host,
        "--llama-server",
        exported("qwq-fixed").host,
        "--report",
        str(report),
    )
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()[:3]]
    assert rows[0][:3] == ["variant", "engine", "runs"]
    assert {tuple(r[:3]) for r in rows[1:]} == {
        ("qwq-fixed", "ollama", "1"),
        ("qwq-fixed", "llama.cpp", "1"),
    }
    assert "| qwq-fixed | llama.cpp | 1 |" in report.read_text()


def test_compare_summarises_llama_cpp_runs(exported: ExportedServers) -> None:
    prompt = get_prompt("sky")
    summaries, runs = compare_variants(
        exported("qwq-minp"), ["qwq-minp"], prompt, seeds=2, num_predict=16, engine="llama.cpp"
    )
    assert [(s.variant, s.engine, s.runs) for s in summaries] == [("qwq-minp", "llama.cpp", 2)]
    assert all(r.engine == "llama.cpp" and r.done_reason in ("stop", "length") for r in runs)
    # A rate is a real decode rate or none (a run ended by its first token has none).
    assert all(r.tokens_per_second < 10_000 for r in runs)
    assert summaries[0].tokens_per_second > 0  # seed 1 decodes a dozen tokens


def test_an_embedded_template_is_the_variants_on_llama_server(
    llama_server_binary: Path, small_gguf: Path, catalog: Catalog, tmp_path: Path
) -> None:
    copy = tmp_path / "smollm2-qwq-fixed.gguf"
    made = run_cli("embed-template", "qwq-fixed", str(small_gguf), "--out", str(copy), "-q")
    assert made.returncode == 0 and made.stderr == "", made.stderr  # -q: no progress
    inspected = run_cli("inspect", str(copy), "--variant", "qwq-fixed")
    assert "chat template vs qwq-fixed:    same" in inspected.stdout
    port = free_port()
    script, _ = export("qwq-fixed", copy, port)
    argv = bash_argv(script, "llama-server")
    at = argv.index("--chat-template-file")
    argv = [str(llama_server_binary), *argv[:at], *argv[at + 2 :]]
    with LlamaServer(argv, f"http://127.0.0.1:{port}", startup_timeout=120) as server:
        variant = catalog.variant("qwq-fixed")
        assert server.api.props().chat_template == loaded_template(
            render_variant(catalog, variant).hf_template
        )
        finding = check_fidelity(server.api, catalog, variant)
    # "known": llama-server decodes string tool-call arguments, fills in a missing tool
    # description and prints 1500.0 as 1500 (KNOWN_DIVERGENCES), as it does with the exported
    # --chat-template-file; nothing else differs.
    assert finding.status == "known" and finding.details["template"] == "the variant's", (
        finding.message
    )
    assert finding.message.endswith(
        "known divergences: integral-float-printed-whole, null-content-read-as-empty, "
        "tool-call-arguments-string, tool-description-defaulted"
    )
