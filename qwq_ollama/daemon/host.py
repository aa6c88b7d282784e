"""Where the Ollama daemon is: `--host`, else $OLLAMA_HOST, else the default; read as Ollama reads it.

The one reader of host values: the client, the quick `create` path and the CLI's up-front check
all use it. It runs before the CLI loads, so it imports nothing but `os` (not even urllib).

Every value Ollama (envconfig.Host, v0.24.0) and ollama-python (`_parse_host`) both accept means
the same here: no scheme is http on port 11434, `http://` is port 80 and `https://` port 443, a
path is kept. Where they differ, Ollama wins (a bare `ollama.com` is its cloud over https; an
unspecified address such as 0.0.0.0 is reached over loopback, as its own client does). Where they
guess (a port that is not one silently becomes the default), this refuses: InputError naming the
source, so exit 2 and one line.

A daemon behind an authenticating reverse proxy is written with its credentials in the URL
(`https://user:password@host:port`, sent as HTTP Basic auth) and, where the proxy wants one, a
token in the query string (sent with every request). Those are secrets: `DaemonAddress.display`
is the one form any message, table, report or log shows (`user:***@`, `?token=***`), `url` the
one the connection is made to (without them), and `redact` does the same to text that did not
parse (the one redaction, `qwq_ollama.redaction`, which the GGUF reader uses too). A bearer
token comes from $OLLAMA_API_KEY, as ollama-python reads it (daemon/client.py).
"""

from __future__ import annotations

import os

from qwq_ollama.errors import InputError
from qwq_ollama.redaction import redact, redact_query, secret_words

