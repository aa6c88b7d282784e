"""What a check needs of an engine that chats: an Ollama daemon (`OllamaAPI`) or a llama-server
(`LlamaServerAPI`) both satisfy `ChatEngine`, so prompt, generation and A/B checks run on
either through one typed door, never an `Any`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol


class StreamedText(Protocol):
    """A chunk's text deltas (ollama's Message; llama_server.StreamedMessage)."""

    @property
    def thinking(self) -> str | None: ...

    @property
    def content(self) -> str | None: ...


class StreamPart(Protocol):
    """One streamed chunk: its text, and on the last one why it ended and the decode timings
    (ollama's ChatResponse; llama_server.StreamedPart)."""

    @property
    def message(self) -> StreamedText: ...

    @property
    def done(self) -> bool | None: ...

    @property
    def done_reason(self) -> str | None: ...

    @property
    def eval_count(self) -> int | None: ...

    @property
    def eval_duration(self) -> int | None: ...


class ChatEngine(Protocol):
    """An engine serving `model` (a llama-server serves one and ignores the name)."""

    host: str

    def version(self) -> str: ...

    def render_prompt(
        self, model: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
    ) -> str: ...

    def chat_stream(
        self,
        model: str,
        messages: list[dict[str, Any]],
        *,
        options: dict[str, Any] | None = None,
        think: bool | None = None,
    ) -> Iterator[StreamPart]: ...
