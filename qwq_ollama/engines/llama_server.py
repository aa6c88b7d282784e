"""The one place that talks to llama.cpp's `llama-server`, and that starts a private one.

A variant runs on llama.cpp through the command `qwq-ollama export llama-cpp VARIANT --binary
llama-server` prints: its sampling values become the server's defaults, its chat template is the
file `render` writes. This client asks such a server what it runs with (/props, /v1/models), which
prompt it builds (/apply-template) and streams chats (/v1/chat/completions, the reasoning apart in
`reasoning_content`). It answers as OllamaAPI does (`render_prompt`, `chat_stream` yielding parts
shaped like the `ollama` client's), so the same checks run on both engines.

A private server runs here with its own process group, log and environment (LlamaServer);
which binary and which command a catalog variant gets is variant_server.py's business.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from qwq_ollama.daemon.transport import boundary_problem, bounded_client
from qwq_ollama.engines.private_process import PrivateProcess
from qwq_ollama.errors import (
    DaemonError,
    DaemonUnreachable,
    InputError,
    RefusedError,
)
from qwq_ollama.redaction import SecretURL, redact

# Ollama's request options and the /v1/chat/completions fields llama-server reads for them.
OPTION_FIELDS = {
    "num_predict": "max_tokens",
    "seed": "seed",
    "temperature": "temperature",
    "top_k": "top_k",
    "top_p": "top_p",
    "min_p": "min_p",
    "typical_p": "typical_p",
    "repeat_penalty": "repeat_penalty",
    "repeat_last_n": "repeat_last_n",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "stop": "stop",
}


def server_url(value: str) -> str:
    """`host:port` or `http(s)://host:port[/prefix]` as a base URL; InputError for anything else."""
    text = value.strip()
    text = text if "://" in text else "http://" + text
    parts = urlsplit(text)
    try:
        _ = parts.port  # ValueError for a port that is not one
        valid = (
            parts.scheme in ("http", "https")
            and bool(parts.hostname)
            and not any(c.isspace() for c in text)
        )
    except ValueError:
        valid = False
    if not valid:
        raise InputError(
            f"not a llama-server address: {redact(value)!r} (e.g. http://127.0.0.1:8080)",
            field="--llama-server",
        )
    return text.rstrip("/")


def check_server_choice(
    url: str | None, gguf: Path | None, variants: list[str] | None = None
) -> None:
    """Exactly one of a running server and a GGUF to start one over, said before any work;
    a running server runs one variant, which must then be named."""
    if (url is None) == (gguf is None):
        raise InputError(
            "the llama-cpp engine needs either --llama-server URL (a running "
            "llama-server) or --gguf PATH (a private one is started over it)",
            field="--llama-server",
        )
    if url is not None:
        server_url(url)
        if variants is not None and len(variants) != 1:
            raise InputError(
                "a running llama-server runs one variant: name exactly that one",
                field="--llama-server",
            )
    elif _looks_like_url(str(gguf)):
        # a Path keeps `https:/`: shown whole again, and without its secrets
        shown = redact(re.sub(r"^([A-Za-z][\w+.-]*):/+", r"\1://", str(gguf)))
        raise InputError(
            f"{shown!r} is a URL: --gguf takes a local GGUF file (download it first)",
            field="--gguf",
        )
    elif not Path(gguf).is_file():  # type: ignore[arg-type]
        raise InputError("no such GGUF file", file=gguf, field="--gguf")


def _looks_like_url(text: str) -> bool:
    return re.match(r"^[A-Za-z][\w+.-]*:/", text) is not None


def openai_message(message: dict[str, Any]) -> dict[str, Any]:
    """A message in Ollama's shape as llama-server's OpenAI-style API reads it: reasoning in
    `reasoning_content`, tool results named by `name`, tool calls typed, with JSON-text arguments
    (llama-server refuses a call without `type`; it parses the arguments back for the template).
    """
    out = {k: v for k, v in message.items() if k not in ("thinking", "tool_name", "tool_calls")}
    if "thinking" in message:
        out["reasoning_content"] = message["thinking"]
    if "tool_name" in message:
        out["name"] = message["tool_name"]
    if message.get("tool_calls"):
        out["tool_calls"] = [
            {
                **({"id": call["id"]} if "id" in call else {}),
                "type": "function",
                "function": {
                    "name": call["function"]["name"],
                    # JSON text already (an OpenAI client's) goes as it is, not quoted once more.
                    "arguments": call["function"]["arguments"]
                    if isinstance(call["function"]["arguments"], str)
                    else json.dumps(call["function"]["arguments"], ensure_ascii=False),
                },
            }
            for call in message["tool_calls"]
        ]
    return out


def request_fields(options: dict[str, Any] | None) -> dict[str, Any]:
    """Ollama-style `options` as /v1/chat/completions fields; InputError for one it lacks."""
    fields = {}
    for name, value in (options or {}).items():
        if name not in OPTION_FIELDS:
            raise InputError(
                f"option {name!r} has no llama-server counterpart (known: "
                f"{', '.join(OPTION_FIELDS)})",
                field="options",
            )
        fields[OPTION_FIELDS[name]] = value
    return fields


@dataclass(frozen=True)
class StreamedMessage:
    thinking: str = ""
    content: str = ""


@dataclass(frozen=True)
class StreamedPart:
    """One streamed chunk, shaped like the `ollama` client's ChatResponse (generation.run_chat
    reads both): text deltas, and on the last one why it ended and the decode timings."""

    message: StreamedMessage = field(default_factory=StreamedMessage)
    done: bool = False
    done_reason: str | None = None
    eval_count: int | None = None
    eval_duration: int | None = None  # nanoseconds, as Ollama reports it


def streamed_part(chunk: dict[str, Any]) -> StreamedPart | None:
    """A /v1/chat/completions stream chunk as a part; None for one that carries nothing."""
    choices = chunk.get("choices") or []
    if not choices:
        return None
    delta = choices[0].get("delta") or {}
    reason = choices[0].get("finish_reason")
    timings = chunk.get("timings") or {}
    message = StreamedMessage(delta.get("reasoning_content") or "", delta.get("content") or "")
    if reason is None:
        return StreamedPart(message) if message.thinking or message.content else None
    count = timings.get("predicted_n")
    # The first token comes out of the prompt pass: with one token, no decode time was measured
    # (llama.cpp then reports 0.001 ms, a million tokens/s).
    timed = count is not None and count > 1 and "predicted_ms" in timings
    return StreamedPart(
        message, True, str(reason), count, int(timings["predicted_ms"] * 1e6) if timed else None
    )


@dataclass(frozen=True)
class Props:
    """llama-server's GET /props, the only reading of it: what a request that sets nothing gets.

    >>> props = Props.from_json({"chat_template": "{{ x }}", "build_info": "b10488-abc",
    ...     "default_generation_settings": {"n_ctx": 8192, "params": {"top_k": 40}}})
    >>> props.chat_template, props.n_ctx, props.sampling, props.build
    ('{{ x }}', 8192, {'top_k': 40}, 'b10488')
    """

    chat_template: str | None = None
    sampling: dict[str, Any] = field(default_factory=dict)  # default_generation_settings.params
    n_ctx: int | None = None  # the slots' context
    build_info: str = "unknown"  # `b10488-<commit>`

    @classmethod
    def from_json(cls, answer: Mapping[str, Any]) -> Props:
        defaults = answer.get("default_generation_settings")
        defaults = defaults if isinstance(defaults, Mapping) else {}
        params = defaults.get("params")
        template = answer.get("chat_template")
        return cls(
            chat_template=template if isinstance(template, str) else None,
            sampling=dict(params) if isinstance(params, Mapping) else {},
            n_ctx=_int_or_none(defaults.get("n_ctx")),
            build_info=str(answer.get("build_info") or "unknown"),
        )

    @property
    def build(self) -> str:
        """llama.cpp's build, e.g. `b10488`."""
        return self.build_info.split("-", 1)[0]


