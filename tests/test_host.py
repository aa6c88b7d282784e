"""The one host resolver (daemon/host.py): it reads every value as Ollama and ollama-python do,
refuses what they would silently guess at, and every command checks it before doing any work."""

from __future__ import annotations

import doctest
import subprocess
import sys
import time

import pytest
from ollama._client import _parse_host

from qwq_ollama.daemon import host
from qwq_ollama.daemon.host import parse_host, resolve_host
from qwq_ollama.daemon.quick_create import connection_target
from qwq_ollama.errors import InputError

from .conftest import ROOT, run_cli

# Values both clients accept; ollama-python's own answer is the expected one.
AGREED = [
    "1.2.3.4",
    ":56789",
    "1.2.3.4:56789",
    "http://1.2.3.4",
    "https://1.2.3.4",
    "https://1.2.3.4:56789",
    "example.com",
    "example.com:56789",
    "http://example.com",
    "https://example.com",
    "https://example.com:56789",
    "example.com/",
    "example.com:56789/",
    "example.com/path",
    "example.com:56789/path",
    "https://example.com:56789/path",
    "example.com:56789/path/",
    "localhost",
    "[0001:002:003:0004::1]",
    "[0001:002:003:0004::1]:56789",
    "http://[0001:002:003:0004::1]",
    "https://[::1]:56789/path",
    "[::1]/",
    "http://h:1/a/b/",
]
# Where the two clients differ, Ollama's own reading (envconfig.ConnectableHost) is kept.
OLLAMA_READING = {
    "ollama.com": "https://ollama.com:443",  # Ollama's cloud
    "0.0.0.0:8080": "http://127.0.0.1:8080",  # a bind address, reached over loopback
    "[::]": "http://[::1]:11434",
    "::1": "http://[::1]:11434",  # a bare IPv6 address has no port
    '"localhost:8080"': "http://localhost:8080",  # quotes around the value are dropped
}
REFUSED = {
    "[::1": "'[' without a closing ']'",
    "http://[::1:8080": "'[' without a closing ']'",
    "[::1]8080": "unexpected '8080' after ']'",
    "[not-v6]:80": "[not-v6] is not an IPv6 address",
    "localhost:65536": "port 65536 is not in 1-65535",
    "localhost:0": "port 0 is not in 1-65535",
    "localhost:99999999999999999999": "is not in 1-65535",
    "localhost:http": "port 'http' is not a number",
    "localhost:-1": "port '-1' is not a number",
    "localhost:": "empty port",
    "http://": "no host name",
    "https:///api": "no host name",
    "ftp://example.com": "scheme 'ftp' is not http or https",
    "unix:///run/ollama.sock": "scheme 'unix' is not http or https",
    "user:pw@exa mple.com:80": "contains spaces or control characters",
    "alice:s3cret@[::1:8080": "'[' without a closing ']'",
    "exa mple.com": "contains spaces or control characters",
    "example.com:1:2": "is not an IPv6 address",
}


def test_the_doctests_hold() -> None:
    result = doctest.testmod(host)
    assert result.attempted >= 10 and result.failed == 0


@pytest.mark.parametrize("value", AGREED)
def test_agrees_with_ollama_python(value: str) -> None:
    assert resolve_host(value) == _parse_host(value)


@pytest.mark.parametrize("value,expected", OLLAMA_READING.items())
def test_follows_ollama_where_the_clients_differ(value: str, expected: str) -> None:
    assert resolve_host(value) == expected


