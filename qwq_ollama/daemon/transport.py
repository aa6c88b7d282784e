"""The one door for every HTTP request of the tool: our own clients, and the `ollama` and
`openai` packages (each takes an httpx client or transport, and gets one built here).

Every answer is bounded here, whoever asked:
- time: connect, headers and the first byte within one deadline ($QWQ_OLLAMA_DEADLINE unless a
  request says otherwise). A plain answer must then be whole within that same deadline; a
  stream (ndjson, server-sent events) must bring each next line within it, so a long chat that
  keeps coming is never cut, while a silent or trickling one is. The bound holds on every
  socket read (the read timeout shrinks to what is left), not only between two chunks: a
  server that trickles its headers one byte at a time is cut too.
- size: every body at most MAX_BODY bytes on the wire, every streamed line at most MAX_LINE;
  answers are asked for, and accepted, only uncompressed, so the wire size is the decoded size.
- redirects: refused, never followed (with the credentials or not).
A breach is a `BoundaryError` (an httpx.TransportError, so every client passes it on) that says
what happened in one line; `boundary_problem` finds it under whatever a client wrapped it in.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import httpcore
import httpx

from qwq_ollama.limits import Deadline, network_deadline

MAX_BODY = 64 << 20  # bytes of one answer (a verbose /api/show of QwQ: about 12 MB)
MAX_LINE = 4 << 20  # bytes of one line of a streamed answer (one token's update)
# A request extension: seconds this request's answer may take instead of $QWQ_OLLAMA_DEADLINE
# (a blob upload of 20 GB; a chat's first byte while the daemon loads the model).
DEADLINE_EXTENSION = "qwq_deadline"
_STREAM_TYPES = ("application/x-ndjson", "text/event-stream")

# The deadline of the answer being read on this thread now: every socket read waits at most
# what is left of it.
_CURRENT: ContextVar[Deadline | None] = ContextVar("qwq_answer_deadline", default=None)


class BoundaryError(httpx.TransportError):
    """An answer broke a bound of the door: `says` is the one line to show."""

    def __init__(self, says: str, request: httpx.Request | None = None) -> None:
        super().__init__(says, request=request)
        self.says = says


class AnswerTooSlow(BoundaryError, httpx.TimeoutException):
    """Connect, headers, a body or a streamed line did not come within the deadline (a
    timeout, as every client already tells one)."""


class AnswerTooBig(BoundaryError):
    """A body or a streamed line grew past its cap."""


class RedirectRefused(BoundaryError):
    """The server answered with a redirect: never followed."""


class EncodedAnswer(BoundaryError):
    """The server compressed an answer it was asked to send plain (its size would be unknown)."""


def boundary_problem(exc: BaseException) -> BoundaryError | None:
    """The BoundaryError behind `exc` (the `openai` package wraps it in APIConnectionError)."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return None
        if isinstance(seen, BoundaryError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _left(timeout: float | None) -> float | None:
    deadline = _CURRENT.get()
    if deadline is None:
        return timeout
    left = deadline.left()
    if left <= 0:
        raise httpcore.ReadTimeout("the answer's deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A socket whose every read and write waits at most what is left of the deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _left(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _left(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, _left(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.SyncBackend):
    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        stream = super().connect_tcp(host, port, _left(timeout), local_address, socket_options)
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(super().connect_unix_socket(path, _left(timeout), socket_options))


class _BoundedBody(httpx.SyncByteStream):
    """A body read under the door's bounds: total size, line size, and the deadline (whole
    answer, or each line of a stream)."""

    def __init__(
        self, inner: httpx.SyncByteStream, deadline: Deadline, streamed: bool, seconds: float
    ) -> None:
        self._inner, self._deadline, self._streamed = inner, deadline, streamed
        self._seconds = seconds

    def __iter__(self) -> Iterator[bytes]:
        chunks = iter(self._inner)
        total = line = 0
        while True:
            token = _CURRENT.set(self._deadline)
            try:
                chunk = next(chunks)
            except StopIteration:
                return
            except httpx.TimeoutException:
                raise AnswerTooSlow(self._slow(total)) from None
            finally:
                _CURRENT.reset(token)
            total += len(chunk)
            if total > MAX_BODY:
                raise AnswerTooBig(f"answered with more than {MAX_BODY >> 20} MiB")
            if self._streamed:
                cut = chunk.rfind(b"\n")
                if cut >= 0:  # a line came whole: the next one has the deadline afresh
                    line = len(chunk) - cut - 1
                    self._deadline = Deadline(self._seconds)
                else:
                    line += len(chunk)
                if line > MAX_LINE:
                    raise AnswerTooBig(f"sent a line of more than {MAX_LINE >> 20} MiB")
            elif self._deadline.passed:
                raise AnswerTooSlow(self._slow(total))
            yield chunk

    def _slow(self, total: int) -> str:
        if self._streamed:
            return f"fell silent (no whole line within {self._seconds:g} s)"
        return f"did not answer whole within {self._seconds:g} s ({total} bytes came)"

    def close(self) -> None:
        self._inner.close()


class BoundedTransport(httpx.BaseTransport):
    """httpx's own HTTP/1.1 transport, under the door's bounds (see the module's docstring)."""

    def __init__(self, verify: ssl.SSLContext | bool = True) -> None:
        self._inner = httpx.HTTPTransport(verify=verify, retries=0, trust_env=False)
        pool = self._inner._pool
        if not isinstance(pool, httpcore.ConnectionPool):  # pragma: no cover - httpx changed
            raise RuntimeError("httpx no longer builds a plain connection pool")
        pool._network_backend = _DeadlineBackend()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        seconds = float(request.extensions.get(DEADLINE_EXTENSION) or network_deadline())
        deadline = Deadline(seconds)
        request.headers["Accept-Encoding"] = "identity"
        token = _CURRENT.set(deadline)
        try:
            response = self._inner.handle_request(request)
        except httpx.TimeoutException:
            raise AnswerTooSlow(
                f"did not answer within {seconds:g} s (no headers yet)", request=request
            ) from None
        finally:
            _CURRENT.reset(token)
        if response.is_redirect or 300 <= response.status_code < 400:
            response.close()
            where = response.headers.get("Location", "")
            raise RedirectRefused(
                f"answered with a redirect (HTTP {response.status_code}"
                f"{' to another address' if where else ''}): not followed; "
                "give the address it serves at",
                request=request,
            )
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            response.close()
            raise EncodedAnswer(
                f"compressed its answer ({encoding[:20]}) though asked not to", request=request
            )
        kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        streamed = kind in _STREAM_TYPES
        if streamed:
            deadline = Deadline(network_deadline())
        inner_stream = response.stream
        assert isinstance(inner_stream, httpx.SyncByteStream)
        response.stream = _BoundedBody(inner_stream, deadline, streamed, deadline.seconds)
        return response

    def close(self) -> None:
        self._inner.close()


def bounded_client(
    *, base_url: str = "", verify: ssl.SSLContext | bool = True, **kwargs: Any
) -> httpx.Client:
    """The only httpx client of the tool: BoundedTransport, redirects not followed, no proxy
    from the environment (a proxy would be a second transport, outside the door)."""
    return httpx.Client(
        base_url=base_url,
        transport=BoundedTransport(verify),
        follow_redirects=False,
        trust_env=False,
        **kwargs,
    )


def bounded_client_options(verify: ssl.SSLContext | bool = True) -> dict[str, Any]:
    """What a client library that builds its own httpx.Client (ollama.Client) is given, so its
    client is the door's: the transport, and no proxy from the environment."""
    return {"transport": BoundedTransport(verify), "trust_env": False}
