"""No command shows or writes a secret it was given in a URL (issue 39): every command that
takes a llama-server URL, an Ollama host or a GGUF path is run with a password and a query
token, against a server that is not there and one that redirects, and stdout, stderr and every
file it wrote are searched. The credentials still reach the server, as Basic auth and query."""

from __future__ import annotations

import base64
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from qwq_ollama.engines.llama_server import LlamaServerAPI
from qwq_ollama.errors import DaemonError
from qwq_ollama.redaction import SecretURL

from .conftest import ROOT, run_cli
from .test_hostile_servers import Handler, RawServer, answer, header_of, serve

__all__ = ["serve"]  # a fixture, used by name

PASSWORD, TOKEN = "pw5ecret", "tok123abc"
CONVERSATION = ROOT / "tests" / "data" / "conversations"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def commands(url: str, out: Path) -> list[list[str]]:
    messages = next(CONVERSATION.glob("*.json"))
    return [
        [
            "validate",  # unseeded: no server answers (none, or one that redirects)
            "qwq-fixed",
            "--engine",
            "llama-cpp",
            "--llama-server",
            url,
            "--json-file",
            str(out / "v.json"),
            "--report",
            str(out / "v.md"),
        ],
        [
            "prompt",
            "qwq-fixed",
            "--engine",
            "llama-cpp",
            "--llama-server",
            url,
            "--messages",
            str(messages),
        ],
        [
            "compare",
            "qwq-fixed",
            "--engines",
            "llama-cpp",
            "--llama-server",
            url,
            "--seeds",
            "1",
            "--report",
            str(out / "c.md"),
        ],
        [
            "validate",  # unseeded: no server answers (none, or one that redirects)
            "qwq-fixed",
            "--engine",
            "llama-cpp",
            "--gguf",
            url + "x.gguf",
            "--json-file",
            str(out / "g.json"),
        ],
        [
            "validate",  # unseeded: no server answers (none, or one that redirects)
            "qwq-fixed",
            "--host",
            url,
            "--json-file",
            str(out / "o.json"),
            "--report",
            str(out / "o.md"),
        ],
        ["list", "--host", url],
    ]


def leaks(text: str) -> bool:
    return PASSWORD in text or TOKEN in text


@pytest.mark.parametrize("server_kind", ["none", "redirecting"])
def test_no_command_shows_or_writes_a_url_secret(
    serve: Callable[[Handler], RawServer], tmp_path: Path, server_kind: str
) -> None:
    if server_kind == "none":
        address = f"127.0.0.1:{closed_port()}"
    else:
        address = serve(lambda c, r: answer(c, 302, b"", {"Location": "/elsewhere"})).host
    url = f"http://alice:{PASSWORD}@{address}/?token={TOKEN}"
    seen = []
    for argv in commands(url, tmp_path / "out"):
        (tmp_path / "out").mkdir(exist_ok=True)
        done = run_cli(*argv, env={"QWQ_OLLAMA_DEADLINE": "3"}, cwd=tmp_path)
        seen.append((argv[0], done.returncode))
        assert not leaks(done.stdout) and not leaks(done.stderr), (argv, done.stderr)
        assert done.returncode != 0 and "Traceback" not in done.stderr, (argv, done.stderr)
        for written in tmp_path.rglob("*"):
            if written.is_file():
                assert not leaks(written.read_text("utf-8", "replace")), (argv, written)
    assert len(seen) == 6


def test_the_llama_server_credentials_still_reach_the_server(
    serve: Callable[[Handler], RawServer],
) -> None:
    server = serve(lambda c, r: answer(c, 401, b'{"error": {"message": "no"}}'))
    api = LlamaServerAPI(f"http://alice:{PASSWORD}@{server.host}/?token={TOKEN}", timeout=3)
    assert PASSWORD not in api.host and TOKEN not in api.host
    with pytest.raises(DaemonError) as caught:
        api.models()
    assert not leaks(str(caught.value))
    sent = server.requests[0]
    expected = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    assert header_of(sent, "Authorization") == f"Basic {expected}"
    assert f"token={TOKEN}".encode() in sent.split(b"\r\n", 1)[0]


def test_a_secret_url_cannot_be_written_with_its_secrets() -> None:
    import json
    import pickle

    url = SecretURL(f"http://alice:{PASSWORD}@h:1/?token={TOKEN}")
    for shown in (str(url), repr(url), f"{url}", f"{url:>60}"):
        assert not leaks(shown)
    with pytest.raises(TypeError):
        json.dumps(url)
    with pytest.raises(TypeError):
        pickle.dumps(url)
