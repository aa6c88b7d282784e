"""A GGUF's header read where the file lies: a Hugging Face repository (by quant, or `hf://`) or
an https URL, by HTTP range requests, so the planner answers before a 20 GB download.

Only the header travels: the first few MB (QwQ's vocabulary and merges are most of it), more
only if the header is longer. The bytes are laid into a sparse local file of the remote file's
full size, which gguf's own reader then parses as it parses a downloaded file; the reader's
`data_offset` (where the tensors begin) proves every parsed byte was fetched. A split GGUF
(`-00001-of-0000N`) is read from its first shard, which holds the metadata, and the tensor index
of every other shard (each one's header only).

Headers are cached by the file's sha256 (a Hub LFS file's ETag) or the server's ETag under
`QWQ_OLLAMA_CACHE/gguf-headers/`, with an index by URL, so `HF_HUB_OFFLINE=1` still answers for a
file read once. Hub requests go through huggingface_hub (HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE
as it documents them); a plain https URL goes through the same HTTP session without the
Hub's token.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from qwq_ollama.artifacts.download import hub_endpoint
from qwq_ollama.atomic import write_bytes_atomic, write_text_atomic
from qwq_ollama.errors import EnvironmentProblem, InputError
from qwq_ollama.limits import Deadline, TooBig, TooSlow, network_deadline, read_bounded
from qwq_ollama.paths import cache_dir
from qwq_ollama.redaction import redact

FIRST_READ = 4 << 20  # bytes; doubled until the header is whole (QwQ-32B's: about 6.5 MB)
MAX_HEADER = 256 << 20  # a header longer than this is not a model we can plan
MAX_FILE = 4 << 40  # a size no GGUF reaches (QwQ-32B at F32: 131 GB): a server that says more lies
MAX_PAGES = 100  # of a Hub tree listing (1,000 files a page): a listing that goes on is refused
MAX_PAGE = 16 << 20  # decoded bytes of one listing page
_SPLIT = re.compile(r"^(?P<stem>.+)-(?P<part>\d{5})-of-(?P<total>\d{5})\.gguf$")


@dataclass(frozen=True)
class RemoteFile:
    """One file to range-read: where, how big, what identifies its content."""

    url: str
    size: int
    etag: str
    hub: bool  # send huggingface_hub's headers (token) with each request


@dataclass
class Fetched:
    """What a header read cost: bytes over the network (0 when every header was cached)."""

    network_bytes: int = 0


def is_remote(source: str) -> bool:
    return source.startswith(("hf://", "https://", "http://"))


def hub_quant_file(repo_id: str, quant: str) -> str:
    """The repository's file of exactly `quant` (a split GGUF's first shard), by its listing;
    offline, the one found the last time the listing was read."""
    from qwq_ollama.artifacts.download import check_quant, select_quant_names

    quant = check_quant(quant)
    hub_endpoint()
    key = f"hf://{repo_id}@{quant}"
    index = _load_index()
    if _offline():
        if key in index:
            return index[key]
        raise EnvironmentProblem(
            f"{repo_id} {quant}: HF_HUB_OFFLINE is set and its header was "
            "never read here: unset HF_HUB_OFFLINE once to read it"
        )
    with _hub_errors(f"{repo_id} {quant}"):
        names = _repo_files(repo_id)
    name = select_quant_names(names, repo_id, quant)[0]
    _remember(index, key, name)
    return name


def _repo_files(repo_id: str) -> list[str]:
    """The file names of a repository's main branch: the Hub's tree listing, asked once
    (HfApi's listing retries a dead endpoint for 23 s; a planner should say so at once), each
    page within the network deadline and size bound, at most MAX_PAGES pages."""
    from huggingface_hub.utils import get_session

    url: str | None = f"{hub_endpoint()}/api/models/{repo_id}/tree/main?recursive=true"
    names: list[str] = []
    for _page in range(MAX_PAGES):
        if url is None:
            return names
        seconds = network_deadline()
        with get_session().stream("GET", url, headers=_hub_headers(), timeout=seconds) as reply:
            _check_status(reply.status_code)
            body = _bounded(reply.iter_bytes(), MAX_PAGE, seconds, f"{repo_id}'s file listing")
            link = reply.links.get("next", {}).get("url")  # a long listing comes in pages
        names += _listed_files(body, repo_id)
        url = str(link) if link else None
    if url is None:
        return names
    raise EnvironmentProblem(
        f"{repo_id}: the Hub's file listing goes on past {MAX_PAGES} pages: "
        "give the file as hf://OWNER/REPO/FILE.gguf"
    )


def _listed_files(body: bytes, repo_id: str) -> list[str]:
    """The file paths of one listing page; a page that is not a listing, or names a path that
    leaves the repository, is the server's fault, in one line."""
    try:
        entries = json.loads(body)
    except ValueError:
        entries = None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise EnvironmentProblem(
            f"{repo_id}: the Hub's file listing is not a list of files: check HF_ENDPOINT"
        )
    names = [e.get("path") for e in entries if e.get("type") == "file"]
    for name in names:
        if not isinstance(name, str) or not _inside(name):
            raise EnvironmentProblem(
                f"{repo_id}: the Hub's file listing names "
                f"{str(name)[:80]!r}, not a path inside a repository"
            )
    return [str(n) for n in names]


def _inside(name: str) -> bool:
    """A relative path with no `..`, no empty or `.` part, no backslash or control character.

    >>> _inside("a/b.gguf"), _inside("../x.gguf"), _inside("/etc/x"), _inside("a/./b")
    (True, False, False, False)
    """
    parts = name.split("/")
    return (
        bool(name)
        and name.isprintable()
        and "\\" not in name
        and all(p not in ("", ".", "..") for p in parts)
    )


def read_header(source: str, into: Path, fetched: Fetched | None = None) -> list[Path]:
    """The header(s) of `source` (`hf://owner/repo/file.gguf`, `hf://owner/repo@quant` for a
    quant, or an https URL) as sparse local files in `into`, the first shard first."""
    fetched = fetched if fetched is not None else Fetched()
    if source.startswith("hf://"):
        hub_endpoint()  # before huggingface_hub is imported: it parses HF_ENDPOINT on import
    urls = _shard_urls(source)
    return [_header_file(url, into / f"shard-{i}.gguf", fetched) for i, url in enumerate(urls)]


def _shard_urls(source: str) -> list[str]:
    if source.startswith("hf://"):
        repo_id, quant, filename = _hub_target(source[len("hf://") :])
        if quant is not None:
            filename = hub_quant_file(repo_id, quant)
        from huggingface_hub import hf_hub_url

        hub_endpoint()
        first = hf_hub_url(repo_id, filename)
    else:
        _resource(source)  # a URL that does not parse is refused here, its secrets hidden
        first, filename = source, source.rsplit("/", 1)[-1].split("?", 1)[0]
    split = split_parts(filename)
    if split is None:
        return [first]
    part, names = split
    if part != 1:
        raise InputError(
            f"{filename} is part {part} of a split GGUF: give the first part "
            "(-00001-of-...), which holds the metadata",
            field="gguf",
        )
    base, rest = first[: first.rindex(filename)], first[first.rindex(filename) + len(filename) :]
    return [f"{base}{name}{rest}" for name in names]


def split_parts(filename: str) -> tuple[int, list[str]] | None:
    """For a split GGUF's file name (`-0000K-of-0000N`): K and the names of all N parts in
    order; None for any other name.

    >>> split_parts("QwQ-32B-Q8_0-00002-of-00002.gguf")
    (2, ['QwQ-32B-Q8_0-00001-of-00002.gguf', 'QwQ-32B-Q8_0-00002-of-00002.gguf'])
    >>> split_parts("QwQ-32B-Q4_K_M.gguf") is None
    True
    """
    split = _SPLIT.match(filename)
    if split is None:
        return None
    total = int(split["total"])
    return int(split["part"]), [
        f"{split['stem']}-{i:05d}-of-{total:05d}.gguf" for i in range(1, total + 1)
    ]


def _hub_target(text: str) -> tuple[str, str | None, str]:
    """`owner/repo/path/file.gguf` or `owner/repo@QUANT` as (repo id, quant, file)."""
    if "@" in text:
        repo_id, _, quant = text.partition("@")
        return repo_id, quant, ""
    parts = text.split("/", 2)
    if len(parts) < 3 or not parts[2].endswith(".gguf"):
        raise InputError(
            f"hf://{text}: give hf://OWNER/REPO/FILE.gguf (or hf://OWNER/REPO@QUANT)", field="gguf"
        )
    return f"{parts[0]}/{parts[1]}", None, parts[2]


def _header_file(url: str, target: Path, fetched: Fetched) -> Path:
    """The cached header of `url` if there is one for its current content, else fetched."""
    index = _load_index()
    remote = None if _offline() and _is_hub(url) else _metadata(url)
    etag = remote.etag if remote else index.get(_resource(url))
    cached = _cached(_resource(url), etag) if etag else None
    if cached is None:
        if remote is None:
            raise EnvironmentProblem(
                f"{_shown(url)}: HF_HUB_OFFLINE is set and its header was "
                "never read here: unset HF_HUB_OFFLINE once to read it"
            )
        cached = _fetch(remote, fetched)
        _store(remote, cached, index)
    head, size = cached
    return _sparse_file(head, size, target)


def _sparse_file(head: bytes, size: int, path: Path) -> Path:
    """`head` at the start of a file of `size` bytes; the rest a hole: no disk, never read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(path, "wb") as out:
            out.write(head)
            out.truncate(size)
    except OSError as exc:  # a file system that holds no file this large, even a sparse one
        raise EnvironmentProblem(
            f"cannot lay out a header of a {size}-byte file in {path.parent}: {exc.strerror or exc}"
        ) from None
    return path


def _fetch(remote: RemoteFile, fetched: Fetched) -> tuple[bytes, int]:
    """The header's bytes: a first read, then as many more as the parsed header says it has.

    Every range answer must cover exactly the bytes asked, of a file of the size first seen,
    with the validator (ETag) first seen: a server that ignores `Range`, lies in
    `Content-Range` or changes the file between two reads is refused, never half-planned."""
    length = min(FIRST_READ, remote.size)
    head = b""
    seen: dict[str, str] = {}
    while True:
        more = _range(remote, len(head), length, seen)  # only the bytes not fetched yet
        fetched.network_bytes += len(more)
        head += more
        needed = _parsed_length(head, remote.size, _shown(remote.url))
        if needed is not None and needed <= len(head):
            return head[:needed], remote.size
        if length >= min(MAX_HEADER, remote.size):
            raise InputError(
                f"{_shown(remote.url)}: no GGUF header within its first {length} bytes",
                field="gguf",
            )
        length = min(max(2 * length, needed or 0), MAX_HEADER, remote.size)


def _parsed_length(head: bytes, size: int, where: str) -> int | None:
    """Where the tensor data begins, if `head` (laid over a file of `size`) parses; a value
    beyond len(head) means the parser read bytes not yet fetched. Every count and length in
    the header is checked first against the bytes a header may take (MAX_HEADER, or the file),
    so a header claiming 2**40 tensors is refused before anything is fetched or allocated."""
    import gguf

    from qwq_ollama.artifacts.gguf import check_header_bounds

    if not head.startswith(b"GGUF"):
        raise InputError("not a GGUF file (no GGUF magic at its start)", field="gguf")
    try:
        if check_header_bounds(head, min(size, MAX_HEADER)) is None:
            return None  # the header goes on: fetch more
    except InputError as exc:
        raise InputError(f"{where}: {exc}", field="gguf") from None
    with tempfile.TemporaryDirectory() as tmp:
        path = _sparse_file(head, size, Path(tmp) / "head.gguf")
        try:
            return int(gguf.GGUFReader(path).data_offset)
        except Exception:  # noqa: BLE001 - a header cut short fails in many ways: fetch more
            return None


def _range(remote: RemoteFile, start: int, end: int, seen: dict[str, str]) -> bytes:
    """Bytes [start, end) of the file, by one range request within the network deadline;
    `seen` holds the validator of the answers before, which this one must repeat."""
    from huggingface_hub.utils import get_session

    headers = {"Range": f"bytes={start}-{end - 1}"}
    if remote.hub:  # the Hub's token and user agent; a plain URL gets neither
        headers = {**_hub_headers(), **headers}
    elif not remote.etag.startswith("size-"):
        headers["If-Range"] = f'"{remote.etag}"'  # changed since the HEAD: a 200, refused below
    what = _shown(remote.url)
    seconds = network_deadline()
    with (
        _hub_errors(what, seconds),
        get_session().stream(
            "GET", remote.url, headers=headers, follow_redirects=True, timeout=seconds
        ) as reply,
    ):
        _check_status(reply.status_code)
        if reply.status_code != 206:
            raise EnvironmentProblem(
                f"{what} does not answer range requests (HTTP "
                f"{reply.status_code}): download the file instead"
            )
        _check_range(reply.headers.get("content-range"), start, end, remote.size, what)
        validator = _etag(reply.headers.get("etag")) or reply.headers.get("last-modified", "")
        expected = seen.setdefault("validator", validator)
        if not remote.hub and not remote.etag.startswith("size-") and validator:
            expected = remote.etag if reply.headers.get("etag") else expected
        if validator != expected:
            raise EnvironmentProblem(
                f"{what} changed while its header was read (validator "
                f"{expected[:40]!r}, now {validator[:40]!r}): try again"
            )
        body = _bounded(reply.iter_bytes(), end - start, seconds, f"{what} bytes {start}-{end - 1}")
    if len(body) != end - start:
        raise EnvironmentProblem(
            f"{what} sent {len(body)} bytes for a range of {end - start}: try again"
        )
    return body


def _check_range(header: str | None, start: int, end: int, size: int, what: str) -> None:
    """A `Content-Range` must name exactly the bytes asked, of a file of the size first seen.

    >>> _check_range("bytes 0-9/100", 0, 10, 100, "u")
    >>> _check_range("bytes 10-19/100", 0, 10, 100, "u")
    Traceback (most recent call last):
    qwq_ollama.errors.EnvironmentProblem: u answered 10-19/100 for bytes 0-9 of a 100-byte file: refused
    """
    match = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+)\s*", header or "")
    if match is None or (int(match[1]), int(match[2]) + 1, int(match[3])) != (start, end, size):
        shown = (header or "no Content-Range").removeprefix("bytes ").strip()[:60]
        raise EnvironmentProblem(
            f"{what} answered {shown} for bytes {start}-{end - 1} of a {size}-byte file: refused"
        )


def _bounded(chunks: Iterator[bytes], limit: int, seconds: float, what: str) -> bytes:
    """A body read within the deadline and `limit` decoded bytes (a gzip bomb included)."""
    try:
        return read_bounded(chunks, limit=limit, deadline=Deadline(seconds))
    except TooBig:
        raise EnvironmentProblem(
            f"{what}: the server sent more than the {limit} bytes asked for (decoded): refused"
        ) from None
    except TooSlow:
        raise EnvironmentProblem(
            f"{what}: not whole within {seconds:g} s (the server is slow; "
            "QWQ_OLLAMA_DEADLINE sets the bound)"
        ) from None


def _hub_headers() -> dict[str, str]:
    """huggingface_hub's headers (token, user agent). Building them may ask the endpoint for
    its agent registry, and an endpoint answering that unlike the Hub breaks the library: one
    line here, not its traceback."""
    from huggingface_hub.utils import build_hf_headers

    try:
        return dict(build_hf_headers())
    except (AttributeError, TypeError, ValueError, KeyError) as exc:
        raise EnvironmentProblem(
            f"{redact(hub_endpoint())} does not answer like the Hugging "
            f"Face Hub ({type(exc).__name__} building its headers): check "
            "HF_ENDPOINT"
        ) from None


def _check_status(status: int) -> None:
    """An HTTP error status as the exception huggingface_hub's helpers would carry it."""
    if status >= 400:
        raise _StatusError(status)


class _StatusError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status_code = status


def _etag(value: str | None) -> str:
    return (value or "").strip().removeprefix("W/").strip('"')


def _metadata(url: str) -> RemoteFile:
    """Size and content id of `url` (a HEAD request; the Hub's LFS ETag is the sha256)."""
    hub = _is_hub(url)
    what = _shown(url)
    seconds = network_deadline()
    with _hub_errors(what, seconds):
        if hub:
            from huggingface_hub import get_hf_file_metadata

            meta = get_hf_file_metadata(url, timeout=seconds)
            size, etag = meta.size, meta.etag
        else:  # through huggingface_hub's HTTP session too, without its headers
            from huggingface_hub.utils import get_session

            reply = get_session().head(url, follow_redirects=True, timeout=seconds)
            _check_status(reply.status_code)
            length = reply.headers.get("content-length") or ""
            size = int(length) if length.isascii() and length.isdigit() else 0
            etag = reply.headers.get("etag")
    if not size:
        raise EnvironmentProblem(f"{what}: the server does not say how big the file is")
    if int(size) > MAX_FILE:
        raise EnvironmentProblem(
            f"{what}: the server says the file has {size} bytes, more "
            f"than any GGUF ({MAX_FILE >> 40} TiB): refused"
        )
    etag = _etag(etag) or f"size-{size}-{_key(_resource(url))}"
    return RemoteFile(url, int(size), etag, hub)


def _is_hub(url: str) -> bool:
    return url.startswith(hub_endpoint() + "/")


def _offline() -> bool:
    from huggingface_hub import is_offline_mode

    return bool(is_offline_mode())


def _folder() -> Path:
    return cache_dir() / "gguf-headers"


def _key(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _load_index() -> dict[str, str]:
    try:
        data = json.loads((_folder() / "index.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _resource(url: str) -> str:
    """What a cached header belongs to: scheme, host, port and path, never a user, password
    or query (which may hold a token).

    >>> _resource("https://alice:pw@Files.example:8443/m/q.gguf?token=abc#x")
    'https://files.example:8443/m/q.gguf'
    """
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        host = ""
    if not host or parts.scheme not in ("http", "https"):
        raise InputError(
            f"{_shown(url)}: not an http(s) URL with a host (a password holding "
            "/ ? # or @ is written percent-encoded: %2F %3F %23 %40)",
            field="gguf",
        )
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _cache_name(resource: str, etag: str) -> str:
    """A header is cached under its resource and its validator together: one host's file is
    never planned from another's header that happened to share an ETag."""
    return _key(f"{resource}\n{etag}")


def _cached(resource: str, etag: str) -> tuple[bytes, int] | None:
    name = _cache_name(resource, etag)
    try:
        meta = json.loads((_folder() / f"{name}.json").read_text())
        head = (_folder() / f"{name}.head").read_bytes()
    except (OSError, ValueError):
        return None
    if (
        not isinstance(meta, dict)
        or len(head) != meta.get("header_bytes")
        or meta.get("resource") != resource
        or meta.get("etag") != etag
    ):
        return None
    return head, int(meta["size"])


def _store(remote: RemoteFile, cached: tuple[bytes, int], index: dict[str, str]) -> None:
    """Header bytes and facts by resource and content id, then the resource's entry in the
    index; a cache that cannot be written only costs the next run its shortcut."""
    head, size = cached
    resource = _resource(remote.url)
    name = _cache_name(resource, remote.etag)
    try:
        write_bytes_atomic(_folder() / f"{name}.head", head)
        write_text_atomic(
            _folder() / f"{name}.json",
            json.dumps(
                {"resource": resource, "etag": remote.etag, "size": size, "header_bytes": len(head)}
            )
            + "\n",
        )
    except OSError:
        return
    _remember(index, resource, remote.etag)


def _remember(index: dict[str, str], key: str, value: str) -> None:
    try:
        write_text_atomic(
            _folder() / "index.json",
            json.dumps({**_load_index(), **index, key: value}, indent=1) + "\n",
        )
    except OSError:
        pass


def _shown(url: str) -> str:
    """A URL for a message: its secrets (user, password, query items) as `***`."""
    return redact(url)


@contextmanager
def _hub_errors(what: str, seconds: float | None = None) -> Iterator[None]:
    """huggingface_hub's and httpx's errors as one line naming what was being read."""
    try:
        yield
    except (InputError, EnvironmentProblem):
        raise
    except Exception as exc:
        if seconds is not None and "Timeout" in type(exc).__name__:
            raise EnvironmentProblem(
                f"{what}: no answer within {seconds:g} s (the server is "
                "slow; QWQ_OLLAMA_DEADLINE sets the bound)"
            ) from None
        translated = _translate(exc, what)
        if translated is None:
            raise
        raise translated from None


def _translate(exc: BaseException, what: str) -> Exception | None:
    from huggingface_hub import errors

    from qwq_ollama.artifacts.download import is_http_error, scrub_secrets

    status = getattr(getattr(exc, "response", None), "status_code", None) or getattr(
        exc, "status_code", None
    )
    if isinstance(exc, errors.RepositoryNotFoundError) or status == 404:
        text = f"{what}: not found (HTTP 404): check the repository, file name or URL"
    elif isinstance(exc, errors.GatedRepoError) or status in (401, 403):
        text = f"{what}: access refused (HTTP {status}): set HF_TOKEN to a token with access"
    elif isinstance(exc, errors.OfflineModeIsEnabled):
        text = (
            f"{what}: HF_HUB_OFFLINE is set and its header was never read here: unset "
            "HF_HUB_OFFLINE once to read it"
        )
    elif status is not None:
        text = f"{what}: the server answered HTTP {status}: try again later"
    elif isinstance(exc, Exception) and is_http_error(exc):
        text = (
            f"{what}: could not reach the server ({type(exc).__name__}): check the network, "
            "a proxy or HF_ENDPOINT, or pass --gguf FILE"
        )
    else:
        return None
    return EnvironmentProblem(scrub_secrets(text))