__all__ = ["DaemonAddress", "parse_host", "redact", "resolve_address", "resolve_host"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 11434
SCHEME_PORTS = {"http": 80, "https": 443}
# Characters no host name can hold: URL delimiters, quotes, brackets outside an IPv6 literal.
_NOT_IN_NAME = set("/\\?#@[]%\"'<>^`{|}:")


class DaemonAddress:
    """A daemon's scheme, host name (IPv6 without brackets), port and path prefix, and what a
    proxy in front of it may ask for: a user and password, query parameters."""

    __slots__ = ("scheme", "hostname", "port", "path", "username", "password", "query")

    def __init__(
        self,
        scheme: str,
        hostname: str,
        port: int,
        path: str,
        username: str | None = None,
        password: str | None = None,
        query: str = "",
    ) -> None:
        self.scheme, self.hostname, self.port, self.path = scheme, hostname, port, path
        self.username, self.password, self.query = username, password, query

    @property
    def netloc(self) -> str:
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        """Where to connect: no credentials, no query (the clients send those apart)."""
        return f"{self.scheme}://{self.netloc}{self.path}"

    @property
    def display(self) -> str:
        """The form every message shows: secrets as `***`.

        >>> parse_host("https://alice:s3cret@proxy.example:8443/ollama?token=abc&x=1",
        ...            "--host").display
        'https://alice:***@proxy.example:8443/ollama?token=***&x=***'
        >>> parse_host("localhost", "--host").display
        'http://localhost:11434'
        """
        user = ""
        if self.username is not None or self.password is not None:
            # a user alone may be a token (`https://TOKEN@host`): shown as *** too
            user = (
                f"{self.username}:***@" if self.username and self.password is not None else "***@"
            )
        query = f"?{redact_query(self.query)}" if self.query else ""
        return f"{self.scheme}://{user}{self.netloc}{self.path}{query}"

    @property
    def auth(self) -> tuple[str, str] | None:
        """HTTP Basic credentials, when the URL carries any."""
        if self.username is None and self.password is None:
            return None
        return (self.username or "", self.password or "")

    @property
    def params(self) -> list[tuple[str, str]]:
        """The query string's parameters, sent with every request."""
        if not self.query:
            return []
        from urllib.parse import parse_qsl

        return parse_qsl(self.query, keep_blank_values=True)

    @property
    def secret(self) -> bool:
        return self.auth is not None or bool(self.query)


def resolve_host(host: str | None = None) -> str:
    """`host` (from --host), else $OLLAMA_HOST, else the default; as one full URL to connect
    to (credentials and query left out: see `resolve_address`).

    >>> resolve_host("localhost")
    'http://localhost:11434'
    >>> resolve_host("0.0.0.0:1234")
    'http://127.0.0.1:1234'
    """
    return resolve_address(host).url


def resolve_address(host: str | None = None) -> DaemonAddress:
    """Like resolve_host, as parts; an unset or empty $OLLAMA_HOST means the default, as in Ollama."""
    if host is not None:
        return parse_host(host, "--host")
    value = os.environ.get("OLLAMA_HOST", "")
    if not _clean(value):
        return DaemonAddress("http", DEFAULT_HOST, DEFAULT_PORT, "")
    return parse_host(value, "OLLAMA_HOST")


def check_tls_variables() -> None:
    """$SSL_CERT_FILE / $SSL_CERT_DIR, when set, name a readable file / a folder: checked
    before the `ollama` package is imported, whose default client loads them on import and
    fails with a traceback."""
    for name, wanted in (("SSL_CERT_FILE", os.path.isfile), ("SSL_CERT_DIR", os.path.isdir)):
        value = os.environ.get(name)
        if value and not (wanted(value) and os.access(value, os.R_OK)):
            kind = "a readable file" if name == "SSL_CERT_FILE" else "a readable folder"
            raise InputError(f"{value[:200]!r} is not {kind} of CA certificates", field=name)


def _clean(value: str) -> str:
    """Ollama's own trimming of the variable: outer spaces, then outer quotes, then spaces."""
    return value.strip().strip("\"'").strip()


def parse_host(value: str, source: str) -> DaemonAddress:
    """Read one host value; `source` (`--host`, `OLLAMA_HOST`) is named in any refusal.

    The cases ollama-python's doctests list, and Ollama's own:

    >>> def url(value): return parse_host(value, "--host").url
    >>> url("1.2.3.4"), url(":56789"), url("1.2.3.4:56789")
    ('http://1.2.3.4:11434', 'http://127.0.0.1:56789', 'http://1.2.3.4:56789')
    >>> url("http://1.2.3.4"), url("https://1.2.3.4"), url("https://1.2.3.4:56789")
    ('http://1.2.3.4:80', 'https://1.2.3.4:443', 'https://1.2.3.4:56789')
    >>> url("example.com"), url("http://example.com"), url("https://example.com")
    ('http://example.com:11434', 'http://example.com:80', 'https://example.com:443')
    >>> url("example.com/"), url("example.com:56789/path/"), url("https://example.com:1/a/b")
    ('http://example.com:11434', 'http://example.com:56789/path', 'https://example.com:1/a/b')
    >>> url("[0001:002:003:0004::1]"), url("https://[::1]:56789/path")
    ('http://[0001:002:003:0004::1]:11434', 'https://[::1]:56789/path')
    >>> url("::1"), url("[::]:8080"), url("ollama.com"), url(" 'localhost:8080' ")
    ('http://[::1]:11434', 'http://[::1]:8080', 'https://ollama.com:443', 'http://localhost:8080')

    What Ollama would quietly turn into something else is refused:

    >>> url("[::1:11434")
    Traceback (most recent call last):
    qwq_ollama.errors.InputError: --host: '[::1:11434': '[' without a closing ']'
    >>> parse_host("localhost:99999", "OLLAMA_HOST")
    Traceback (most recent call last):
    qwq_ollama.errors.InputError: OLLAMA_HOST: 'localhost:99999': port 99999 is not in 1-65535
    >>> url("localhost:http")
    Traceback (most recent call last):
    qwq_ollama.errors.InputError: --host: 'localhost:http': port 'http' is not a number
    >>> url("http://")
    Traceback (most recent call last):
    qwq_ollama.errors.InputError: --host: 'http://': no host name
    >>> url("ftp://example.com")
    Traceback (most recent call last):
    qwq_ollama.errors.InputError: --host: 'ftp://example.com': scheme 'ftp' is not http or https
    """
    text = _clean(value)
    if not text:
        raise _refuse(source, value, "empty: give host[:port] or http(s)://host[:port]")
    if any(ch.isspace() or not ch.isprintable() for ch in text):
        raise _refuse(source, value, "contains spaces or control characters")
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "http", text
        if text == "ollama.com":
            scheme, rest = "https", "ollama.com:443"
    elif scheme not in SCHEME_PORTS:
        raise _refuse(source, value, f"scheme {scheme!r} is not http or https")
    rest = rest.partition("#")[0]
    rest, _, query = rest.partition("?")
    hostport, slash, path = rest.partition("/")
    username = password = None
    if "@" in hostport:
        userinfo, _, hostport = hostport.rpartition("@")
        username, colon, password_text = userinfo.partition(":")
        username, password = _unquote(username), _unquote(password_text) if colon else None
    default_port = SCHEME_PORTS[scheme] if sep else DEFAULT_PORT
    hostname, port = _split_hostport(hostport, default_port, source, value)
    return DaemonAddress(
        scheme,
        _connectable(hostname),
        port,
        ("/" + path).rstrip("/") if slash else "",
        username,
        password,
        query,
    )


def _unquote(text: str) -> str:
    """Percent-decoding, as a URL's user and password are written (`%40` for `@`)."""
    if "%" not in text:
        return text
    from urllib.parse import unquote

    return unquote(text)


def _split_hostport(hostport: str, default_port: int, source: str, value: str) -> tuple[str, int]:
    """(host name, port) of `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address."""
    if hostport.startswith("["):
        address, closed, after = hostport[1:].partition("]")
        if not closed:
            raise _refuse(source, value, "'[' without a closing ']'")
        if after and not after.startswith(":"):
            raise _refuse(source, value, f"unexpected {after!r} after ']'")
        if not _is_ipv6(address):
            raise _refuse(source, value, f"[{address}] is not an IPv6 address")
        return address, _port(after[1:], source, value) if after else default_port
    if hostport.count(":") > 1:  # an IPv6 address without brackets: Ollama gives it no port
        if not _is_ipv6(hostport):
            raise _refuse(
                source, value, f"{hostport!r} is not an IPv6 address; write [address]:port"
            )
        return hostport, default_port
    if not hostport:
        raise _refuse(source, value, "no host name")
    name, colon, port_text = hostport.partition(":")
    if any(ch in _NOT_IN_NAME for ch in name):
        raise _refuse(source, value, f"{name!r} is not a host name")
    return name or DEFAULT_HOST, _port(port_text, source, value) if colon else default_port


def _port(text: str, source: str, value: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise _refuse(source, value, f"port {text!r} is not a number" if text else "empty port")
    port = int(text)
    if not 1 <= port <= 65535:
        raise _refuse(source, value, f"port {port} is not in 1-65535")
    return port


def _is_ipv6(text: str) -> bool:
    if not text or not all(ch in "0123456789abcdefABCDEF:." for ch in text):
        return False  # also keeps zone ids (%eth0) out: a URL cannot carry them unescaped
    import ipaddress  # only for IPv6 literals: the quick path never gets here

    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _connectable(hostname: str) -> str:
    """An unspecified address can be bound to but not connected to: use loopback, as Ollama's
    client does."""
    if hostname == "0.0.0.0":
        return "127.0.0.1"
    if ":" in hostname and not hostname.strip(":0"):
        return "::1"
    return hostname


def _refuse(source: str, value: str, problem: str) -> InputError:
    """The refusal of `value`, shown redacted. A value holding a secret gets a problem that
    quotes none of its parts: a password with a `/` or `#` is misread as a port or a path, and
    quoting that part would print it."""
    shown = redact(value.strip())
    if any(word in problem for word in secret_words(value.strip())):
        problem = (
            "not http(s)://[USER:PASSWORD@]HOST[:PORT][/PATH]; in a password, write "
            "/ ? # @ as %2F %3F %23 %40"
        )
    return InputError(f"{shown!r}: {problem}", field=source)
