"""Hostile servers, for real: loopback servers that go silent, trickle, redirect, compress into
bombs, lie in Content-Range or change their ETag, and GGUF headers that claim more than any file
holds. Each ends in one line within its deadline, with no traceback, nothing read past its
bound and no secret shown or stored (issue 31)."""

from __future__ import annotations

import gzip
import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from qwq_ollama.artifacts import gguf_header
from qwq_ollama.artifacts.gguf_header import Fetched, read_header
from qwq_ollama.daemon.client import MAX_ANSWER, OllamaAPI
from qwq_ollama.errors import DaemonError, DaemonUnreachable, EnvironmentProblem, InputError

from .conftest import run_cli

Handler = Callable[[socket.socket, bytes], None]
SECRET = "s3cr3t-pw"


class RawServer:
    """A loopback TCP server whose every connection gets `handler(connection, request)`:
    free to answer slowly, partly, or never. `requests` keeps what each connection sent."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[bytes] = []
        self.sent = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stopped = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(connection,), daemon=True).start()

    def _one(self, connection: socket.socket) -> None:
        with connection:
            request = b""
            while b"\r\n\r\n" not in request:
                more = connection.recv(65536)
                if not more:
                    return
                request += more
            self.requests.append(request)
            try:
                self.handler(connection, request)
            except OSError:
                pass  # the client gave up, as it should

    def close(self) -> None:
        self.stopped.set()
        self.listener.close()


@pytest.fixture()
def serve() -> Iterator[Callable[[Handler], RawServer]]:
    servers: list[RawServer] = []

    def start(handler: Handler) -> RawServer:
        servers.append(RawServer(handler))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def answer(
    connection: socket.socket, status: int, body: bytes = b"", headers: dict[str, str] | None = None
) -> None:
    head = {"Content-Length": str(len(body)), "Connection": "close", **(headers or {})}
    lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in head.items()]
    connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)


def path_of(request: bytes) -> str:
    return request.split(b" ", 2)[1].decode()


def header_of(request: bytes, name: str) -> str | None:
    for line in request.decode("latin-1").split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


@pytest.fixture(autouse=True)
def short_deadline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("QWQ_OLLAMA_DEADLINE", "1.5")
    monkeypatch.setenv("QWQ_OLLAMA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # for the commands run as a user runs them


# -- the daemon ------------------------------------------------------------------------------


def trickle(body: bytes, every: float = 0.2) -> Handler:
    """Headers at once, then the body one byte at a time: no single read ever times out."""

    def handler(connection: socket.socket, request: bytes) -> None:
        connection.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
        )
        for byte in body:
            connection.sendall(bytes([byte]))
            time.sleep(every)

    return handler


def test_a_trickling_daemon_fails_within_the_deadline_naming_host_and_request(
    serve: Callable[[Handler], RawServer],
) -> None:
    server = serve(trickle(json.dumps({"models": []}).encode() + b" " * 200))
    api = OllamaAPI(server.host)
    started = time.monotonic()
    with pytest.raises(DaemonUnreachable) as caught:
        api.list_names()
    assert time.monotonic() - started < 4.0
    assert str(caught.value) == (
        f"Ollama at http://{server.host} did not answer within 1.5 s (GET /api/tags)"
    )


def test_a_silent_daemon_is_exit_3_from_the_cli_within_the_deadline(silent_host: str) -> None:
    started = time.monotonic()
    result = run_cli("list", "--host", silent_host, env={"QWQ_OLLAMA_DEADLINE": "1"})
    assert result.returncode == 3, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"http://{silent_host} did not answer within 1 s" in result.stderr
    assert time.monotonic() - started < 60  # the interpreter's start included, on a busy CI


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        ("/api/tags", b"<html><body>Sign in</body></html>", "does not answer like Ollama"),
        ("/api/tags", b'{"models": [{"name": 1}]}', "in a shape Ollama does not use"),
        (
            "/api/show",
            b'{"parameters": "temperature \\"unclosed\\nnum_ctx x"}',
            "in a shape Ollama does not use",
        ),
        ("/api/chat", b'{"message": {}}', "in a shape Ollama does not use"),
    ],
)
def test_answers_ollama_never_gives_are_one_line(
    serve: Callable[[Handler], RawServer], path: str, body: bytes, expected: str
) -> None:
    server = serve(lambda c, r: answer(c, 200, body, {"Content-Type": "application/json"}))
    api = OllamaAPI(server.host)
    call = {
        "/api/tags": api.list_names,
        "/api/show": lambda: api.show("m"),
        "/api/chat": lambda: api.render_prompt("m", []),
    }[path]
    with pytest.raises(DaemonError) as caught:
        call()
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_a_gzip_bomb_is_refused_before_it_inflates(
    serve: Callable[[Handler], RawServer],
) -> None:
    """The door asks for plain answers (Accept-Encoding: identity) and refuses a compressed
    one unread: a bomb never inflates (issue 39; it was cut at 64 MiB decoded before)."""
    bomb = gzip.compress(b"{" + b" " * (MAX_ANSWER + (1 << 20)), compresslevel=9)
    assert len(bomb) < 1 << 20
    server = serve(lambda c, r: answer(c, 200, bomb, {"Content-Encoding": "gzip"}))
    with pytest.raises(DaemonError, match=r"compressed its answer \(gzip\) though asked not to"):
        OllamaAPI(server.host).list_names()
    assert header_of(server.requests[0], "Accept-Encoding") == "identity"


def test_a_ten_megabyte_error_body_is_cut_to_one_short_line(
    serve: Callable[[Handler], RawServer],
) -> None:
    body = json.dumps({"error": "bad " + "x" * 10_000_000 + "\nsecond line"}).encode()
    server = serve(lambda c, r: answer(c, 500, body))
    with pytest.raises(DaemonError) as caught:
        OllamaAPI(server.host).list_names()
    text = str(caught.value)
    assert "\n" not in text and len(text) < 300 and text.endswith("... (HTTP 500)")


def chat_lines(first_after: float, then_silent: bool) -> Handler:
    line = json.dumps(
        {
            "model": "m",
            "created_at": "2026-01-01T00:00:00Z",
            "message": {"role": "assistant", "content": "hi"},
            "done": False,
        }
    )

    def handler(connection: socket.socket, request: bytes) -> None:
        time.sleep(first_after)
        connection.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = (line + "\n").encode()
        connection.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        time.sleep(30 if then_silent else 0)
        connection.sendall(b"0\r\n\r\n")

    return handler


def test_a_chat_may_wait_for_its_first_byte_but_not_fall_silent(
    serve: Callable[[Handler], RawServer],
) -> None:
    """The first byte after 2 s (a model loading) is within the first-byte deadline (5 s),
    though past the bound on silence (1.5 s); then 30 s of silence ends it at 1.5 s."""
    server = serve(chat_lines(first_after=2.0, then_silent=True))
    api = OllamaAPI(server.host, timeout=5.0)
    parts = []
    started = time.monotonic()
    with pytest.raises(DaemonUnreachable, match=r"within 1.5 s during a chat with m \(silent"):
        for part in api.chat_stream("m", [{"role": "user", "content": "hi"}]):  # unseeded: a fake
            parts.append(part)
    assert [p.message.content for p in parts] == ["hi"]
    assert time.monotonic() - started < 6  # 2 s to the first byte, 1.5 s of silence


def test_a_chat_with_no_first_byte_fails_at_the_first_byte_deadline(
    serve: Callable[[Handler], RawServer],
) -> None:
    server = serve(chat_lines(first_after=30, then_silent=False))
    started = time.monotonic()
    with pytest.raises(DaemonUnreachable, match=r"within 2 s during a chat with m before its "):
        list(OllamaAPI(server.host, timeout=2.0).chat_stream("m", []))  # unseeded: a fake
    assert time.monotonic() - started < 6


# -- GGUF headers by range requests ----------------------------------------------------------


def gguf_head(kv: bytes = b"", tensors: int = 0, kvs: int = 0) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", 3, tensors, kvs) + kv


def string_kv(key: str, claimed: int) -> bytes:
    """A string value whose length claims `claimed` bytes."""
    return struct.pack("<Q", len(key)) + key.encode() + struct.pack("<IQ", 8, claimed)


def file_server(
    data: bytes,
    size: int | None = None,
    etag: str | Callable[[int], str] = "e1",
    content_range: Callable[[int, int, int], str] | None = None,
    ignore_range: bool = False,
    encoding: str | None = None,
) -> Handler:
    """A file server: `data` is the file's start, the rest of its `size` bytes zeros."""
    total = size if size is not None else len(data)
    calls = [0]

    def handler(connection: socket.socket, request: bytes) -> None:
        calls[0] += 1
        tag = etag(calls[0]) if callable(etag) else etag
        headers = {"ETag": f'"{tag}"', "Accept-Ranges": "bytes"}
        if request.startswith(b"HEAD"):
            connection.sendall(
                b"HTTP/1.1 200 OK\r\n"
                + "".join(
                    f"{k}: {v}\r\n"
                    for k, v in {**headers, "Content-Length": total, "Connection": "close"}.items()
                ).encode()
                + b"\r\n"
            )
            return
        wanted = header_of(request, "Range")
        if wanted is None or ignore_range:
            answer(connection, 200, data[: 1 << 20], headers)
            return
        first, last = (int(v) for v in wanted.removeprefix("bytes=").split("-"))
        body = (data + bytes(max(0, last + 1 - len(data))))[first : last + 1]
        shown = (
            content_range(first, last, total) if content_range else f"bytes {first}-{last}/{total}"
        )
        if encoding == "gzip":
            body, headers = (
                gzip.compress(body + bytes(8 << 20), compresslevel=1),
                {**headers, "Content-Encoding": "gzip"},
            )
        answer(connection, 206, body, {**headers, "Content-Range": shown})

    return handler


