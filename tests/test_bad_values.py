"""Every option and environment variable the tool reads, given a bad value: one line on
stderr, exit 2, no traceback, and no secret the value held (issue 31). The table walks them;
a value that parses but is absurd (1e309 GiB, nan seconds) counts as bad."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from .conftest import run_cli

DOWN = "127.0.0.1:9"  # nothing listens: a value checked late would end in exit 3 instead
SECRET = "pa55-w0rd"


@dataclass(frozen=True)
class Bad:
    id: str
    args: tuple[str, ...]
    says: str  # in the one line
    env: dict[str, str] = field(default_factory=dict)


CASES = [
    # options
    Bad("vram-overflows", ("plan", "--vram", "1e309"), "not a memory size: '1e309'"),
    Bad("vram-nan", ("plan", "--vram", "nan"), "not a memory size: 'nan'"),
    Bad("vram-negative", ("plan", "--vram", "-1"), "not a memory size: '-1'"),
    Bad("vram-petabytes", ("plan", "--vram", "2048TiB"), "at most 1 PiB"),
    Bad("kv-cache-unknown", ("plan", "--kv-cache", "q2"), "--kv-cache: unknown KV cache type"),
    Bad("ctx-zero", ("plan", "--ctx", "0"), "Invalid value for '--ctx'"),
    Bad("ctx-huge", ("plan", "--ctx", "99999999999999999999"), "Invalid value for '--ctx'"),
    Bad(
        "timeout-nan",
        ("validate", "--timeout", "nan", "--host", DOWN),  # unseeded: refused first
        "--timeout: nan is not a number of seconds",
    ),
    Bad(
        "timeout-negative",
        ("validate", "--timeout", "-1", "--host", DOWN),  # unseeded: refused first
        "--timeout: -1.0 is not a number of seconds",
    ),
    Bad(
        "parallel-zero",
        ("create", "--parallel", "0", "--host", DOWN, "--host", "127.0.0.1:7"),
        "Invalid value for '--parallel'",
    ),
    Bad(
        "prompt-unknown",
        ("compare", "qwq-fixed", "--prompt", "nope", "--host", DOWN),
        "--prompt: unknown prompt 'nope' (known: flappy-bird, add-function, sky, poem-loop)",
    ),
    Bad(
        "host-port-out-of-range",
        ("list", "--host", "localhost:99999"),
        "--host: 'localhost:99999': port 99999 is not in 1-65535",
    ),
    Bad(
        "host-password-with-slash",
        ("list", "--host", f"http://alice:{SECRET}/x@h:1"),
        "--host: 'http://alice:***@h:1': not http(s)://[USER:PASSWORD@]HOST",
    ),
    Bad(
        "host-password-digits-read-as-a-port",
        ("list", "--host", "http://alice:123456/x@h:1"),
        "--host: 'http://alice:***@h:1': not http(s)://",
    ),
    Bad(
        "host-port-word-after-a-password",
        ("list", "--host", "http://alice:123456@h:port"),
        "--host: 'http://alice:***@h:port': port 'port' is not a number",
    ),
    Bad(
        "gguf-url-password-with-hash",
        ("plan", "qwq-fixed", "--gguf", f"https://bob:{SECRET}#x@h/m.gguf"),
        "gguf: https://bob:***@h/m.gguf: not an http(s) URL",
    ),
    Bad(
        "url-given-as-a-variant",
        ("plan", f"https://bob:{SECRET}@h/m.gguf?tok"),
        "unknown variant 'https://bob:***@h/m.gguf?***'",
    ),
    # environment variables
    Bad(
        "ollama-host-garbage-with-password",
        ("list",),
        "OLLAMA_HOST: '***@[::1:80 x'",
        {"OLLAMA_HOST": f"{SECRET}@[::1:80 x"},
    ),
    Bad(
        "ollama-host-password-with-hash",
        ("list",),
        "OLLAMA_HOST: 'http://alice:***@h:1'",
        {"OLLAMA_HOST": f"http://alice:{SECRET}#@h:1"},
    ),
    Bad(
        "deadline-not-a-number",
        ("list", "--host", DOWN),
        "QWQ_OLLAMA_DEADLINE: 'soon' is not a number of seconds",
        {"QWQ_OLLAMA_DEADLINE": "soon"},
    ),
    Bad(
        "deadline-infinite",
        ("list", "--host", DOWN),
        "QWQ_OLLAMA_DEADLINE: 'inf'",
        {"QWQ_OLLAMA_DEADLINE": "inf"},
    ),
    Bad(
        "hf-endpoint-malformed",
        ("plan", "qwq-fixed", "--gguf", "hf://o/r@Q4_K_M"),
        "HF_ENDPOINT: 'https://bob:***@[::1' is not an http(s) URL",
        {"HF_ENDPOINT": f"https://bob:{SECRET}@[::1"},
    ),
    Bad(
        "hf-endpoint-not-http",
        ("plan", "qwq-fixed", "--gguf", "hf://o/r@Q4_K_M"),
        "HF_ENDPOINT: 'ftp://h' is not an http(s) URL",
        {"HF_ENDPOINT": "ftp://h"},
    ),
    Bad(
        "ssl-cert-file-missing",
        ("list", "--host", "https://127.0.0.1:9"),
        "SSL_CERT_FILE: '/nonexistent/ca.pem' is not a readable file",
        {"SSL_CERT_FILE": "/nonexistent/ca.pem"},
    ),
    Bad(
        "catalog-missing",
        ("render",),
        "/nonexistent/models.yaml: file not found",
        {"QWQ_OLLAMA_CATALOG": "/nonexistent/models.yaml"},
    ),
]


def test_the_table_walks_options_and_variables() -> None:
    variables = {name for case in CASES for name in case.env}
    assert {
        "OLLAMA_HOST",
        "QWQ_OLLAMA_DEADLINE",
        "HF_ENDPOINT",
        "SSL_CERT_FILE",
        "QWQ_OLLAMA_CATALOG",
    } <= variables
    options = {arg for case in CASES for arg in case.args if arg.startswith("--")}
    assert {
        "--vram",
        "--kv-cache",
        "--ctx",
        "--timeout",
        "--parallel",
        "--prompt",
        "--host",
        "--gguf",
    } <= options


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_bad_value_is_one_line_exit_2(case: Bad) -> None:
    result = run_cli(*case.args, env=case.env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: "), result.stderr
    assert case.says in result.stderr, result.stderr
    assert SECRET not in result.stderr + result.stdout and "123456" not in result.stderr
