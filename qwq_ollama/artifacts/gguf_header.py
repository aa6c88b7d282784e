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

from qwq_ollama.atomic import write_bytes_atomic, write_text_atomic
from qwq_ollama.errors import EnvironmentProblem, InputError
from qwq_ollama.paths import cache_dir

FIRST_READ = 4 << 20  # bytes; doubled until the header is whole (QwQ-32B's: about 6.5 MB)
MAX_HEADER = 256 << 20  # a header longer than this is not a model we can plan
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
    key = f"hf://{repo_id}@{quant}"
    index = _load_index()
    if _offline():
        if key in index:
            return index[key]
        raise EnvironmentProblem(f"{repo_id} {quant}: HF_HUB_OFFLINE is set and its header was "
                                 "never read here: unset HF_HUB_OFFLINE once to read it")
    with _hub_errors(f"{repo_id} {quant}"):
        names = _repo_files(repo_id)
    name = select_quant_names(names, repo_id, quant)[0]
    _remember(index, key, name)
    return name


def _repo_files(repo_id: str) -> list[str]:
    """The file names of a repository's main branch: the Hub's tree listing, asked once
    (HfApi's listing retries a dead endpoint for 23 s; a planner should say so at once)."""
    from huggingface_hub import constants
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    url: str | None = f"{constants.ENDPOINT}/api/models/{repo_id}/tree/main?recursive=true"
    names: list[str] = []
    while url:
        reply = get_session().get(url, headers=build_hf_headers(), timeout=30)
        hf_raise_for_status(reply)
        names += [e["path"] for e in reply.json() if e.get("type") == "file"]
        url = reply.links.get("next", {}).get("url")  # a long listing comes in pages
    return names


def read_header(source: str, into: Path, fetched: Fetched | None = None) -> list[Path]:
    """The header(s) of `source` (`hf://owner/repo/file.gguf`, `hf://owner/repo@quant` for a
    quant, or an https URL) as sparse local files in `into`, the first shard first."""
    fetched = fetched if fetched is not None else Fetched()
    urls = _shard_urls(source)
    return [_header_file(url, into / f"shard-{i}.gguf", fetched) for i, url in enumerate(urls)]


def _shard_urls(source: str) -> list[str]:
    if source.startswith("hf://"):
        repo_id, quant, filename = _hub_target(source[len("hf://"):])
        if quant is not None:
            filename = hub_quant_file(repo_id, quant)
        from huggingface_hub import hf_hub_url

        first = hf_hub_url(repo_id, filename)
    else:
        first, filename = source, source.rsplit("/", 1)[-1].split("?", 1)[0]
    split = split_parts(filename)
    if split is None:
        return [first]
    part, names = split
    if part != 1:
        raise InputError(f"{filename} is part {part} of a split GGUF: give the first part "
                         "(-00001-of-...), which holds the metadata", field="gguf")
    base, rest = first[: first.rindex(filename)], first[first.rindex(filename) + len(filename):]
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
    return int(split["part"]), [f"{split['stem']}-{i:05d}-of-{total:05d}.gguf"
                                for i in range(1, total + 1)]


def _hub_target(text: str) -> tuple[str, str | None, str]:
    """`owner/repo/path/file.gguf` or `owner/repo@QUANT` as (repo id, quant, file)."""
    if "@" in text:
        repo_id, _, quant = text.partition("@")
        return repo_id, quant, ""
    parts = text.split("/", 2)
    if len(parts) < 3 or not parts[2].endswith(".gguf"):
        raise InputError(f"hf://{text}: give hf://OWNER/REPO/FILE.gguf (or hf://OWNER/REPO@QUANT)",
                         field="gguf")
    return f"{parts[0]}/{parts[1]}", None, parts[2]


def _header_file(url: str, target: Path, fetched: Fetched) -> Path:
    """The cached header of `url` if there is one for its current content, else fetched."""
    index = _load_index()
    remote = None if _offline() and _is_hub(url) else _metadata(url)
    etag = remote.etag if remote else index.get(url)
    cached = _cached(etag) if etag else None
    if cached is None:
        if remote is None:
            raise EnvironmentProblem(f"{_shown(url)}: HF_HUB_OFFLINE is set and its header was "
                                     "never read here: unset HF_HUB_OFFLINE once to read it")
        cached = _fetch(remote, fetched)
        _store(remote, cached, index)
    head, size = cached
    return _sparse_file(head, size, target)


def _sparse_file(head: bytes, size: int, path: Path) -> Path:
    """`head` at the start of a file of `size` bytes; the rest a hole: no disk, never read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        out.write(head)
        out.truncate(size)
    return path


def _fetch(remote: RemoteFile, fetched: Fetched) -> tuple[bytes, int]:
    """The header's bytes: a first read, then as many more as the parsed header says it has."""
    length = min(FIRST_READ, remote.size)
    head = b""
    while True:
        more = _range(remote, len(head), length)  # only the bytes not fetched yet
        fetched.network_bytes += len(more)
        head += more
        needed = _parsed_length(head, remote.size)
        if needed is not None and needed <= len(head):
            return head[:needed], remote.size
        if length >= min(MAX_HEADER, remote.size):
            raise InputError(f"{_shown(remote.url)}: no GGUF header within its first "
                             f"{length >> 20} MB", field="gguf")
        length = min(max(2 * length, needed or 0), MAX_HEADER, remote.size)