@dataclass(frozen=True)
class ServedModel:
    """One model of llama-server's GET /v1/models.

    >>> ServedModel.from_json({"id": "m.gguf", "meta": {"n_ctx_train": 8192}})
    ServedModel(id='m.gguf', n_ctx_train=8192)
    """

    id: str
    n_ctx_train: int | None = None  # the model's training context, which caps the slots'

    @classmethod
    def from_json(cls, answer: Mapping[str, Any]) -> ServedModel:
        meta = answer.get("meta")
        trained = meta.get("n_ctx_train") if isinstance(meta, Mapping) else None
        return cls(str(answer.get("id") or "?"), _int_or_none(trained))


def _int_or_none(value: object) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


class LlamaServerAPI:
    """A llama-server at `host` (a base URL)."""

    def __init__(self, host: str, timeout: float = 600.0) -> None:
        url = SecretURL(server_url(host))
        self.host = str(url)  # what every message shows: no password, no query token
        self.timeout = timeout
        base, auth, params = url.parts()
        self.http = bounded_client(base_url=base, timeout=timeout, auth=auth, params=params)

    def _unreachable(self) -> DaemonError:
        return DaemonUnreachable(
            f"cannot reach llama-server at {self.host}: start it (the command "
            "`qwq-ollama export llama-cpp VARIANT --binary llama-server` prints) "
            "or pass --llama-server URL of a running one"
        )

    def _breached(self, exc: BaseException) -> DaemonError | None:
        """The door's one line for an answer that broke a bound (slow, big, redirect)."""
        problem = boundary_problem(exc)
        return (
            None
            if problem is None
            else DaemonUnreachable(f"llama-server at {self.host} {problem.says}")
        )

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            reply = self.http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise DaemonUnreachable(
                f"llama-server at {self.host} did not answer within "
                f"{self.timeout:g} s ({method} {path})"
            ) from None
        except httpx.TransportError as exc:
            raise self._breached(exc) or self._unreachable() from None
        self._raise_for(reply, f"{method} {path}")
        return reply

    def _raise_for(self, reply: httpx.Response, what: str) -> None:
        """An answer with an error: refused (the server read the request and said no: a bad
        message, a template error, 4xx or 500 alike), or not ready (503 while loading)."""
        if reply.status_code < 400:
            return
        try:
            error = reply.json().get("error") or {}
            detail = str(error.get("message", error) if isinstance(error, dict) else error)
        except (ValueError, AttributeError):
            detail = reply.text[:200]
        message = f"llama-server at {self.host} refused {what}: {detail} (HTTP {reply.status_code})"
        if reply.status_code == 503:
            raise DaemonError(message)
        raise RefusedError(message, detail=detail)

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        reply = self._call(method, path, **kwargs)
        try:
            return dict(reply.json())
        except (ValueError, TypeError):
            raise DaemonError(
                f"{self.host} does not answer like llama-server ({path} gave {reply.text[:60]!r})"
            ) from None

    def props(self) -> Props:
        """GET /props: the default sampling, the slot context, the chat template, the build."""
        return Props.from_json(self._json("GET", "/props"))

    def version(self) -> str:
        """llama.cpp's build, e.g. `b10488`."""
        return self.props().build

    def models(self) -> tuple[ServedModel, ...]:
        """GET /v1/models: what the server runs (one model)."""
        listed = self._json("GET", "/v1/models").get("data")
        return tuple(ServedModel.from_json(m) for m in listed or () if isinstance(m, Mapping))

    def trained_context(self) -> int | None:
        """The model's training context, which caps the slots'."""
        models = self.models()
        return models[0].n_ctx_train if models else None

    def busy_slots(self) -> int:
        """How many slots are generating now (GET /slots): 0 once an abandoned chat is
        cancelled."""
        reply = self._call("GET", "/slots")
        return sum(1 for slot in reply.json() if slot.get("is_processing"))

    def is_ready(self) -> bool:
        """Whether /health says the model is loaded (200; 503 while loading)."""
        try:
            return self.http.get("/health", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def render_prompt(
        self, model: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
    ) -> str:
        """The prompt the server builds with its chat template (/apply-template). `model` is
        unused: a llama-server serves one."""
        body: dict[str, Any] = {"messages": [openai_message(m) for m in messages]}
        if tools:
            body["tools"] = tools
        return str(self._json("POST", "/apply-template", json=body)["prompt"])

    def chat_stream(
        self,
        model: str,
        messages: list[dict[str, Any]],
        *,
        options: dict[str, Any] | None = None,
        think: bool | None = None,
    ) -> Iterator[StreamedPart]:
        """Stream one chat; closing the generator drops the connection, and llama-server
        cancels the request. `think` is not sent: the chat template decides, as on Ollama."""
        body = {
            "messages": [openai_message(m) for m in messages],
            "stream": True,
            **request_fields(options),
        }
        try:
            with self.http.stream("POST", "/v1/chat/completions", json=body) as reply:
                if reply.status_code >= 400:
                    reply.read()
                    self._raise_for(reply, "a chat")
                yield from _parts(reply.iter_lines())
        except httpx.TimeoutException:
            raise DaemonUnreachable(
                f"llama-server at {self.host} did not answer within "
                f"{self.timeout:g} s during a chat"
            ) from None
        except httpx.TransportError as exc:
            raise self._breached(exc) or self._unreachable() from None

    def close(self) -> None:
        self.http.close()


def _parts(lines: Iterator[str]) -> Iterator[StreamedPart]:
    """Server-sent events (`data: {...}` lines, `data: [DONE]` last) as parts."""
    for line in lines:
        if not line.startswith("data: "):
            continue
        payload = line[len("data: ") :]
        if payload.strip() == "[DONE]":
            return
        chunk = json.loads(payload)
        if "error" in chunk:
            error = chunk["error"]
            detail = str(error.get("message", error) if isinstance(error, dict) else error)
            raise RefusedError(f"llama-server stopped a chat: {detail}", detail=detail)
        part = streamed_part(chunk)
        if part is not None:
            yield part


class LlamaServer(PrivateProcess):
    """A private llama-server: `argv` (the exported command) run in its own process group, with
    a log, no user config (its own XDG_CONFIG_HOME, no LLAMA_ARG_* variables) and no secrets;
    `url` is where `argv` makes it listen. `with LlamaServer(...) as s:` then use `s.api`."""

    label = "llama-server"
    api: LlamaServerAPI

    def __init__(
        self,
        argv: list[str],
        url: str,
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        startup_timeout: float = 300.0,
        timeout: float = 600.0,
    ) -> None:
        super().__init__(
            state_dir=None,
            log_name="server.log",
            prefix="qwq-ollama-llama-",
            startup_timeout=startup_timeout,
        )
        self.argv = list(argv)
        self.api = LlamaServerAPI(url, timeout)
        self.extra_env = dict(env or {})
        self.cwd = cwd

    def _environment(self) -> dict[str, str]:
        inherited = {
            k: v for k, v in self.inherited_environment().items() if not k.startswith("LLAMA_ARG_")
        }
        return {**inherited, "XDG_CONFIG_HOME": str(self.state_dir / "config"), **self.extra_env}

    def start(self) -> LlamaServer:
        self._launch(self.argv, self._environment(), self.cwd)
        return self