@pytest.mark.parametrize("value,problem", REFUSED.items())
@pytest.mark.parametrize("source", ["--host", "OLLAMA_HOST"])
def test_bad_values_are_refused_naming_their_source(value: str, problem: str, source: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_host(value, source)
    assert caught.value.field == source
    assert problem in str(caught.value)
    assert "\n" not in str(caught.value)


def test_an_unset_or_empty_variable_is_the_default_but_an_empty_flag_is_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OLLAMA_HOST")
    assert resolve_host() == "http://127.0.0.1:11434"
    monkeypatch.setenv("OLLAMA_HOST", " '' ")  # Ollama reads this as unset too
    assert resolve_host() == "http://127.0.0.1:11434"
    monkeypatch.setenv("OLLAMA_HOST", "example.com")
    assert resolve_host() == "http://example.com:11434"
    assert resolve_host("other:1") == "http://other:1"  # the flag wins
    with pytest.raises(InputError, match="^--host: '': empty"):
        resolve_host("")


def test_the_quick_create_path_reads_hosts_with_the_same_parser() -> None:
    assert connection_target(resolve_host("localhost:8080")) == [
        "localhost",
        8080,
        "localhost:8080",
    ]
    assert connection_target(resolve_host("[::1]:8080")) == ["::1", 8080, "[::1]:8080"]
    assert connection_target(resolve_host("http://example.com")) == [
        "example.com",
        80,
        "example.com:80",
    ]
    assert connection_target(resolve_host("https://example.com")) is None  # TLS: full client
    assert connection_target(resolve_host("example.com/prefix")) is None


def test_the_resolver_stays_cheap_for_the_quick_path() -> None:
    """It runs before the CLI loads: no URL library, no HTTP stack, no pydantic."""
    code = (
        "import sys; from qwq_ollama.daemon.quick_create import connection_target; "
        "from qwq_ollama.daemon.host import resolve_host; "
        "connection_target(resolve_host('localhost:1234')); "
        "print(sorted(m for m in ('urllib.parse', 'ipaddress', 'httpx', 'pydantic', "
        "'ollama', 'typer') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert done.stdout.strip() == "[]"


BAD_HOST_COMMANDS = [
    ["create"],
    ["list"],
    ["doctor"],
    ["validate"],  # unseeded: refused first
    ["chat", "qwq-fixed", "hi"],  # unseeded: refused first
    ["compare", "qwq-fixed", "--seeds", "1"],
    ["prompt", "qwq-fixed", "--messages", "conversation.json", "--engine", "ollama"],
]


@pytest.mark.parametrize("command", BAD_HOST_COMMANDS, ids=lambda c: c[0])
@pytest.mark.parametrize("source", ["--host", "OLLAMA_HOST"])
def test_every_command_refuses_a_bad_host_up_front(
    command: list[str], source: str, tmp_path
) -> None:
    """Exit 2, one line naming where the value came from, before any other work: the
    catalog named here does not even exist, and that is not what is reported."""
    bad = "[::1:11434"
    args = [*command, "--catalog", str(tmp_path / "missing.yaml")]
    if command[0] in {"chat", "compare"}:
        args = command  # these take no catalog
    if source == "--host":
        result = run_cli(*args, "--host", bad, cwd=tmp_path)
    else:
        result = run_cli(*args, env={"OLLAMA_HOST": bad}, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"Error: {source}: '{bad}': '[' without a closing ']'\n"
    assert result.stdout == ""


def test_a_good_host_still_reaches_the_daemon_check() -> None:
    """The up-front check lets a valid value through: the command then fails only because
    nothing listens there."""
    started = time.monotonic()
    result = run_cli("list", "--host", "http://127.0.0.1:9", cwd=ROOT)
    assert result.returncode == 3
    assert result.stderr.startswith("Error: cannot reach Ollama at http://127.0.0.1:9")
    assert time.monotonic() - started < 30


@pytest.mark.parametrize(
    "value,url,auth,params,shown",
    [
        (
            "http://alice:s3cret@127.0.0.1:8080",
            "http://127.0.0.1:8080",
            ("alice", "s3cret"),
            [],
            "http://alice:***@127.0.0.1:8080",
        ),
        (
            "alice:p%40ss@proxy:443",
            "http://proxy:443",
            ("alice", "p@ss"),
            [],
            "http://alice:***@proxy:443",
        ),
        (
            "https://tok3n@proxy.example/ollama/",
            "https://proxy.example:443/ollama",
            ("tok3n", ""),
            [],
            "https://***@proxy.example:443/ollama",
        ),
        (
            "https://proxy.example:8443/?token=abc123&region=eu",
            "https://proxy.example:8443",
            None,
            [("token", "abc123"), ("region", "eu")],
            "https://proxy.example:8443?token=***&region=***",
        ),
    ],
)
def test_a_proxys_credentials_are_sent_apart_and_never_shown(
    value: str, url: str, auth: object, params: list, shown: str
) -> None:
    address = parse_host(value, "--host")
    assert (address.url, address.auth, address.params, address.display) == (
        url,
        auth,
        params,
        shown,
    )
    assert address.secret


@pytest.mark.parametrize(
    "value,secret",
    [
        ("http://alice:s3cret@127.0.0.1:99999", "s3cret"),  # a bad port
        ("http://bob:hunter2@host:http", "hunter2"),  # a port that is not a number
        ("http://carol:pa55@[zz]:80", "pa55"),  # not an IPv6 literal
        ("ftp://dave:pw0rd@example.com", "pw0rd"),  # a bad scheme
        ("http://127.0.0.1:0/?token=abc123", "abc123"),  # a query token, bad port
    ],
)
def test_a_refusal_never_quotes_the_secret(value: str, secret: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_host(value, "OLLAMA_HOST")
    assert secret not in str(caught.value)
    assert "***" in str(caught.value)
