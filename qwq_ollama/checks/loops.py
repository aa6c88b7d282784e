"""Say, as early as it is certain, that a streamed generation is looping.

Two signals. Exact: the tail of the text is one block repeated back to back. Near: the same run
of tokens keeps coming back and almost everything written since is a repeat (cycles that differ
in a number or a word). Both do bounded work per chunk, so a long stream stays linear.

Legitimate repetition is common (table rows, `====` underlines, rows of zeros, map rows in
code), so blocks without letters, and blocks made only of table or data-literal rows, must run
ten times longer before they count: a false alarm costs more than catching a loop late.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from qwq_ollama.errors import InputError

SAMPLE_CHARS = 80
# Every character belongs to one piece: a word with its leading space, a run of one sign
# (`====` is a few tokens to a real tokenizer, not sixty), or spaces.
_TOKENISH = re.compile(r"\s*\w+|\s*([^\w\s])\1{0,15}|\s+")
_LETTER = re.compile(r"[^\W\d_]")
# A table row (`| a | b |`) or a data-literal row in code (`"#....#",`, `[0, 0, 0],`).
_ROW = re.compile(r"""\s*(\|.*|["'\[({].*[,"'\])}|])\s*""")
# Bounds the candidate periods tried per chunk; only pathological text has more.
_MAX_CANDIDATES = 256


@dataclass(frozen=True)
class LoopVerdict:
    """What the detector saw, in the units a user reads: characters and tokens (chunks)."""

    kind: str  # "exact" (one block repeated) or "near" (a token run keeps coming back)
    period_chars: int  # length of the repeated block (for "near": mean distance between runs)
    repeats: int
    loop_start_char: int  # offset in the whole stream where the repeated region begins
    loop_start_token: int  # chunks before the loop: index of the chunk holding that offset
    detected_at_token: int  # chunks seen when the verdict was made
    sample: str  # the repeated unit, cut to SAMPLE_CHARS
    reason: str


class LoopDetector:
    """Feed it the streamed chunks in order; it answers once, the first time a loop is certain."""

    def __init__(
        self,
        *,
        min_period_chars: int = 8,
        max_period_chars: int = 2000,
        min_repeats: int = 3,
        min_span_chars: int = 200,
        structural_span_chars: int = 2000,
        window_chars: int = 16_000,
        ngram_tokens: int = 20,
        ngram_repeats: int = 4,
        ngram_window_tokens: int = 1000,
        ngram_coverage: float = 0.75,
    ) -> None:
        if not 1 <= min_period_chars <= max_period_chars:
            raise ValueError("need 1 <= min_period_chars <= max_period_chars")
        if min_repeats < 2 or ngram_repeats < 2 or ngram_tokens < 1:
            raise ValueError("repeats must be at least 2 and ngram_tokens at least 1")
        if structural_span_chars < min_span_chars:
            raise ValueError("structural_span_chars must be >= min_span_chars")
        if window_chars < max(min_repeats * max_period_chars, structural_span_chars):
            raise ValueError("window_chars must hold min_repeats periods of max_period_chars")
        self._min_p = min_period_chars
        self._max_p = max_period_chars
        self._min_repeats = min_repeats
        self._min_span = min_span_chars
        self._struct_span = structural_span_chars
        self._window = window_chars
        self._n = ngram_tokens
        self._k = ngram_repeats
        self._ng_window = ngram_window_tokens
        self._coverage = ngram_coverage
        self._tokens = 0
        self._verdict: LoopVerdict | None = None
        self._buf = ""  # the last window_chars (up to twice that) characters
        self._base = 0  # stream offset of _buf[0]
        self._starts: list[int] = []  # stream offset where each kept chunk begins
        self._token0 = 0  # token index of _starts[0]
        self._recent: deque[str] = deque(maxlen=ngram_tokens)
        self._ends: dict[tuple[str, ...], deque[int]] = {}  # n-gram -> tokens where it ended
        self._order: deque[tuple[int, tuple[str, ...]]] = deque()  # for expiry, oldest first
        self._repeated = [0]  # prefix sums: tokens whose n-gram was seen before
        self._rep0 = 0  # token index matching _repeated[0]

    @property
    def verdict(self) -> LoopVerdict | None:
        return self._verdict

    @property
    def tokens_seen(self) -> int:
        """Non-empty chunks fed so far (Ollama streams about one token per chunk)."""
        return self._tokens

    def feed(self, chunk: str) -> LoopVerdict | None:
        """Add one chunk; the verdict the first time a loop is certain, else None.

        Empty chunks (Ollama's final `done` message) are not tokens and are ignored.
        """
        if not chunk:
            return None
        token = self._tokens
        self._tokens += 1
        if self._verdict is not None:
            return None
        self._starts.append(self._base + len(self._buf))
        self._buf += chunk
        found = self._check_exact(token) or self._check_near(chunk, token)
        self._trim()
        self._verdict = found
        return found

    # -- exact loops: the tail is one block repeated --------------------------------------

    def _check_exact(self, token: int) -> LoopVerdict | None:
        """Try the periods where the last few characters occurred before, shortest first."""
        buf, m = self._buf, self._min_p
        n = len(buf)
        if n < self._min_span:
            return None
        anchor = buf[n - m :]
        lo, end = max(0, n - self._max_p - m), n - self._min_p
        for _ in range(_MAX_CANDIDATES):
            j = buf.rfind(anchor, lo, end)
            if j < 0:
                return None
            period, end = n - m - j, j + m - 1
            need = max(self._min_repeats * period, self._min_span)
            if need > n:
                return None
            quick = min(period, 32)  # most candidates differ within the last few characters
            if buf[n - quick :] != buf[n - period - quick : n - period]:
                continue
            if buf[n - need + period :] != buf[n - need : n - period]:
                continue
            start, period = self._loop_region(n - need, period)
            if _is_structural(buf[start : start + period]) and n - start < self._struct_span:
                return None  # longer periods would be the same rows; look again next chunk
            return self._exact_verdict(start, period, token)
        return None

    def _loop_region(self, start: int, period: int) -> tuple[int, int]:
        """Grow a periodic tail backwards and reduce its period to the shortest one."""
        start = self._extend_back(start, period)
        unit = self._buf[start : start + period]
        shortest = (unit + unit).find(unit, 1)
        if shortest < period:
            period = shortest
            start = self._extend_back(start, period)
        return start, period

    def _extend_back(self, start: int, period: int) -> int:
        buf = self._buf
        while start >= period and buf[start - period : start] == buf[start : start + period]:
            start -= period
        while start > 0 and buf[start - 1] == buf[start - 1 + period]:
            start -= 1
        return start

    def _exact_verdict(self, start: int, period: int, token: int) -> LoopVerdict:
        span = len(self._buf) - start
        first = self._base + start
        return LoopVerdict(
            kind="exact",
            period_chars=period,
            repeats=span // period,
            loop_start_char=first,
            loop_start_token=self._token_at(first),
            detected_at_token=token + 1,
            sample=_sample(self._buf[start : start + period]),
            reason=f"the last {span} characters are one {period}-character block "
            f"repeated {span // period} times",
        )

    # -- near loops: a token run keeps coming back ----------------------------------------

    def _check_near(self, chunk: str, token: int) -> LoopVerdict | None:
        """Count each n-gram's recent, non-overlapping occurrences; judge the latest one."""
        self._recent.append(chunk)
        if len(self._recent) < self._n:
            self._repeated.append(self._repeated[-1])
            return None
        key = tuple(self._recent)
        horizon = token - self._ng_window
        while self._order and self._order[0][0] <= horizon:
            old_token, old_key = self._order.popleft()
            old = self._ends[old_key]
            old.popleft()
            if not old:
                del self._ends[old_key]
        ends = self._ends.setdefault(key, deque())
        self._repeated.append(self._repeated[-1] + (1 if ends else 0))
        if ends and token - ends[-1] < self._n:
            return None  # overlaps its last occurrence: short cycles are the exact check's
        ends.append(token)
        self._order.append((token, key))
        if len(ends) < self._k:
            return None
        first, second = ends[-self._k], ends[-self._k + 1]
        covered = self._repeats_between(second, token) / (token - second)
        text = "".join(key)
        if covered < self._coverage or not _is_informative(text):
            return None
        begin = first - self._n + 1
        begin_char, end_char = self._char_of(begin), self._base + len(self._buf)
        period = round((self._char_of(token) - self._char_of(first)) / (self._k - 1))
        return LoopVerdict(
            kind="near",
            period_chars=period,
            repeats=self._k,
            loop_start_char=begin_char,
            loop_start_token=begin,
            detected_at_token=token + 1,
            sample=_sample(text),
            reason=f"the same {self._n}-token run occurred {self._k} times in "
            f"{token - begin + 1} tokens ({end_char - begin_char} characters), and "
            f"{covered:.0%} of the text since its second time repeats earlier text",
        )

    def _repeats_between(self, after: int, upto: int) -> int:
        """Tokens in (after, upto] whose n-gram had been seen before."""
        return self._repeated[upto - self._rep0 + 1] - self._repeated[after - self._rep0 + 1]

    # -- bookkeeping ------------------------------------------------------------------------

    def _token_at(self, char: int) -> int:
        return self._token0 + max(0, bisect_right(self._starts, char) - 1)

    def _char_of(self, token: int) -> int:
        return self._starts[max(0, token - self._token0)]

    def _trim(self) -> None:
        """Keep the text window and the token window; forget the rest (amortised O(1))."""
        if len(self._buf) > 2 * self._window:
            cut = len(self._buf) - self._window
            self._buf = self._buf[cut:]
            self._base += cut
        keep_tokens = self._ng_window + self._n + 2
        drop = min(bisect_right(self._starts, self._base) - 1, len(self._starts) - keep_tokens)
        if drop > keep_tokens:
            del self._starts[:drop]
            self._token0 += drop
        if len(self._repeated) > 2 * keep_tokens:
            cut = len(self._repeated) - keep_tokens
            del self._repeated[:cut]
            self._rep0 += cut


def detect_loop_in_text(text: str, detector: LoopDetector | None = None) -> LoopVerdict | None:
    """Run a whole text through a (fresh) detector, cut into token-like pieces.

    Pieces (words, signs, spaces) rather than single characters keep the n-gram check meaning
    what it means on a real stream, where a chunk is about one token.
    """
    detector = detector if detector is not None else LoopDetector()
    for piece in split_tokenish(text):
        found = detector.feed(piece)
        if found is not None:
            return found
    return None


def split_tokenish(text: str) -> list[str]:
    """Cut text roughly the way a tokenizer would; the pieces join back to the text."""
    return [match.group() for match in _TOKENISH.finditer(text)]


def load_stream(path: str | Path) -> list[str]:
    """A recorded stream: a JSON list of the chunks' strings, in order."""
    try:
        chunks = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read the recorded stream: {exc}", file=path) from exc
    if not isinstance(chunks, list) or not all(isinstance(c, str) for c in chunks):
        raise InputError("a recorded stream must be a JSON list of strings", file=path)
    return chunks


def _is_structural(unit: str) -> bool:
    """A block with no letters, or only table/data rows: legit when repeated a few times."""
    if not _LETTER.search(unit):
        return True
    if "\n" not in unit:
        return False
    cut = unit.index("\n") + 1
    lines = [line for line in (unit[cut:] + unit[:cut]).split("\n") if line.strip()]
    return all(_ROW.fullmatch(line) for line in lines)


def _is_informative(text: str) -> bool:
    """Enough distinct letters that a repeat is content, not table or list scaffolding."""
    return len(set(_LETTER.findall(text))) >= 8 and text.count("|") < 3


def _sample(unit: str) -> str:
    return unit if len(unit) <= SAMPLE_CHARS else unit[: SAMPLE_CHARS - 1] + "…"
