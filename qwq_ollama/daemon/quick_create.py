"""Answer a `create` re-run that would change nothing, without loading the heavy stack.

A successful `create` leaves a stamp for its request (variants, weights, catalog, daemon): every
input it read (catalog and template files by content; the GGUF, this package's modules and the
installed packages' folders by size and mtime) and the manifest digest of every model it left
on the daemon. A manifest digest covers every layer (weights, template, parameters, system,
license), so when the same request comes again, every input still matches and the daemon still
lists those models with those digests, a full run could only confirm them: the answer comes from one GET /api/tags. Any
mismatch or doubt falls through to the full run, which stamps afresh.

The budget is the interpreter's own start-up, so only cheap standard modules are used: importing
ollama, httpx and pydantic takes ten times longer than this whole check, `http.client` (through
its email header parser) half as long, and `hashlib` (OpenSSL) a tenth. So the GET is plain
HTTP/1.0 over a socket, and the small inputs are kept and compared byte for byte.
"""

from __future__ import annotations

import json
import os
import sys
import zlib

from qwq_ollama.daemon.wire import listed_digests, tag_name
from qwq_ollama.paths import cache_root

STAMP_FORMAT = 3
_OPTIONS = ("--weights", "--catalog", "--host")
# The package root (this module lives in `daemon/`): every module under it is an input.
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def request_for(
    variants: list[str] | None,
    weights: str | None,
    catalog: str | os.PathLike[str] | None,
    host: str | None,
) -> list[object]:
    """What a `create` was asked, with everything its catalog and daemon lookup depend on.

    Raw values, not resolved ones, so that the quick check needs no resolving: an equal request
    resolves to the same catalog file and daemon (see paths.default_catalog_path, hosts).
    """
    return [
        STAMP_FORMAT,
        sys.prefix,
        list(variants or []),
        weights,
        os.path.normpath(catalog) if catalog is not None else None,
        host,
        os.getcwd(),
        os.environ.get("QWQ_OLLAMA_CATALOG"),
        os.environ.get("OLLAMA_HOST"),
        os.environ.get("HOME"),  # a `~` in a GGUF path
        os.path.exists(os.path.join("modelfiles", "models.yaml")),
    ]


def parse_create_args(args: list[str]) -> list[object] | None:
    """The request of `create [VARIANT...] [--weights W] [--catalog C] [--host H]`.

    None for anything else (help, unknown or repeated options): the full CLI handles those.
    """
    if not args or args[0] != "create":
        return None
    options: dict[str, str] = {}
    variants: list[str] = []
    rest = iter(args[1:])
    for arg in rest:
        if not arg.startswith("-"):
            variants.append(arg)
            continue
        name, eq, value = arg.partition("=")
        if name not in _OPTIONS or name in options:
            return None
        if not eq:
            following = next(rest, None)
            if following is None:
                return None
            value = following
        options[name] = value
    return request_for(
        variants, options.get("--weights"), options.get("--catalog"), options.get("--host")
    )


def stamp_path(request: list[object]) -> str:
    """One file per request; the stamp repeats the request, so a name clash only costs a miss."""
    key = zlib.crc32(json.dumps(request).encode())
    return os.path.join(cache_root(), "create-stamps", f"{key:08x}.json")


def _text(path: str) -> str:
    with open(path, "rb") as handle:
        return handle.read().decode("utf-8", "surrogateescape")


def _stat_signature(path: str) -> list[int]:
    info = os.stat(path)
    return [info.st_size, info.st_mtime_ns, info.st_ino]


def _files_under(folder: str) -> list[str]:
    found: list[str] = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        found.extend(os.path.join(root, f) for f in sorted(files))
    return found


def _code_paths() -> list[str]:
    """This package's modules, subpackages included, and the folders pip changes when it adds,
    removes or upgrades any installed package (a new jinja2 or ollama could register models
    differently)."""
    modules = [p for p in _files_under(PACKAGE_DIR) if p.endswith(".py")]
    installed = [p for p in sys.path if p.endswith("-packages") and os.path.isdir(p)]
    return sorted([*modules, *installed])


def fingerprint(
    catalog_file: str, templates_dir: str, weights_files: list[str]
) -> dict[str, object]:
    """Every input a `create` reads, in a form that changes whenever the input does."""
    content = {p: _text(p) for p in [catalog_file, *_files_under(templates_dir)]}
    stats = {p: _stat_signature(p) for p in [*weights_files, *_code_paths()]}
    return {"content": content, "stats": stats}


def _inputs_unchanged(stamp: dict[str, object]) -> bool:
    """Whether the inputs the stamp names fingerprint now as they did when it was written."""
    try:
        return fingerprint(**stamp["sources"]) == stamp["inputs"]  # type: ignore[arg-type]
    except (OSError, KeyError, TypeError):
        return False


