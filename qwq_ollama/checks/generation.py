"""Streamed chats through the daemon, thinking and answer kept apart, a loop detector watching."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from qwq_ollama.daemon.chat_engine import ChatEngine, StreamPart
from qwq_ollama.errors import RefusedError
from qwq_ollama.facts import TOKEN_REPEAT_ERROR

Sink = Callable[[str], None]
# done_reason when the daemon ended the stream with its token-repeat guard (v0.34+): a loop.
REPEAT_LIMIT = "repeat_limit"
# The guard counts chunks whose trimmed text equals the one before (llm/llama_server.go): from
# v0.34 it errors after 100; earlier releases end the stream after 30, with no final chunk.
REPEAT_LIMIT_CHUNKS = 100
SILENT_REPEAT_LIMIT_CHUNKS = 30


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


def run_chat(
    api: ChatEngine,
    model: str,
    messages: list[dict[str, Any]],
    *,
    options: dict[str, Any] | None = None,
    think: bool | None = None,
    on_thinking: Sink | None = None,
    on_content: Sink | None = None,
    should_stop: Callable[[ChatResult], str | None] | None = None,
) -> ChatResult:
    """Stream a reply; `should_stop` may end the request early (e.g. a loop was detected)."""
    result = ChatResult()
    started = time.monotonic()
    stream = api.chat_stream(model, messages, options=options or None, think=think)
    try:
        _consume(stream, result, started, on_thinking, on_content, should_stop)
    except RefusedError as exc:
        if TOKEN_REPEAT_ERROR not in exc.detail:
            raise
        # Ollama v0.34+ ends a run of identical chunks with an error, not a done chunk: the
        # output so far stands, and the run ended in a loop.
        result.done = True
        result.done_reason = REPEAT_LIMIT
        result.stopped_early = f"the daemon's token-repeat guard: {exc.detail}"
    finally:
        close = getattr(stream, "close", None)
        if close:
            close()  # closing the generator drops the HTTP stream; Ollama cancels the request
    if not result.done and result.stopped_early is None and _ends_in_repeats(result):
        result.done = True
        result.done_reason = REPEAT_LIMIT
        result.stopped_early = (
            "the daemon's token-repeat guard ended the stream without a "
            f"final chunk after {SILENT_REPEAT_LIMIT_CHUNKS} identical chunks"
        )
    return result


def _ends_in_repeats(result: ChatResult) -> bool:
    """Whether a stream that stopped without its final chunk ends in the run of identical
    chunks that makes Ollama before 0.34 cut it silently. A stream with no chunk at all counts
    too: a thinking model's daemon holds back blank output until it knows whether a think tag
    opens it, so a run of blank tokens never reaches the client before the cut."""
    if not result.chunks:
        return True
    tail = [text.strip() for _, text in result.chunks[-SILENT_REPEAT_LIMIT_CHUNKS:]]
    return len(tail) == SILENT_REPEAT_LIMIT_CHUNKS and len(set(tail)) == 1


def _consume(
    stream: Iterator[StreamPart],
    result: ChatResult,
    started: float,
    on_thinking: Sink | None,
    on_content: Sink | None,
    should_stop: Callable[[ChatResult], str | None] | None,
) -> None:
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


class LoopWatch:
    """The loop detector watching one stream: `should_stop` for run_chat, then `verdict`, the
    detector's, else the daemon's own repeat cut, else None."""

    def __init__(self) -> None:
        from qwq_ollama.checks.loops import LoopDetector

        self._detector = LoopDetector()
        self._verdicts: list[Any] = []

    def should_stop(self, result: ChatResult) -> str | None:
        verdict = self._detector.feed(result.chunks[-1][1]) if result.chunks else None
        if verdict is None:
            return None
        self._verdicts.append(verdict)
        return str(verdict.reason)

    def verdict(self, result: ChatResult) -> Any:
        if not self._verdicts and result.done_reason == REPEAT_LIMIT:
            self._verdicts.append(repeat_limit_verdict(result))
        return self._verdicts[0] if self._verdicts else None


def generate_watched(
    api: ChatEngine, variant: str, text: str, *, options: dict[str, Any]
) -> tuple[ChatResult, Any]:
    """Stream one answer with the loop detector watching; returns the result and any verdict."""
    watch = LoopWatch()
    result = run_chat(
        api,
        variant,
        [{"role": "user", "content": text}],
        options=options,
        should_stop=watch.should_stop,
    )
    return result, watch.verdict(result)


def repeat_limit_verdict(result: ChatResult) -> Any:
    """The loop the daemon's guard cut: its last chunks, as the detector would describe it."""
    from qwq_ollama.checks.loops import LoopVerdict, detect_loop_in_text

    found = detect_loop_in_text("".join(text for _, text in result.chunks))
    if found is not None:
        return found
    chunks = [text for _, text in result.chunks]
    start = max(0, len(chunks) - REPEAT_LIMIT_CHUNKS)
    last = chunks[-1] if chunks else ""
    return LoopVerdict(
        "repeat_limit",
        len(last),
        len(chunks) - start,
        sum(len(c) for c in chunks[:start]),
        start,
        len(chunks),
        last[:40],
        f"the daemon cut {REPEAT_LIMIT_CHUNKS} identical chunks ({last.strip()!r} or blank)",
    )