def _parsed_length(head: bytes, size: int) -> int | None:
    """Where the tensor data begins, if `head` (laid over a file of `size`) parses; a value
    beyond len(head) means the parser read bytes not yet fetched."""
    import gguf

    if not head.startswith(b"GGUF"):
        raise InputError("not a GGUF file (no GGUF magic at its start)", field="gguf")
    with tempfile.TemporaryDirectory() as tmp:
        path = _sparse_file(head, size, Path(tmp) / "head.gguf")
        try:
            return int(gguf.GGUFReader(path).data_offset)
        except Exception:  # noqa: BLE001 - a header cut short fails in many ways: fetch more
            return None


def _range(remote: RemoteFile, start: int, end: int) -> bytes:
    """Bytes [start, end) of the file, by one range request."""
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    headers = {"Range": f"bytes={start}-{end - 1}"}
    if remote.hub:  # the Hub's token and user agent; a plain URL gets neither
        headers = {**build_hf_headers(), **headers}
    with _hub_errors(_shown(remote.url)):
        reply = get_session().get(remote.url, headers=headers, follow_redirects=True,
                                  timeout=60)
        hf_raise_for_status(reply)
    if reply.status_code != 206:
        raise EnvironmentProblem(f"{_shown(remote.url)} does not answer range requests "
                                 f"(HTTP {reply.status_code}): download the file instead")
    return bytes(reply.content[: end - start])


def _metadata(url: str) -> RemoteFile:
    """Size and content id of `url` (a HEAD request; the Hub's LFS ETag is the sha256)."""
    hub = _is_hub(url)
    with _hub_errors(_shown(url)):
        if hub:
            from huggingface_hub import get_hf_file_metadata

            meta = get_hf_file_metadata(url)
            size, etag = meta.size, meta.etag
        else:  # through huggingface_hub's HTTP session too, without its headers
            from huggingface_hub.utils import get_session, hf_raise_for_status

            reply = get_session().head(url, follow_redirects=True, timeout=30)
            hf_raise_for_status(reply)
            size = int(reply.headers.get("content-length") or 0)
            etag = reply.headers.get("etag")
    if not size:
        raise EnvironmentProblem(f"{_shown(url)}: the server does not say how big the file is")
    etag = (etag or "").strip('"').removeprefix("W/").strip('"') or f"size-{size}-{_key(url)}"
    return RemoteFile(url, int(size), etag, hub)


def _is_hub(url: str) -> bool:
    from huggingface_hub import constants

    return url.startswith(constants.ENDPOINT.rstrip("/") + "/")


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


def _cached(etag: str) -> tuple[bytes, int] | None:
    name = _key(etag)
    try:
        meta = json.loads((_folder() / f"{name}.json").read_text())
        head = (_folder() / f"{name}.head").read_bytes()
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or len(head) != meta.get("header_bytes"):
        return None
    return head, int(meta["size"])


def _store(remote: RemoteFile, cached: tuple[bytes, int], index: dict[str, str]) -> None:
    """Header bytes and facts by content id, then the URL's entry in the index; a cache that
    cannot be written only costs the next run its shortcut."""
    head, size = cached
    name = _key(remote.etag)
    try:
        write_bytes_atomic(_folder() / f"{name}.head", head)
        write_text_atomic(_folder() / f"{name}.json", json.dumps(
            {"etag": remote.etag, "size": size, "header_bytes": len(head)}) + "\n")
    except OSError:
        return
    _remember(index, remote.url, remote.etag)


def _remember(index: dict[str, str], key: str, value: str) -> None:
    try:
        write_text_atomic(_folder() / "index.json",
                          json.dumps({**_load_index(), **index, key: value}, indent=1) + "\n")
    except OSError:
        pass


def _shown(url: str) -> str:
    """A URL for a message: no query string (it may carry a token)."""
    return url.split("?", 1)[0]


@contextmanager
def _hub_errors(what: str) -> Iterator[None]:
    """huggingface_hub's and httpx's errors as one line naming what was being read."""
    try:
        yield
    except (InputError, EnvironmentProblem):
        raise
    except Exception as exc:
        translated = _translate(exc, what)
        if translated is None:
            raise
        raise translated from None


def _translate(exc: BaseException, what: str) -> Exception | None:
    from huggingface_hub import errors

    from qwq_ollama.artifacts.download import is_http_error, scrub_secrets

    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, errors.RepositoryNotFoundError) or status == 404:
        text = f"{what}: not found (HTTP 404): check the repository, file name or URL"
    elif isinstance(exc, errors.GatedRepoError) or status in (401, 403):
        text = f"{what}: access refused (HTTP {status}): set HF_TOKEN to a token with access"
    elif isinstance(exc, errors.OfflineModeIsEnabled):
        text = (f"{what}: HF_HUB_OFFLINE is set and its header was never read here: unset "
                "HF_HUB_OFFLINE once to read it")
    elif status is not None:
        text = f"{what}: the server answered HTTP {status}: try again later"
    elif isinstance(exc, Exception) and is_http_error(exc):
        text = (f"{what}: could not reach the server ({type(exc).__name__}): check the network, "
                "a proxy or HF_ENDPOINT, or pass --gguf FILE")
    else:
        return None
    return EnvironmentProblem(scrub_secrets(text))

