"""One bounded door for every HTTP request (issue 39): no HTTP client is built outside
qwq_ollama/daemon/transport.py, and every command family, through our own client or the `ollama` and
`openai` packages, ends in one line within its deadline against a server that trickles its
headers, trickles its body, sends without end, redirects, or answers in a shape it should not."""

from __future__ import annotations

import ast
import json
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from qwq_ollama.daemon import transport
from qwq_ollama.daemon.client import OllamaAPI
from qwq_ollama.engines.llama_server import LlamaServerAPI
from qwq_ollama.errors import DaemonError

from .test_hostile_servers import Handler, RawServer, answer, path_of, serve, short_deadline

__all__ = ["serve", "short_deadline"]  # fixtures, used by name

PACKAGE = Path(__file__).resolve().parent.parent / "qwq_ollama"
MESSAGES = [{"role": "user", "content": "hi"}]

# -- the door: no HTTP client outside it -----------------------------------------------------

# Calls that build an HTTP client or send a request without one we built.
_CONSTRUCTORS = {
    "httpx.Client",
    "httpx.AsyncClient",
    "httpx.HTTPTransport",
    "httpx.AsyncHTTPTransport",
    "httpx.get",
    "httpx.post",
    "httpx.head",
    "httpx.put",
    "httpx.delete",
    "httpx.request",
    "httpx.stream",
    "httpcore.ConnectionPool",
    "ollama.Client",
    "ollama.AsyncClient",
    "openai.OpenAI",
    "openai.AsyncOpenAI",
    "urllib.request.urlopen",
    "http.client.HTTPConnection",
    "http.client.HTTPSConnection",
}
# What a client library must be handed for its client to be the door's.
_DOOR_ARGUMENT = {"ollama.Client": "bounded_client_options", "openai.OpenAI": "bounded_client"}
_FORBIDDEN_MODULES = {"urllib.request", "http.client", "requests", "aiohttp", "urllib3"}
# Known exceptions, each with why. The quick `create` answer is one bounded HTTP/1.0 GET over a
# raw socket (size and total time bounded, anything but a plain 200 falls through to the full
# path), kept out of the heavy stack for start-up time. The Hub's own session (gguf_header,
# download) is NOT yet through the door: issue 39, open.
_ALLOWED = {
    ("daemon/transport.py", "httpx.Client"),
    ("daemon/transport.py", "httpx.HTTPTransport"),
}
# private_daemon binds a socket to find a free port for a daemon it starts: no request.
_RAW_SOCKET_ALLOWED = {"daemon/quick_create.py", "engines/private_daemon.py"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "?"


def doors_bypassed(root: Path) -> list[str]:
    """Every place under `root` that makes an HTTP client or a socket outside the door."""
    found: list[str] = []
    for path in sorted(root.rglob("*.py")):
        where = path.relative_to(root).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                )
                for name in names:
                    if name in _FORBIDDEN_MODULES:
                        found.append(f"{where}:{node.lineno}: imports {name}")
                    if name in ("socket", "_socket") and where not in _RAW_SOCKET_ALLOWED:
                        found.append(f"{where}:{node.lineno}: imports {name}")
            if not isinstance(node, ast.Call):
                continue
            name = _dotted(node.func)
            if name not in _CONSTRUCTORS or (where, name) in _ALLOWED:
                continue
            needed = _DOOR_ARGUMENT.get(name)
            given = ast.unparse(node)
            if needed is not None and f"{needed}(" in given:
                continue
            found.append(f"{where}:{node.lineno}: {name}(...) outside the door")
    return found


def test_no_http_client_is_built_outside_the_door() -> None:
    assert doors_bypassed(PACKAGE) == []