def read_remote(url: str, tmp_path: Path) -> Fetched:
    fetched = Fetched()
    read_header(url, tmp_path / "shards", fetched)
    return fetched


def test_a_header_claiming_2_to_the_40_tensors_is_refused_before_more_is_read(
    serve: Callable[[Handler], RawServer], tmp_path: Path
) -> None:
    server = serve(file_server(gguf_head(tensors=1 << 40), size=20 << 30))
    with pytest.raises(InputError, match=r"tensor_count: 1099511627776 is more than a file"):
        read_remote(f"http://{server.host}/m.gguf", tmp_path)
    assert len(server.requests) == 2  # the HEAD and the first range


def test_a_string_longer_than_a_header_may_be_is_refused_at_once(
    serve: Callable[[Handler], RawServer], tmp_path: Path
) -> None:
    """The 256 MiB cap on a header: a 300 MiB tokenizer string in a 20 GiB file is refused
    from the first read, not fetched in doublings up to the cap."""
    head = gguf_head(string_kv("tokenizer.chat_template", 300 << 20), kvs=1)
    server = serve(file_server(head, size=20 << 30))
    started = time.monotonic()
    with pytest.raises(InputError, match=r"tokenizer\.chat_template: claims 314572800 bytes"):
        read_remote(f"http://{server.host}/m.gguf", tmp_path)
    assert len(server.requests) == 2 and time.monotonic() - started < 10


