"""The one place that talks to an Ollama daemon: every request of the tool goes through here.

The `ollama` Python client does the work where it can (create, chat, delete); plain HTTP covers
what it drops or cannot send: `system` and `capabilities` from /api/show, blob HEAD/POST with a
digest we already know, `_debug_render_only`, /api/ps. (The quick `create` answer, which must
not import this stack, reads /api/tags itself, through the same parser in `wire`.)
"""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import ollama
from ollama._types import CreateRequest, ProgressResponse

from qwq_ollama.catalog.conversation import as_ollama_messages
from qwq_ollama.daemon.answers import LoadedModel, ProgressUpdate, Shown
from qwq_ollama.daemon.host import resolve_address
from qwq_ollama.daemon.transport import (
    DEADLINE_EXTENSION,
    MAX_BODY,
    MAX_LINE,
    boundary_problem,
    bounded_client,
    bounded_client_options,
)
from qwq_ollama.daemon.wire import listed_digests
from qwq_ollama.errors import (
    DaemonError,
    DaemonUnreachable,
    InputError,
    NothingListens,
    RefusedError,
)
from qwq_ollama.facts import OLLAMA_MINIMUM, is_supported
from qwq_ollama.limits import Deadline, TooBig, TooSlow, network_deadline, one_line, read_bounded

# What a thinking request may be on the wire: Ollama's `think` (true/false, or a level from
# v0.24 on), and reasoning_effort on /v1/chat/completions.
ThinkValue = bool | str


@dataclass(frozen=True)
class OpenAIReply:
    """One /v1/chat/completions answer as the `openai` package read it: the reasoning Ollama
    puts in the non-standard `reasoning` field, the answer, and why it ended."""

    reasoning: str
    content: str
    finish_reason: str | None


@dataclass(frozen=True)
class RawReply:
    """One raw /api/generate answer: the text and how many tokens it took."""

    text: str
    done_reason: str | None
    eval_count: int


# A bearer token for a daemon behind an authenticating proxy: the variable ollama-python itself
# reads and sends as `Authorization: Bearer` (its Client), so one setting serves both clients.
TOKEN_VARIABLE = "OLLAMA_API_KEY"
REFUSED_CREDENTIALS = (401, 403, 407)
MAX_ANSWER = MAX_BODY  # bytes of one answer: the door's cap (transport.py)
MAX_CHAT_LINE = MAX_LINE  # one line of a streamed chat (one token's update)
# What a daemon's answer may hold that our parsers do not expect: an unexpected shape.
_SHAPE_ERRORS = (LookupError, TypeError, AttributeError, ValueError, SyntaxError)


@dataclass(frozen=True)
class Answer:
    """One whole answer of the daemon, read within its deadline and size bound."""

    status_code: int
    body: bytes
    host: str
    path: str

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body as JSON; a daemon (or a proxy's login page) answering anything else is a
        one-line DaemonError naming what it said."""
        try:
            return json.loads(self.body)
        except ValueError:
            raise DaemonError(
                f"{self.host} does not answer like Ollama ({self.path} gave "
                f"{one_line(self.text, 60)!r})"
            ) from None


def _tls_context(scheme: str) -> ssl.SSLContext:
    """One TLS context for both HTTP clients, built only when the daemon speaks TLS.

    An https daemon is verified against the system's trust store (OpenSSL's default paths), or
    against `SSL_CERT_FILE` / `SSL_CERT_DIR` when set, as httpx reads them. A plain-http one
    gets a context that trusts nothing, which it never uses (and which would fail closed if it
    ever were); loading a CA bundle costs about 25 ms a client.
    """
    if scheme != "https":
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cafile, capath = os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")
    if cafile or capath:
        try:
            return ssl.create_default_context(cafile=cafile or None, capath=capath or None)
        except (OSError, ssl.SSLError) as exc:  # missing, unreadable, or not PEM
            field = "SSL_CERT_FILE" if cafile else "SSL_CERT_DIR"
            raise InputError(
                f"{(cafile or capath)!r}: cannot load CA certificates from it "
                f"({getattr(exc, 'strerror', None) or exc})",
                field=field,
            ) from None
    return ssl.create_default_context()


def _tls_problem(exc: BaseException) -> str | None:
    """Why a TLS handshake failed, in a few words, if that is what `exc` was."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {seen.verify_message or seen.reason}"
        if isinstance(seen, ssl.SSLError):
            return seen.reason or str(seen)
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    return text if "SSL" in text or "CERTIFICATE" in text else None


