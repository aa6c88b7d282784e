"""Bounds on everything read from a machine the user does not control: how long an answer may
take as a whole (not only between two bytes: a server that trickles one byte a second never
trips a per-read timeout), how big a decoded body may grow, how long an error text may be.

Below every layer: the daemon client (daemon/client.py) and the GGUF header reader
(artifacts/gguf_header.py) both read their answers through `read_bounded`, each with its own
HTTP stack underneath; this module knows none of them.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable

from qwq_ollama.errors import InputError

DEADLINE_VARIABLE = "QWQ_OLLAMA_DEADLINE"
DEFAULT_DEADLINE = 120.0  # seconds for one whole answer: connect, headers and body
MAX_DEADLINE = 86400.0
ERROR_TEXT = 200  # characters of a server's error text a message shows


def network_deadline() -> float:
    """Seconds one network answer may take in all ($QWQ_OLLAMA_DEADLINE, default 120).

    >>> os.environ[DEADLINE_VARIABLE] = "1e309"
    >>> network_deadline()
    Traceback (most recent call last):
    qwq_ollama.errors.InputError: QWQ_OLLAMA_DEADLINE: '1e309' is not a number of seconds in (0, 86400]
    >>> del os.environ[DEADLINE_VARIABLE]
    >>> network_deadline()
    120.0
    """
    text = os.environ.get(DEADLINE_VARIABLE, "").strip()
    if not text:
        return DEFAULT_DEADLINE
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and 0 < seconds <= MAX_DEADLINE):
        raise InputError(
            f"{text[:40]!r} is not a number of seconds in (0, {MAX_DEADLINE:g}]",
            field=DEADLINE_VARIABLE,
        )
    return seconds


class Deadline:
    """A moment after which the answer is too late; `left()` is what a blocking read may wait."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ends = time.monotonic() + seconds

    def left(self) -> float:
        return max(0.0, self.ends - time.monotonic())

    @property
    def passed(self) -> bool:
        return time.monotonic() >= self.ends


class TooSlow(Exception):
    """The whole answer did not arrive within its deadline (raised by `read_bounded`)."""


class TooBig(Exception):
    """The (decoded) answer grew past its bound (raised by `read_bounded`)."""


def read_bounded(
    chunks: Iterable[bytes],
    *,
    limit: int,
    deadline: Deadline,
    on_chunk: Callable[[int], None] | None = None,
) -> bytes:
    """The bytes of `chunks` (a body as it is decoded), refused once they pass `limit` bytes or
    the deadline passes, whichever comes first. `on_chunk(total)` hears the running total."""
    parts: list[bytes] = []
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise TooBig(f"more than {limit} bytes")
        parts.append(chunk)
        if on_chunk is not None:
            on_chunk(total)
        if deadline.passed:
            raise TooSlow(f"not whole after {deadline.seconds:g} s ({total} bytes came)")
    return b"".join(parts)


def one_line(text: str, limit: int = ERROR_TEXT) -> str:
    """A server's text as one short line: its first non-blank line, cut to `limit` characters.

    >>> one_line("<html>\\n<body>" + "x" * 500)
    '<html>'
    >>> one_line("a" * 300)[-12:]
    'aaaaaaaaa...'
    """
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    first = "".join(ch if ch.isprintable() else "?" for ch in first)
    return first if len(first) <= limit else first[: limit - 3] + "..."