@pytest.mark.parametrize(
    ("lie", "expected"),
    [
        (lambda first, last, total: f"bytes {first + 100}-{last + 100}/{total}", "answered"),
        (lambda first, last, total: f"bytes {first}-{last}/{total * 2}", "answered"),
        (lambda first, last, total: "", "no Content-Range"),
    ],
)
def test_a_lying_content_range_is_refused(
    serve: Callable[[Handler], RawServer],
    tmp_path: Path,
    lie: Callable[[int, int, int], str],
    expected: str,
) -> None:
    server = serve(file_server(gguf_head(), size=1 << 20, content_range=lie))
    with pytest.raises(EnvironmentProblem, match=expected):
        read_remote(f"http://{server.host}/m.gguf", tmp_path)


def test_an_etag_that_changes_between_range_reads_is_refused(
    serve: Callable[[Handler], RawServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A header longer than the first read needs a second: the file changed in between."""
    monkeypatch.setattr(gguf_header, "FIRST_READ", 1024)
    head = gguf_head(string_kv("general.name", 4000) + b"n" * 4000, kvs=1)
    server = serve(file_server(head, size=1 << 20, etag=lambda call: f"v{call}"))
    with pytest.raises(EnvironmentProblem, match=r"changed while its header was read"):
        read_remote(f"http://{server.host}/m.gguf", tmp_path)


def test_a_server_that_ignores_range_is_refused_without_reading_the_file(
    serve: Callable[[Handler], RawServer], tmp_path: Path
) -> None:
    server = serve(file_server(gguf_head(), size=600 << 20, ignore_range=True))
    with pytest.raises(EnvironmentProblem, match=r"does not answer range requests \(HTTP 200\)"):
        read_remote(f"http://{server.host}/m.gguf", tmp_path)


def test_a_compressed_range_answer_is_bounded_after_decoding(
    serve: Callable[[Handler], RawServer], tmp_path: Path
) -> None:
    server = serve(file_server(gguf_head(), size=1 << 20, encoding="gzip"))
    with pytest.raises(EnvironmentProblem, match=r"more than the 1048576 bytes asked"):
        read_remote(f"http://{server.host}/m.gguf", tmp_path)


def test_a_trickling_file_server_fails_within_the_deadline(
    serve: Callable[[Handler], RawServer], tmp_path: Path
) -> None:
    def handler(connection: socket.socket, request: bytes) -> None:
        if request.startswith(b"HEAD"):
            answer(connection, 200, b"", {"ETag": '"e"', "Content-Length": "4096"})
            connection.sendall(b"")
            return
        connection.sendall(
            b"HTTP/1.1 206 X\r\nContent-Range: bytes 0-4095/4096\r\n"
            b'Content-Length: 4096\r\nETag: "e"\r\n\r\n'
        )
        for _ in range(4096):
            connection.sendall(b"G")
            time.sleep(0.1)

    server = serve(handler)
    started = time.monotonic()
    with pytest.raises(EnvironmentProblem, match=r"not whole within 1.5 s"):
        read_remote(f"http://{server.host}/m.gguf", tmp_path)
    assert time.monotonic() - started < 5


def test_a_petabyte_content_length_is_one_line(
    serve: Callable[[Handler], RawServer], tmp_path: Path
) -> None:
    server = serve(
        lambda c, r: (
            answer(c, 200, b"", {"Content-Length": str(1 << 50)})
            if r.startswith(b"HEAD")
            else answer(c, 404)
        )
    )
    with pytest.raises(EnvironmentProblem, match=r"more than any GGUF"):
        read_remote(f"http://{server.host}/m.gguf", tmp_path)


def test_the_header_cache_is_per_host_and_holds_no_secret(
    serve: Callable[[Handler], RawServer], tmp_path: Path
) -> None:
    """Two hosts whose files share an ETag: each is planned from its own header; a URL's
    password and query token are never written to the cache."""
    from qwq_ollama.artifacts.gguf import inspect_gguf

    first = serve(file_server(gguf_head(string_kv("general.name", 3) + b"one", kvs=1), 4096))
    second = serve(file_server(gguf_head(string_kv("general.name", 3) + b"two", kvs=1), 4096))
    names = []
    for index, server in enumerate((first, second)):
        url = f"http://alice:{SECRET}@{server.host}/m.gguf?token=tok-{SECRET}&sig"
        [path] = read_header(url, tmp_path / f"h{index}")
        names.append(inspect_gguf(path).name)
    assert names == ["one", "two"]
    stored = b"".join(p.read_bytes() for p in (tmp_path / "cache").rglob("*") if p.is_file())
    assert SECRET.encode() not in stored and b"tok-" not in stored and b"alice" not in stored


def test_credentials_never_follow_a_redirect_to_another_host(
    serve: Callable[[Handler], RawServer], tmp_path: Path
) -> None:
    elsewhere = serve(file_server(gguf_head(), 4096))
    origin = serve(
        lambda c, r: answer(c, 302, b"", {"Location": f"http://{elsewhere.host}{path_of(r)}"})
    )
    read_header(f"http://alice:{SECRET}@{origin.host}/m.gguf", tmp_path / "h")
    assert all(header_of(r, "Authorization") is not None for r in origin.requests)
    assert elsewhere.requests and all(
        header_of(r, "Authorization") is None for r in elsewhere.requests
    )


def test_errors_about_a_gguf_url_never_show_its_secrets(
    serve: Callable[[Handler], RawServer], tmp_path: Path
) -> None:
    server = serve(lambda c, r: answer(c, 404))
    url = f"http://alice:{SECRET}@{server.host}/m.gguf?hf_tokenvalue"
    result = run_cli(
        "plan",
        "qwq-fixed",
        "--gguf",
        url,
        "--vram",
        "24GiB",
        env={"QWQ_OLLAMA_CACHE": str(tmp_path / "cache")},
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert SECRET not in result.stderr and "hf_tokenvalue" not in result.stderr
    assert f"alice:***@{server.host}/m.gguf?***" in result.stderr


# -- the Hub's listing -----------------------------------------------------------------------


def hub_listing(pages: Callable[[str], tuple[list[dict[str, str]], str | None]]) -> Handler:
    def handler(connection: socket.socket, request: bytes) -> None:
        entries, following = pages(path_of(request))
        headers = {"Content-Type": "application/json"}
        if following:
            headers["Link"] = f'<{following}>; rel="next"'
        answer(connection, 200, json.dumps(entries).encode(), headers)

    return handler


@pytest.fixture()
def hub_at(monkeypatch: pytest.MonkeyPatch) -> Callable[[RawServer], None]:
    from huggingface_hub import constants
    from huggingface_hub.utils import _detect_agent

    # huggingface_hub asks the endpoint for its agent registry (telemetry) and caches the
    # answer under HF_HOME: give it the empty one in-process, so nothing is asked or written
    monkeypatch.setattr(_detect_agent, "_registry", _detect_agent._EMPTY_REGISTRY)

    def point(server: RawServer) -> None:
        monkeypatch.setattr(constants, "ENDPOINT", f"http://{server.host}")

    return point


def test_a_listing_that_pages_forever_is_refused(
    serve: Callable[[Handler], RawServer], hub_at: Callable[[RawServer], None]
) -> None:
    server = serve(hub_listing(lambda path: ([], f"http://127.0.0.1:{server.port}{path}")))
    hub_at(server)
    with pytest.raises(EnvironmentProblem, match=r"goes on past 100 pages"):
        gguf_header.hub_quant_file("o/r", "Q4_K_M")
    assert len(server.requests) == gguf_header.MAX_PAGES


def test_a_listing_naming_a_path_outside_the_repository_is_refused(
    serve: Callable[[Handler], RawServer], hub_at: Callable[[RawServer], None]
) -> None:
    server = serve(
        hub_listing(lambda path: ([{"type": "file", "path": "../../etc/m-Q4_K_M.gguf"}], None))
    )
    hub_at(server)
    with pytest.raises(EnvironmentProblem, match=r"not a path inside a repository"):
        gguf_header.hub_quant_file("o/r", "Q4_K_M")


def test_a_download_listing_naming_a_path_outside_the_repository_is_one_line(
    serve: Callable[[Handler], RawServer],
    hub_at: Callable[[RawServer], None],
    tmp_path: Path,
) -> None:
    """snapshot_download's listing with `../` in a name: one line, nothing written (it was
    huggingface_hub's ValueError traceback; issue 39)."""
    from qwq_ollama.artifacts.download import download_gguf

    commit = "a" * 40

    def hub(connection: socket.socket, request: bytes) -> None:
        if "/tree/" in path_of(request):
            entry = {"type": "file", "path": "../../evil-Q4_K_M.gguf", "size": 1, "oid": "b" * 40}
            body = json.dumps([entry]).encode()
        else:
            body = json.dumps({"id": "o/r", "sha": commit, "siblings": []}).encode()
        answer(connection, 200, body, {"Content-Type": "application/json", "X-Repo-Commit": commit})

    hub_at(serve(hub))
    with pytest.raises(EnvironmentProblem, match=r"leaves the repository's folder") as caught:
        download_gguf("o/r", "Q4_K_M", local_dir=tmp_path / "dl")
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "evil-Q4_K_M.gguf").exists()
    assert not any(p.is_file() for p in (tmp_path / "dl").rglob("*.gguf"))


def test_a_malformed_hf_endpoint_is_one_line_exit_2_without_its_password(tmp_path: Path) -> None:
    result = run_cli(
        "plan",
        "qwq-fixed",
        "--gguf",
        "hf://o/r@Q4_K_M",
        "--vram",
        "24GiB",
        env={"HF_ENDPOINT": f"https://bob:{SECRET}@[::1", "QWQ_OLLAMA_CACHE": str(tmp_path)},
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and SECRET not in result.stderr
    assert "HF_ENDPOINT: 'https://bob:***@[::1' is not an http(s) URL" in result.stderr


def test_a_gguf_url_whose_password_breaks_it_is_one_line_without_the_password(
    tmp_path: Path,
) -> None:
    with pytest.raises(InputError) as caught:
        read_header("http://alice:pa#ss/w@127.0.0.1:9/m.gguf?tok", tmp_path)
    assert "pa#ss" not in str(caught.value) and "ss/w" not in str(caught.value)
    assert str(caught.value).startswith("gguf: http://alice:***@127.0.0.1:9/m.gguf?***: not an")


def test_the_quick_create_path_gives_up_on_a_trickling_daemon(
    serve: Callable[[Handler], RawServer],
) -> None:
    """`create`'s fast path (no HTTP stack) reads /api/tags itself: a trickle ends it within
    its deadline, and the full path takes over."""
    from qwq_ollama.daemon.quick_create import _listed_digests

    server = serve(trickle(json.dumps({"models": []}).encode() + b" " * 200, every=0.1))
    started = time.monotonic()
    assert _listed_digests(["127.0.0.1", server.port, server.host], timeout=1.0) is None
    assert time.monotonic() - started < 4


def test_a_daemons_model_info_claiming_2_to_the_40_tokens_is_one_line(
    serve: Callable[[Handler], RawServer],
) -> None:
    info = {
        "general.architecture": "llama",
        "llama.context_length": 1 << 40,
        "llama.embedding_length": 64,
        "llama.block_count": 2,
        "llama.feed_forward_length": 128,
        "llama.attention.head_count": 4,
    }
    show = {
        "model_info": info,
        "tensors": [{"name": "output.weight", "type": "F32", "shape": [64, 64]}],
    }
    server = serve(lambda c, r: answer(c, 200, json.dumps(show).encode()))
    started = time.monotonic()
    result = run_cli("plan", "--model", "m", "--ctx", "2048", "--host", server.host)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "llama.context_length is 1099511627776, not a number in 1-16777216" in result.stderr
    assert time.monotonic() - started < 60


def test_the_daemon_client_never_follows_a_redirect_with_its_credentials(
    serve: Callable[[Handler], RawServer],
) -> None:
    elsewhere = serve(lambda c, r: answer(c, 200, b'{"models": []}'))
    origin = serve(
        lambda c, r: answer(c, 302, b"", {"Location": f"http://{elsewhere.host}{path_of(r)}"})
    )
    api = OllamaAPI(f"http://alice:{SECRET}@{origin.host}")
    with pytest.raises(DaemonError) as caught:
        api.list_names()
    assert SECRET not in str(caught.value)
    assert header_of(origin.requests[0], "Authorization") is not None
    assert elsewhere.requests == []