def test_the_door_check_sees_a_planted_bypass(tmp_path: Path) -> None:
    """The check above is not blind: each kind of bypass, planted in a copy, is named."""
    planted = tmp_path / "pkg"
    planted.mkdir()
    (planted / "a.py").write_text(
        "import httpx, ollama, openai\n"
        "c = httpx.Client(base_url='x')\n"
        "o = ollama.Client(host='x', timeout=1)\n"
        "p = openai.OpenAI(base_url='x', http_client=httpx.Client())\n"
        "import urllib.request\n",
        encoding="utf-8",
    )
    found = doors_bypassed(planted)
    assert [f.split(": ", 1)[1] for f in found] == [
        "imports urllib.request",
        "httpx.Client(...) outside the door",
        "ollama.Client(...) outside the door",
        "openai.OpenAI(...) outside the door",
        "httpx.Client(...) outside the door",
    ]


# -- hostile servers, per command family -----------------------------------------------------


def trickle_headers(connection: socket.socket, request: bytes) -> None:
    """Headers one byte every 0.3 s for 30 s: no single read ever waits long."""
    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100:
        connection.sendall(bytes([byte]))
        time.sleep(0.3)


def trickle_body(kind: str) -> Handler:
    def handler(connection: socket.socket, request: bytes) -> None:
        connection.sendall(
            f"HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: 100\r\n\r\n".encode()
        )
        for _ in range(100):
            connection.sendall(b" ")
            time.sleep(0.3)

    return handler


