"""The one redaction of secrets in URLs, for every place one comes from: `--host`, $OLLAMA_HOST,
fleet files, GGUF URLs, $HF_ENDPOINT. Applied before any text holding a URL is printed, logged
or written, to values that parse and values that do not.

What a URL can hide: a user and password (`https://alice:s3cret@proxy`, or a bare token as
`https://TOKEN@proxy`), query items (`?token=abc`, or a bare `?abc`) and a fragment. The user
name stays visible when a password follows it; everything else is `***`, and so is any query
item, with or without a value, unless its key is known to be harmless.

It sits below every layer (the server's host parser and the artifacts' GGUF reader both use
it) and imports nothing but the standard library's string methods.
"""

from __future__ import annotations

MASK = "***"
# Query keys that never carry a credential: shown as written. Anything else is a secret.
HARMLESS_QUERY_KEYS = frozenset({"download", "recursive", "expand", "revision", "ref"})
_NOT_IN_USER = set("/?#[]")


def redact_query(query: str) -> str:
    """A query string with every value, and every item that is not `key=value` with a harmless
    key, shown as `***`.

    >>> redact_query("token=abc&download=true&sig")
    'token=***&download=true&***'
    >>> redact_query("hf_abcdef")
    '***'
    """
    parts = []
    for item in query.split("&"):
        if not item:
            continue
        name, eq, _ = item.partition("=")
        if eq and name in HARMLESS_QUERY_KEYS:
            parts.append(item)
        else:
            parts.append(f"{name}={MASK}" if eq and name else MASK)
    return "&".join(parts)


def redact(text: str) -> str:
    """`text` (a URL or host value, well-formed or not) with its secrets as `***`.

    A password may hold `/`, `?`, `#` or `@` unescaped, as people type it: everything up to the
    last `@` is the user part, so none of it leaks through a wrong split.

    >>> redact("http://alice:pw@10.0.0.5:8080/x?token=abc"), redact("bob@[::1:8080")
    ('http://alice:***@10.0.0.5:8080/x?token=***', '***@[::1:8080')
    >>> redact("https://alice:a/b#c?d@proxy:1/p?sig"), redact("localhost:11434")
    ('https://alice:***@proxy:1/p?***', 'localhost:11434')
    >>> redact("hf://owner/repo@Q4_K_M"), redact("https://h/f.gguf#frag")
    ('hf://owner/repo@Q4_K_M', 'https://h/f.gguf#***')
    """
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    credentials = ""
    if "@" in rest and scheme != "hf":  # hf://owner/repo@QUANT names a quant, not a user
        userinfo, _, rest = rest.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        keep_user = colon and user and not (_NOT_IN_USER & set(user))
        credentials = f"{user}:{MASK}@" if keep_user else f"{MASK}@"
    rest, hash_, fragment = rest.partition("#")
    rest, qmark, query = rest.partition("?")
    shown = f"{scheme}{sep}{credentials}{rest}"
    if qmark and query:
        shown += f"?{redact_query(query)}"
    return shown + (f"#{MASK}" if hash_ and fragment else "")


def secret_words(text: str) -> list[str]:
    """The words (runs of letters and digits) of what `redact` hides in `text`: a message about
    a value that did not parse must quote none of them.

    >>> secret_words("http://alice:pa/ss@h:1/x?tok=ab1#f")
    ['alice', 'pa', 'ss', 'tok', 'ab1', 'f']
    """
    import re

    scheme, sep, rest = text.partition("://")
    rest = rest if sep else text
    hidden = []
    if "@" in rest and scheme != "hf":
        hidden.append(rest.rpartition("@")[0])
        rest = rest.rpartition("@")[2]
    rest, _, fragment = rest.partition("#")
    hidden += [rest.partition("?")[2], fragment]
    return [w for part in hidden for w in re.findall(r"[A-Za-z0-9]+", part)]


def holds_secret(text: str) -> bool:
    """Whether `text` carries anything `redact` hides.

    >>> holds_secret("http://a:b@h"), holds_secret("h:1"), holds_secret("h/?download=true")
    (True, False, False)
    """
    return redact(text) != text


class SecretURL:
    """A URL that cannot be shown with its secrets: `str`, `repr` and f-strings give the
    redacted form, JSON and pickling refuse it; only `parts()` (for the transport) reveals the
    user, password and query, each kept out of the base URL.

    >>> url = SecretURL("http://u:pw@h:1/p?token=t")
    >>> f"{url}", repr(url), url.parts()
    ('http://u:***@h:1/p?token=***', "SecretURL('http://u:***@h:1/p?token=***')", ('http://h:1/p', ('u', 'pw'), [('token', 't')]))
    """

    __slots__ = ("_url",)

    def __init__(self, url: str) -> None:
        self._url = url

    def __str__(self) -> str:
        return redact(self._url)

    def __repr__(self) -> str:
        return f"SecretURL({redact(self._url)!r})"

    def __format__(self, spec: str) -> str:
        return format(redact(self._url), spec)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a SecretURL is not written anywhere")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretURL) and other._url == self._url

    def __hash__(self) -> int:
        return hash(self._url)

    def parts(self) -> tuple[str, tuple[str, str] | None, list[tuple[str, str]]]:
        """The base URL with no user, password, query or fragment; the (user, password) to
        send as Basic auth; the query items to send as parameters."""
        from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

        split = urlsplit(self._url)
        auth = None
        if split.username is not None or split.password is not None:
            auth = (unquote(split.username or ""), unquote(split.password or ""))
        netloc = split.netloc.rpartition("@")[2]
        base = urlunsplit((split.scheme, netloc, split.path, "", ""))
        return base, auth, parse_qsl(split.query, keep_blank_values=True)