def connection_target(host_url: str) -> list[object] | None:
    """`[host, port, netloc]` of a plain-HTTP daemon URL; None when the quick check cannot go.

    Read by the same parser as every other host value (daemon/host.py); `host_url` is already
    a resolved one, so it cannot be refused here.
    """
    from qwq_ollama.daemon.host import parse_host

    address = parse_host(host_url, "--host")
    if address.scheme != "http" or address.path or not address.hostname.isascii() or address.secret:
        return None  # https, a path prefix, an IDN host or a proxy's credentials: full client
    return [address.hostname, address.port, address.netloc]


_MAX_TAGS = 64 << 20  # bytes of a /api/tags answer


def _get_json(target: list[object], path: str, timeout: float) -> object:
    """One GET as HTTP/1.0: the daemon answers with a plain body and closes the connection.

    Over `_socket`, the C module under `socket`: `socket` itself also loads `selectors`, which
    costs a seventh of this whole path. A host given as ASCII bytes spares getaddrinfo the
    IDNA codec as well.
    """
    import _socket
    import time

    hostname, port, netloc = target
    request = f"GET {path} HTTP/1.0\r\nHost: {netloc}\r\nAccept: application/json\r\n\r\n"
    failure: OSError = ConnectionError(f"no address for {netloc}")
    for family, kind, proto, _name, address in _socket.getaddrinfo(
        str(hostname).encode("ascii"),
        port if isinstance(port, int) else None,
        0,
        _socket.SOCK_STREAM,
    ):
        sock = _socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
        except OSError as exc:
            failure = exc
            sock.close()
            continue
        try:
            sock.sendall(request.encode("ascii"))
            chunks, size, ends = [], 0, time.monotonic() + timeout
            while data := sock.recv(1 << 16):
                chunks.append(data)
                size += len(data)
                # a daemon that trickles, or sends without end, is not answered here: the
                # full path (with its own deadline) says what went wrong
                if size > _MAX_TAGS or time.monotonic() > ends:
                    raise TimeoutError(f"GET {path}: not whole within {timeout:g} s")
        finally:
            sock.close()
        break
    else:
        raise failure
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].split()
    if len(status) < 2 or status[1] != b"200" or b"chunked" in head.lower():
        raise ValueError(f"GET {path}: {head[:80]!r}")
    return json.loads(body)


def _listed_digests(target: list[object], timeout: float = 5.0) -> dict[str, str] | None:
    """`{model: manifest digest}` of every model the daemon lists, or None if it cannot say."""
    try:
        return listed_digests(_get_json(target, "/api/tags", timeout))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def answer(args: list[str]) -> list[str] | None:
    """The models a `create` with these arguments would find up to date, if nothing changed.

    None means "not known here": run the full command.
    """
    request = parse_create_args(args)
    if request is None:
        return None
    try:
        with open(stamp_path(request), encoding="utf-8") as handle:
            stamp = json.load(handle)
    except (OSError, ValueError):
        return None
    if not isinstance(stamp, dict) or stamp.get("request") != request:
        return None
    if not _inputs_unchanged(stamp):
        return None
    target = stamp.get("target")
    if not isinstance(target, list) or len(target) != 3:
        return None
    listed = _listed_digests(target)
    if listed is None:
        return None
    models = stamp.get("models") or {}
    if not models or any(listed.get(name) != digest for name, digest in models.items()):
        return None
    return list(stamp.get("variants") or [])


def record(
    request: list[object],
    *,
    host_url: str,
    catalog_file: str,
    templates_dir: str,
    weights_files: list[str],
    variants: list[str],
    models: list[str],
    listed: dict[str, str],
) -> bool:
    """Stamp a finished `create`; False (and no stamp) if a model it made is not listed.

    Written atomically; a stamp that cannot be written only costs the next run its shortcut.
    """
    from qwq_ollama.atomic import write_text_atomic

    digests = {tag_name(m): listed.get(tag_name(m)) for m in models}
    target = connection_target(host_url)
    if target is None or not all(digests.values()) or _names_a_secret(request):
        forget(request)
        return False
    sources = {
        "catalog_file": catalog_file,
        "templates_dir": templates_dir,
        "weights_files": list(weights_files),
    }
    stamp = {
        "request": request,
        "target": target,
        "sources": sources,
        "inputs": fingerprint(catalog_file, templates_dir, list(weights_files)),
        "models": digests,
        "variants": variants,
    }
    try:
        write_text_atomic(stamp_path(request), json.dumps(stamp, indent=1, sort_keys=True) + "\n")
    except OSError:
        return False
    return True


def _names_a_secret(request: list[object]) -> bool:
    """Whether a raw host value of the request (--host, $OLLAMA_HOST) carries credentials or a
    query: a stamp repeats its request on disk, so such a request gets none."""
    from qwq_ollama.daemon.host import redact

    hosts = (request[5], request[8])  # see request_for
    return any(isinstance(v, str) and redact(v) != v for v in hosts)  # the one secrets rule


def forget(request: list[object]) -> None:
    """Drop the stamp of a request that no stamp can vouch for (e.g. Hub weights)."""
    try:
        os.unlink(stamp_path(request))
    except OSError:
        pass