def endless(kind: str, unit: bytes) -> Handler:
    """A body without end (no Content-Length, closed never): `unit` again and again."""

    def handler(connection: socket.socket, request: bytes) -> None:
        connection.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\n\r\n".encode())
        block = unit * (65536 // len(unit) + 1)
        for _ in range(4096):
            connection.sendall(block)

    return handler


def redirect(connection: socket.socket, request: bytes) -> None:
    answer(connection, 307, b"", {"Location": f"/moved{path_of(request)}"})


CALLS: dict[str, Callable[[OllamaAPI], object]] = {
    "list (our client)": lambda api: api.list_names(),
    "native chat stream": lambda api: list(api.chat_stream("m", MESSAGES, options={"seed": 1})),
    "chat_once": lambda api: api.chat_once("m", MESSAGES, options={"seed": 1}),
    "generate (budget continuation)": lambda api: api.generate_raw(
        "m", "<think>x</think>", options={"seed": 1, "num_predict": 4}
    ),
    "/v1 chat": lambda api: api.openai_chat("m", MESSAGES, seed=1),
    "/v1 chat streamed": lambda api: api.openai_chat("m", MESSAGES, seed=1, stream=True),
    "create": lambda api: list(api.create("m", from_="x")),
    "copy": lambda api: api.copy("m", "n"),
    "delete": lambda api: api.delete("m"),
}


def one_line_within(call: Callable[[], object], seconds: float = 8.0) -> str:
    """The DaemonError `call` ends in, checked to be one line that came within `seconds` (the
    servers here would hold a client 30 s or more)."""
    started = time.monotonic()
    with pytest.raises(DaemonError) as caught:
        call()
    assert time.monotonic() - started < seconds
    text = str(caught.value)
    assert "\n" not in text and "Traceback" not in text
    return text


@pytest.mark.parametrize("family", list(CALLS))
def test_trickled_headers_end_within_the_deadline(
    serve: Callable[[Handler], RawServer], family: str
) -> None:
    server = serve(trickle_headers)
    text = one_line_within(lambda: CALLS[family](OllamaAPI(server.host, timeout=2.0)))
    assert "within" in text


@pytest.mark.parametrize("family", list(CALLS))
def test_a_trickled_body_ends_within_the_deadline(
    serve: Callable[[Handler], RawServer], family: str
) -> None:
    server = serve(trickle_body("application/json"))
    one_line_within(lambda: CALLS[family](OllamaAPI(server.host, timeout=2.0)))


@pytest.mark.parametrize("family", list(CALLS))
def test_a_redirect_is_refused_not_followed(
    serve: Callable[[Handler], RawServer], family: str
) -> None:
    server = serve(redirect)
    text = one_line_within(lambda: CALLS[family](OllamaAPI(server.host)))
    assert "redirect" in text and "not followed" in text
    assert not any(path_of(r).startswith("/moved") for r in server.requests)


@pytest.mark.parametrize("family", list(CALLS))
def test_an_endless_body_is_cut_at_the_size_cap(
    serve: Callable[[Handler], RawServer], family: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transport, "MAX_BODY", 2 << 20)
    monkeypatch.setenv("QWQ_OLLAMA_DEADLINE", "30")
    server = serve(endless("application/json", b" "))
    text = one_line_within(lambda: CALLS[family](OllamaAPI(server.host)), seconds=25)
    assert "more than" in text


@pytest.mark.parametrize(
    "family", ["native chat stream", "generate (budget continuation)", "create"]
)
def test_an_endless_line_in_a_stream_is_cut_at_the_line_cap(
    serve: Callable[[Handler], RawServer], family: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transport, "MAX_LINE", 1 << 20)
    monkeypatch.setenv("QWQ_OLLAMA_DEADLINE", "30")
    server = serve(endless("application/x-ndjson", b'{"x":'))
    text = one_line_within(lambda: CALLS[family](OllamaAPI(server.host)), seconds=25)
    assert "a line of more than" in text


def stream_of(*lines: bytes) -> Handler:
    def handler(connection: socket.socket, request: bytes) -> None:
        body = b"".join(line + b"\n" for line in lines)
        answer(connection, 200, body, {"Content-Type": "application/x-ndjson"})

    return handler


@pytest.mark.parametrize(
    ("family", "handler", "expected"),
    [
        (
            "generate (budget continuation)",
            stream_of(b'{"model":"m","response":"a","done":false}', b'{"model": "m", "resp'),
            "shape Ollama does not use",
        ),
        (
            "chat_once",
            lambda c, r: answer(
                c, 200, b"<html><body>login</body></html>", {"Content-Type": "text/html"}
            ),
            "shape Ollama does not use",
        ),
        (
            "/v1 chat",
            lambda c, r: answer(
                c, 200, b"<html><body>login</body></html>", {"Content-Type": "text/html"}
            ),
            "shape Ollama does not use",
        ),
        (
            "/v1 chat",
            lambda c, r: answer(
                c,
                200,
                json.dumps(
                    {
                        "id": "x",
                        "object": "chat.completion",
                        "created": 0,
                        "model": "m",
                        "choices": [],
                    }
                ).encode(),
                {"Content-Type": "application/json"},
            ),
            "shape Ollama does not use",
        ),
    ],
    ids=["broken JSON line", "HTML on /api/chat", "HTML on /v1", "choices: []"],
)
def test_answers_in_a_foreign_shape_are_one_line(
    serve: Callable[[Handler], RawServer], family: str, handler: Handler, expected: str
) -> None:
    server = serve(handler)
    assert expected in one_line_within(lambda: CALLS[family](OllamaAPI(server.host)))


def test_llama_server_goes_through_the_door_too(serve: Callable[[Handler], RawServer]) -> None:
    server = serve(redirect)
    text = one_line_within(lambda: LlamaServerAPI(f"http://{server.host}").models())
    assert "redirect" in text


def test_chat_against_a_redirecting_daemon_is_exit_3_not_a_false_success(
    serve: Callable[[Handler], RawServer], tmp_path: Path
) -> None:
    """A daemon that redirects its chats: it said "done: repeat_limit, 0 tokens" and exited 0
    (issue 39)."""
    from .conftest import run_cli

    def handler(connection: socket.socket, request: bytes) -> None:
        if path_of(request) == "/api/chat":
            redirect(connection, request)
        else:
            version = json.dumps({"version": "0.34.4"}).encode()
            answer(connection, 200, version, {"Content-Type": "application/json"})

    server = serve(handler)
    done = run_cli("chat", "qwq-fixed", "hi", "--seed", "1", "--host", server.host, cwd=tmp_path)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "redirect" in done.stderr and "not followed" in done.stderr
    assert "Traceback" not in done.stderr and "done:" not in done.stdout