class OllamaAPI:
    """A daemon at `host` (default: $OLLAMA_HOST). `host` is the display form (secrets as
    `***`): every message says that, never the URL with its credentials."""

    def __init__(self, host: str | None = None, timeout: float = 600.0) -> None:
        address = resolve_address(host)
        self.host = address.display
        self.scheme = address.scheme
        self.timeout = timeout
        tls = _tls_context(address.scheme)
        extra: dict[str, Any] = {}
        if address.auth is not None:
            extra["auth"] = httpx.BasicAuth(*address.auth)
        if address.params:
            extra["params"] = address.params
        token = os.environ.get(TOKEN_VARIABLE)
        headers = {"Authorization": f"Bearer {token}"} if token and not address.auth else {}
        # both clients go through the one bounded door (transport.py)
        self.client = ollama.Client(
            host=address.url,
            timeout=timeout,
            headers=headers,
            **bounded_client_options(tls),
            **extra,
        )
        self._url, self._tls, self._extra, self._token = address.url, tls, extra, token
        self.http = bounded_client(
            base_url=address.url, timeout=timeout, verify=tls, headers=headers, **extra
        )

    def _breached(self, exc: BaseException, during: str) -> DaemonError | None:
        """The door's one line for an answer that broke a bound (slow, big, redirect)."""
        problem = boundary_problem(exc)
        if problem is None:
            return None
        return DaemonUnreachable(f"Ollama at {self.host} {problem.says} {during}")

    def _unreachable(self, exc: BaseException | None = None) -> DaemonError:
        problem = _tls_problem(exc) if exc is not None else None
        if problem is not None:
            fix = (
                "set SSL_CERT_FILE to the CA bundle that signed it"
                if "certificate" in problem.lower() or "issuer" in problem.lower()
                else "check its TLS setup"
            )
            return DaemonError(f"TLS with {self.host} failed: {problem}; {fix}")
        return NothingListens(
            f"cannot reach Ollama at {self.host}: start it (`ollama serve`) or "
            "point OLLAMA_HOST / --host at a running daemon"
        )

    def _refused_credentials(self, status: int) -> DaemonError:
        given = (
            "the user and password in the host URL"
            if "***@" in self.host
            else f"${TOKEN_VARIABLE}"
            if os.environ.get(TOKEN_VARIABLE)
            else "none were given"
        )
        return DaemonError(
            f"{self.host} refused the credentials (HTTP {status}; {given}): "
            "give the proxy's user and password as http(s)://USER:PASSWORD@"
            f"HOST:PORT, or a bearer token in ${TOKEN_VARIABLE}"
        )

    def _too_slow(self, during: str, seconds: float | None = None) -> DaemonError:
        """A timeout, connecting included: something listens, or the network is slow; the
        daemon is not known to be down, so 'start it' would be the wrong advice."""
        waited = self.timeout if seconds is None else seconds
        return DaemonUnreachable(
            f"Ollama at {self.host} did not answer within {waited:g} s {during}"
        )

    def _call(
        self, method: str, path: str, *, deadline: float | None = None, **kwargs: Any
    ) -> Answer:
        """One request and its whole answer within one deadline ($QWQ_OLLAMA_DEADLINE unless
        given): connect, headers and a body read chunk by chunk, so a daemon that trickles
        fails as one that is silent does; the decoded body is bounded too. A client made with
        a shorter timeout (`--version`'s 1 s probe) keeps it as the deadline."""
        seconds = min(network_deadline(), self.timeout) if deadline is None else deadline
        limit = Deadline(seconds)
        try:
            with self.http.stream(
                method,
                path,
                timeout=httpx.Timeout(seconds),
                extensions={DEADLINE_EXTENSION: seconds},
                **kwargs,
            ) as reply:
                body = read_bounded(reply.iter_bytes(), limit=MAX_ANSWER, deadline=limit)
                return Answer(reply.status_code, body, self.host, path)
        except (httpx.TimeoutException, TooSlow):
            raise self._too_slow(f"({method} {path})", seconds) from None
        except TooBig:
            raise DaemonError(
                f"{self.host} answered {method} {path} with more than "
                f"{MAX_ANSWER >> 20} MiB: not an Ollama daemon?"
            ) from None
        except httpx.DecodingError:
            raise DaemonError(
                f"{self.host} answered {method} {path} with a body that does not "
                "decode (its Content-Encoding lies)"
            ) from None
        except httpx.TransportError as exc:
            raise self._breached(exc, f"({method} {path})") or self._unreachable(exc) from None

    @contextmanager
    def _shape(self, what: str) -> Iterator[None]:
        """An answer our parsers cannot read is the daemon's fault: one line, not a traceback."""
        try:
            yield
        except _SHAPE_ERRORS as exc:
            raise DaemonError(
                f"{self.host} answered {what} in a shape Ollama does not use "
                f"({type(exc).__name__}: {one_line(str(exc), 80)})"
            ) from None

    def version(self) -> str:
        reply = self._call("GET", "/api/version")
        self._raise_for(reply, "read the daemon's version")
        try:
            return str(json.loads(reply.body)["version"])
        except (ValueError, KeyError, TypeError):
            raise DaemonError(
                f"{self.host} does not answer like Ollama (/api/version gave "
                f"{one_line(reply.text, 60)!r})"
            ) from None

    def supported_version(self) -> str:
        """The daemon's version, refusing one older than the oldest release we support."""
        version = self.version()
        if is_supported(version) is False:
            raise DaemonError(
                f"Ollama {version} at {self.host} is too old: this tool needs "
                f"Ollama {OLLAMA_MINIMUM} or newer"
            )
        return version

    def is_ready(self) -> bool:
        """Whether the daemon answers /api/version now (for one that was just started)."""
        try:
            return self._call("GET", "/api/version", deadline=2.0).status_code == 200
        except DaemonError:
            return False

    def show(self, model: str, *, verbose: bool = False) -> Shown | None:
        """The model as /api/show describes it, or None if it is not registered. `verbose`
        adds every tensor and the long metadata arrays."""
        body: dict[str, Any] = {"model": model} | ({"verbose": True} if verbose else {})
        reply = self._call("POST", "/api/show", json=body)
        if reply.status_code == 404:
            return None
        self._raise_for(reply, f"show {model}")
        with self._shape("/api/show"):
            return Shown.from_json(reply.json())

    def list_names(self) -> list[str]:
        return list(self.model_digests())

    def model_digests(self) -> dict[str, str]:
        """`{name:tag: manifest digest}` of every model the daemon lists."""
        reply = self._call("GET", "/api/tags")
        self._raise_for(reply, "list models")
        with self._shape("/api/tags"):
            return listed_digests(reply.json())

    def loaded_models(self) -> list[LoadedModel]:
        """GET /api/ps: the models in memory now, with their size, VRAM share and context."""
        reply = self._call("GET", "/api/ps")
        self._raise_for(reply, "list loaded models")
        with self._shape("/api/ps"):
            return [LoadedModel.from_json(m) for m in reply.json().get("models") or []]

    def has_blob(self, digest: str) -> bool:
        reply = self._call("HEAD", f"/api/blobs/{digest}")
        return reply.status_code == 200

    def push_blob(
        self, digest: str, path: Path, on_bytes: Callable[[int], None] | None = None
    ) -> None:
        """Upload a file under a digest computed once by us (the server re-checks it).

        `on_bytes(sent)` hears the bytes handed to the connection so far, block by block.
        """

        def chunks() -> Iterator[bytes]:
            sent = 0
            with open(path, "rb") as handle:
                while block := handle.read(1 << 22):
                    yield block
                    sent += len(block)
                    if on_bytes is not None:
                        on_bytes(sent)

        # an upload of 20 GB takes what it takes: bounded by silence (the client's timeout),
        # not by the deadline of one answer
        reply = self._call(
            "POST",
            f"/api/blobs/{digest}",
            content=chunks(),
            deadline=max(self.timeout, 7 * 86400.0),
        )
        self._raise_for(reply, f"upload {path.name}")

    @contextmanager
    def _client_errors(
        self, refused: str, during: str, missing: str | None = None
    ) -> Iterator[None]:
        """Turn the `ollama` client's and httpx's exceptions into one-line DaemonErrors.

        `missing`, if given, is the message for a 404 (the model named is not registered).
        """
        try:
            yield
        except ollama.ResponseError as exc:
            if missing is not None and exc.status_code == 404:
                raise DaemonError(missing) from None
            if exc.status_code in REFUSED_CREDENTIALS:
                raise self._refused_credentials(exc.status_code) from None
            raise RefusedError(
                f"{refused}: {one_line(str(exc.error))}", detail=one_line(str(exc.error), 2000)
            ) from None
        except httpx.TimeoutException as exc:
            raise self._breached(exc, during) or self._too_slow(during) from None
        except ConnectionError as exc:
            raise self._unreachable(exc) from None
        except httpx.TransportError as exc:
            if (breach := self._breached(exc, during)) is not None:
                raise breach from None
            raise DaemonUnreachable(
                f"lost the connection to Ollama at {self.host} {during} ({type(exc).__name__})"
            ) from None
        except _SHAPE_ERRORS as exc:  # an HTML page, a broken JSON line, a foreign shape
            raise DaemonError(
                f"{self.host} answered in a shape Ollama does not use {during} "
                f"({type(exc).__name__}: {one_line(str(exc), 80)})"
            ) from None

    def create(self, model: str, **fields: Any) -> Iterator[ProgressUpdate]:
        """Stream the server's status lines for one /api/create."""
        with self._client_errors(
            f"Ollama refused {model}", f"while creating {model}; run create again"
        ):
            parser = fields.pop("parser", None)
            if parser is None:
                updates = self.client.create(model=model, stream=True, **fields)
            else:
                # ollama-python's create() has no `parser` (0.6.3): the same request, the
                # client's own body and streaming, with the field /api/create reads added
                body = CreateRequest(model=model, stream=True, **fields).model_dump(
                    exclude_none=True
                )
                updates = self.client._request(
                    ProgressResponse,
                    "POST",
                    "/api/create",
                    json={**body, "parser": parser},
                    stream=True,
                )
            for update in updates:
                yield ProgressUpdate(update.status or "", update.total, update.completed)

    def copy(self, source: str, destination: str) -> None:
        """Another name for the same manifest (no blob is copied)."""
        with self._client_errors(f"Ollama refused to copy {source}", f"while copying {source}"):
            self.client.copy(source, destination)

    def delete(self, model: str) -> None:
        """Remove `model`; one that is not there is already gone."""
        try:
            self.client.delete(model)
        except ollama.ResponseError as exc:
            if exc.status_code in REFUSED_CREDENTIALS:
                raise self._refused_credentials(exc.status_code) from None
            if exc.status_code != 404:
                raise DaemonError(
                    f"Ollama could not delete {model}: {one_line(str(exc.error))}"
                ) from None
        except ConnectionError as exc:
            raise self._unreachable(exc) from None
        except httpx.TransportError as exc:
            during = f"while deleting {model}"
            raise self._breached(exc, during) or DaemonUnreachable(
                f"lost the connection to Ollama at {self.host} {during} ({type(exc).__name__})"
            ) from None

    def render_prompt(
        self,
        model: str,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        *,
        think: ThinkValue | None = None,
    ) -> str:
        """The prompt the daemon would send to the model (`_debug_render_only`)."""
        body: dict[str, Any] = {
            "model": model,
            "messages": as_ollama_messages(messages),
            "stream": False,
            "_debug_render_only": True,
        }
        if tools:
            body["tools"] = tools
        if think is not None:
            body["think"] = think
        reply = self._call("POST", "/api/chat", json=body)
        self._raise_for(reply, f"render a prompt with {model}")
        with self._shape("/api/chat with _debug_render_only (Ollama 0.6 or newer has it)"):
            return str(reply.json()["_debug_info"]["rendered_template"])

    def chat_stream(
        self,
        model: str,
        messages: list[dict[str, Any]],
        *,
        options: dict[str, Any] | None = None,
        think: bool | None = None,
    ) -> Iterator[ollama.ChatResponse]:
        """Stream one chat (a ChatEngine, as checks/engines.py opens it).

        Two bounds, as a chat needs: the first byte may take the client's `timeout` (the daemon
        loads the model before it answers), and after it the daemon may fall silent for at
        most $QWQ_OLLAMA_DEADLINE seconds between two updates; a long answer that keeps
        coming is never cut. The request is the `ollama` client's own ChatRequest, sent here
        because that client has one timeout for both.
        """
        from ollama._types import ChatRequest

        silence = network_deadline()
        body = ChatRequest(
            model=model, messages=messages, stream=True, options=options, think=think
        ).model_dump(exclude_none=True)
        first_byte = httpx.Timeout(self.timeout, connect=min(self.timeout, silence))
        during = f"during a chat with {model}"
        waited = self.timeout
        try:
            with self.http.stream(
                "POST",
                "/api/chat",
                json=body,
                timeout=first_byte,
                extensions={DEADLINE_EXTENSION: self.timeout},
            ) as reply:
                if reply.status_code >= 400:
                    text = read_bounded(
                        reply.iter_bytes(), limit=MAX_ANSWER, deadline=Deadline(silence)
                    )
                    raise self._chat_refused(reply.status_code, _error_text(text), model)
                # httpcore reads the read timeout when the body starts: from here on, silence
                reply.request.extensions["timeout"]["read"] = waited = silence
                for line in _lines(reply.iter_bytes(), MAX_CHAT_LINE):
                    with self._shape("/api/chat"):
                        part = json.loads(line)
                        if isinstance(part, dict) and part.get("error"):
                            raise RefusedError(
                                f"Ollama refused a chat with {model}: "
                                f"{one_line(str(part['error']))}",
                                detail=str(part["error"]),
                            )
                        update = ollama.ChatResponse.model_validate(part)
                    yield update
        except httpx.TimeoutException:
            what = "before its first byte" if waited == self.timeout else "(silent since)"
            raise self._too_slow(f"{during} {what}", waited) from None
        except TooBig:
            raise DaemonError(
                f"{self.host} sent a chat line of more than {MAX_CHAT_LINE >> 20} MiB {during}"
            ) from None
        except httpx.DecodingError:
            raise DaemonError(f"{self.host} sent a chat that does not decode {during}") from None
        except ConnectionError as exc:
            raise self._unreachable(exc) from None
        except httpx.TransportError as exc:
            if (breach := self._breached(exc, during)) is not None:
                raise breach from None
            if isinstance(exc, httpx.ConnectError):
                raise self._unreachable(exc) from None
            raise DaemonUnreachable(
                f"lost the connection to Ollama at {self.host} {during} ({type(exc).__name__})"
            ) from None

    def _chat_refused(self, status: int, detail: str, model: str) -> DaemonError:
        if status == 404:
            return DaemonError(
                f"model {model} is not registered at {self.host}: run `qwq-ollama create {model}`"
            )
        if status in REFUSED_CREDENTIALS:
            return self._refused_credentials(status)
        return RefusedError(
            f"Ollama refused a chat with {model}: {one_line(detail)} (HTTP {status})",
            detail=one_line(detail, 2000),
        )

    def chat_once(
        self,
        model: str,
        messages: list[dict[str, Any]],
        *,
        options: dict[str, Any] | None = None,
        think: ThinkValue | None = None,
    ) -> ollama.ChatResponse:
        """One chat, not streamed: the whole answer in one reply."""
        kwargs: dict[str, Any] = {} if options is None else {"options": options}
        if think is not None:
            kwargs["think"] = think
        with self._client_errors(
            f"Ollama refused a chat with {model}",
            f"during a chat with {model}",
            missing=f"model {model} is not registered at {self.host}",
        ):
            return self.client.chat(model=model, messages=messages, stream=False, **kwargs)

    def generate_raw(
        self,
        model: str,
        prompt: str,
        *,
        options: dict[str, Any] | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> RawReply:
        """Continue `prompt` exactly as given (`raw`: no template, no think parsing), streamed:
        how a capped reasoning goes on to its answer in the same context."""
        kwargs: dict[str, Any] = {} if options is None else {"options": options}
        text, done_reason, evals = "", None, 0
        with self._client_errors(
            f"Ollama refused a raw generate with {model}",
            f"during a raw generate with {model}",
            missing=f"model {model} is not registered at {self.host}",
        ):
            # think=False: no think-tag parser on a text that already closed the reasoning.
            for part in self.client.generate(
                model=model, prompt=prompt, raw=True, stream=True, think=False, **kwargs
            ):
                text += part.response or ""
                if on_text is not None and part.response:
                    on_text(part.response)
                if part.done:
                    done_reason, evals = part.done_reason, part.eval_count or 0
        return RawReply(text, done_reason, evals)

    def openai_chat(
        self,
        model: str,
        messages: list[dict[str, Any]],
        *,
        reasoning_effort: str | None = None,
        seed: int | None = None,
        max_tokens: int | None = None,
        stream: bool = False,
    ) -> OpenAIReply:
        """One chat through Ollama's OpenAI-compatible /v1/chat/completions, with the official
        `openai` package: what editors, agents and OpenAI-SDK apps see."""
        import openai  # a third of a second to import: only the commands that use it pay
        from openai.types.chat import ChatCompletionMessageParam
        from openai.types.shared import ReasoningEffort

        client = openai.OpenAI(
            base_url=f"{self._url.rstrip('/')}/v1",
            api_key=self._token or "ollama",
            timeout=self.timeout,
            max_retries=0,
            http_client=bounded_client(verify=self._tls, **self._extra),
        )
        sent: list[ChatCompletionMessageParam] = cast("list[ChatCompletionMessageParam]", messages)
        effort = cast("ReasoningEffort", reasoning_effort)
        try:
            with client:
                if not stream:
                    reply = client.chat.completions.create(
                        model=model,
                        messages=sent,
                        stream=False,
                        reasoning_effort=openai.omit if effort is None else effort,
                        seed=openai.omit if seed is None else seed,
                        max_tokens=openai.omit if max_tokens is None else max_tokens,
                    )
                    with self._shape("/v1/chat/completions"):
                        choice = reply.choices[0]
                        return OpenAIReply(
                            str(getattr(choice.message, "reasoning", None) or ""),
                            choice.message.content or "",
                            choice.finish_reason,
                        )
                reasoning, content, finish = "", "", None
                for chunk in client.chat.completions.create(
                    model=model,
                    messages=sent,
                    stream=True,
                    reasoning_effort=openai.omit if effort is None else effort,
                    seed=openai.omit if seed is None else seed,
                    max_tokens=openai.omit if max_tokens is None else max_tokens,
                ):
                    with self._shape("/v1/chat/completions"):
                        for delta_choice in chunk.choices:
                            delta = delta_choice.delta
                            reasoning += str(getattr(delta, "reasoning", None) or "")
                            content += delta.content or ""
                            finish = delta_choice.finish_reason or finish
                return OpenAIReply(reasoning, content, finish)
        except openai.APITimeoutError as exc:
            during = f"during a /v1 chat with {model}"
            raise self._breached(exc, during) or self._too_slow(during) from None
        except openai.APIConnectionError as exc:
            during = f"during a /v1 chat with {model}"
            raise self._breached(exc, during) or self._unreachable(exc) from None
        except httpx.TransportError as exc:  # a stream's body breaks a bound as it is read
            during = f"during a /v1 chat with {model}"
            raise self._breached(exc, during) or self._unreachable(exc) from None
        except openai.APIStatusError as exc:
            if exc.status_code in REFUSED_CREDENTIALS:
                raise self._refused_credentials(exc.status_code) from None
            detail = _openai_error_text(exc)
            raise RefusedError(
                f"Ollama refused a /v1 chat with {model}: {detail}", detail=detail
            ) from None

    def _raise_for(self, reply: Answer, what: str) -> None:
        if reply.status_code < 400:
            return
        if reply.status_code in REFUSED_CREDENTIALS:
            raise self._refused_credentials(reply.status_code)
        detail = one_line(_error_text(reply.body))
        if reply.status_code == 404 and "not found" in str(detail):
            raise DaemonError(f"cannot {what}: {detail} (run `qwq-ollama create` first?)")
        message = f"cannot {what}: {detail} (HTTP {reply.status_code})"
        if reply.status_code < 500:  # the daemon understood, and said no
            raise RefusedError(message, detail=str(detail))
        raise DaemonError(message)

    def close(self) -> None:
        self.http.close()
        self.client.close()  # type: ignore[no-untyped-call]  # ollama leaves it unannotated


def _error_text(body: bytes) -> str:
    """The daemon's `{"error": ...}` text, or the body itself when it is not that."""
    text = body.decode("utf-8", "replace")
    try:
        found = json.loads(text)
    except ValueError:
        return text
    return str(found["error"]) if isinstance(found, dict) and "error" in found else text


def _lines(chunks: Iterator[bytes], limit: int) -> Iterator[bytes]:
    """The non-blank lines of a streamed body; a line longer than `limit` bytes is TooBig."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *whole, pending = pending.split(b"\n")
        for line in whole:
            if line.strip():
                yield line
        if len(pending) > limit:
            raise TooBig(f"a line of more than {limit} bytes")
    if pending.strip():
        yield pending


def _openai_error_text(exc: Any) -> str:
    """The daemon's own words from an OpenAI-style error body ({"error": {"message": ...}})."""
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(error, str):
            return error
    return str(exc.message)
