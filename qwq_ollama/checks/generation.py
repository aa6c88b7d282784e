"""Streamed chats through the daemon, thinking and answer kept apart, a loop detector watching."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from qwq_ollama.server.client import OllamaAPI

Sink = Callable[[str], None]


@dataclass
class ChatResult:
    thinking: str = ""
    content: str = ""
    done: bool = False
    done_reason: str | None = None
    chunks: list[tuple[str, str]] = field(default_factory=list)  # ("thinking"|"content", text)
    eval_count: int = 0
    eval_seconds: float = 0.0
    stopped_early: str | None = None
    first_token_seconds: float | None = None

    @property
    def tokens_per_second(self) -> float:
        return self.eval_count / self.eval_seconds if self.eval_seconds else 0.0


def run_chat(api: OllamaAPI, model: str, messages: list[dict[str, Any]], *,
             options: dict[str, Any] | None = None, think: bool | None = None,
             on_thinking: Sink | None = None, on_content: Sink | None = None,
             should_stop: Callable[[ChatResult], str | None] | None = None) -> ChatResult:
    """Stream a reply; `should_stop` may end the request early (e.g. a loop was detected)."""
    result = ChatResult()
    kwargs: dict[str, Any] = {}
    if options:
        kwargs["options"] = options
    if think is not None:
        kwargs["think"] = think
    started = time.monotonic()
    stream = api.chat_stream(model, messages, **kwargs)
    try:
        for part in stream:
            message = part.message
            if result.first_token_seconds is None and (message.thinking or message.content):
                result.first_token_seconds = time.monotonic() - started
            if message.thinking:
                result.thinking += message.thinking
                result.chunks.append(("thinking", message.thinking))
                if on_thinking:
                    on_thinking(message.thinking)
            if message.content:
                result.content += message.content
                result.chunks.append(("content", message.content))
                if on_content:
                    on_content(message.content)
            if part.done:
                result.done = True
                result.done_reason = part.done_reason
                result.eval_count = part.eval_count or 0
                result.eval_seconds = (part.eval_duration or 0) / 1e9
            elif should_stop is not None:
                reason = should_stop(result)
                if reason:
                    result.stopped_early = reason
                    break
    finally:
        close = getattr(stream, "close", None)
        if close:
            close()  # closing the generator drops the HTTP stream; Ollama cancels the request
    return result


def generate_watched(api: OllamaAPI, variant: str, text: str, *, options: dict[str, Any]
                     ) -> tuple[ChatResult, Any]:
    """Stream one answer with the loop detector watching; returns the result and any verdict."""
    from qwq_ollama.checks.loops import LoopDetector

    detector = LoopDetector()
    verdicts: list[Any] = []

    def watch(result: ChatResult) -> str | None:
        verdict = detector.feed(result.chunks[-1][1]) if result.chunks else None
        if verdict is not None:
            verdicts.append(verdict)
            return str(verdict.reason)
        return None

    result = run_chat(api, variant, [{"role": "user", "content": text}], options=options,
                      should_stop=watch)
    return result, (verdicts[0] if verdicts else None)
