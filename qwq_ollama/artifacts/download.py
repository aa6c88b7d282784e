"""Fetch one quantisation of a GGUF repository (the guide's `snapshot_download` step), exactly that
quant and all of its split parts, with huggingface_hub's own cache, token and offline handling."""

from __future__ import annotations

import os
import re
import sys
from collections import defaultdict
from pathlib import Path

from qwq_ollama.errors import EnvironmentProblem, InputError, QwqOllamaError

DEFAULT_REPO = "unsloth/QwQ-32B-GGUF"
KNOWN_QUANTS = (
    "Q2_K",
    "Q2_K_S",
    "Q2_K_L",
    "Q3_K_S",
    "Q3_K_M",
    "Q3_K_L",
    "Q3_K_XL",
    "Q4_0",
    "Q4_1",
    "Q4_K_S",
    "Q4_K_M",
    "Q4_K_L",
    "Q5_0",
    "Q5_1",
    "Q5_K_S",
    "Q5_K_M",
    "Q5_K_L",
    "Q6_K",
    "Q6_K_L",
    "Q8_0",
    "F16",
    "BF16",
    "F32",
    "IQ1_S",
    "IQ1_M",
    "IQ2_XXS",
    "IQ2_XS",
    "IQ2_S",
    "IQ2_M",
    "IQ3_XXS",
    "IQ3_XS",
    "IQ3_S",
    "IQ3_M",
    "IQ4_XS",
    "IQ4_NL",
    # Unsloth's dynamic quants
    "UD-IQ1_S",
    "UD-IQ1_M",
    "UD-IQ2_XXS",
    "UD-IQ2_M",
    "UD-IQ3_XXS",
    "UD-Q2_K_XL",
    "UD-Q3_K_XL",
    "UD-Q4_K_XL",
    "UD-Q5_K_XL",
    "UD-Q6_K_XL",
    "UD-Q8_K_XL",
)
_TOKEN_LIKE = re.compile(r"hf_[A-Za-z0-9]{8,}")


def download_gguf(
    repo_id: str = DEFAULT_REPO, quant: str = "Q4_K_M", local_dir: Path | None = None
) -> list[Path]:
    """The GGUF file(s) of `quant`, downloaded or from the cache; split parts in order.

    HF_HOME, HF_TOKEN, HF_ENDPOINT and HF_HUB_OFFLINE act as huggingface_hub documents them.
    """
    quant = check_quant(quant)
    hub_endpoint()
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(
            repo_id=repo_id,
            allow_patterns=allow_patterns(quant),
            ignore_patterns=ignore_patterns(quant),
            local_dir=local_dir,
        )
    except Exception as exc:
        problem = _translate(exc, repo_id, quant)
        if problem is None:
            raise
        raise problem from None
    return select_quant_files(Path(folder), repo_id, quant)


def hub_endpoint() -> str:
    """The Hub's address: $HF_ENDPOINT, else huggingface_hub's default; one that is not an
    http(s) URL is refused in one line, any secret in it hidden. Checked before
    huggingface_hub is imported, which parses the variable on import and fails with a
    traceback.

    >>> os.environ["HF_ENDPOINT"] = "https://alice:pw@[::1"
    >>> try:
    ...     hub_endpoint()
    ... finally:
    ...     del os.environ["HF_ENDPOINT"]
    Traceback (most recent call last):
    qwq_ollama.errors.InputError: HF_ENDPOINT: 'https://alice:***@[::1' is not an http(s) URL such as https://huggingface.co
    """
    raw = os.environ.get("HF_ENDPOINT")
    if raw:
        _check_endpoint(raw)
    from huggingface_hub import constants

    return _check_endpoint(str(constants.ENDPOINT))


def _check_endpoint(endpoint: str) -> str:
    from urllib.parse import urlsplit

    from qwq_ollama.redaction import redact

    try:
        parts = urlsplit(endpoint)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:
        valid = False
    if not valid or not endpoint.isprintable() or " " in endpoint:
        raise InputError(
            f"{redact(endpoint)[:120]!r} is not an http(s) URL such as https://huggingface.co",
            field="HF_ENDPOINT",
        )
    return endpoint.rstrip("/")


def check_quant(quant: str) -> str:
    """The canonical spelling of `quant` (case-insensitive), or InputError before any I/O."""
    canonical = quant.strip().upper()
    if canonical not in KNOWN_QUANTS:
        raise InputError(
            f"unknown quant {quant!r}: use one of {', '.join(KNOWN_QUANTS)}", field="quant"
        )
    return canonical


def _spellings(quant: str) -> list[str]:
    """Unsloth names files in upper case (QwQ-32B-Q4_K_M.gguf), Qwen in lower (qwq-32b-q4_k_m)."""
    return [quant, quant.lower()]


def allow_patterns(quant: str) -> list[str]:
    """`-Q4_K.gguf` must not pull in `-Q4_K_M.gguf`: the quant is followed by `.gguf` or `-000`."""
    return [pattern for q in _spellings(quant) for pattern in (f"*-{q}.gguf", f"*-{q}-*-of-*.gguf")]


def ignore_patterns(quant: str) -> list[str]:
    """Vision projectors share the quant suffix; a plain quant must not fetch the UD- one too."""
    patterns = ["*mmproj*"]
    if not quant.startswith("UD-"):
        patterns += [f"*-UD-{q}*" for q in _spellings(quant)] + [f"*-ud-{quant.lower()}*"]
    return sorted(set(patterns))


def _name_regex(quant: str) -> re.Pattern[str]:
    return re.compile(
        rf"^(?P<stem>.+)-{re.escape(quant)}"
        r"(?:-(?P<part>\d{5})-of-(?P<total>\d{5}))?\.gguf$",
        re.IGNORECASE,
    )


def select_quant_files(folder: Path, repo_id: str, quant: str) -> list[Path]:
    """The files in `folder` that are exactly `quant`: one GGUF, or every part of a split one."""
    names = [str(p.relative_to(folder)) for p in folder.rglob("*.gguf")]
    if not names or not _quant_groups(names, quant):
        raise _nothing_found(folder, repo_id, quant)
    chosen = select_quant_names(names, repo_id, quant)
    match = _name_regex(quant).match(Path(chosen[0]).name)
    total = int(match["total"]) if match and match["total"] else 0
    if total and len(chosen) != total:
        have = sorted(int(_name_regex(quant).match(Path(n).name)["part"]) for n in chosen)  # type: ignore[index]
        raise EnvironmentProblem(
            f"{repo_id} {quant}: split GGUF {match['stem']} is incomplete (have parts "  # type: ignore[index]
            f"{', '.join(map(str, have))} of {total}): run the download again with "
            "network access (unset HF_HUB_OFFLINE)"
        )
    return [folder / name for name in chosen]


def _quant_groups(
    names: list[str], quant: str
) -> dict[tuple[str, str, str], list[tuple[int, str]]]:
    pattern = _name_regex(quant)
    groups: dict[tuple[str, str, str], list[tuple[int, str]]] = defaultdict(list)
    for name in names:
        base = Path(name).name
        match = pattern.match(base)
        if match is None or "mmproj" in base.lower():
            continue
        if not quant.startswith("UD-") and match["stem"].upper().endswith("-UD"):
            continue
        key = (str(Path(name).parent), match["stem"], match["total"] or "")
        groups[key].append((int(match["part"] or 0), name))
    return groups


def select_quant_names(names: list[str], repo_id: str, quant: str) -> list[str]:
    """Of a repository's file names, those that are exactly `quant`, a split one's parts in
    order (its first part first); InputError when there is none or more than one."""
    groups = _quant_groups(names, quant)
    if not groups:
        raise InputError(
            f"{repo_id} has no GGUF named *-{quant}.gguf or "
            f"*-{quant}-0000N-of-0000M.gguf: pick a quant the repository lists",
            field="quant",
        )
    if len(groups) > 1:
        listed = ", ".join(sorted(n for g in groups.values() for _, n in g))
        raise InputError(
            f"{repo_id} has several {quant} GGUFs ({listed}): download the one you "
            "want with huggingface_hub directly",
            field="quant",
        )
    parts = sorted(next(iter(groups.values())))
    return [name for _, name in parts]


def _offline() -> bool:
    from huggingface_hub import is_offline_mode

    return is_offline_mode()


def _nothing_found(folder: Path, repo_id: str, quant: str) -> Exception:
    if _offline():
        return EnvironmentProblem(
            f"{repo_id} {quant}: no such GGUF in the local cache ({folder}) and HF_HUB_OFFLINE is "
            "set: unset HF_HUB_OFFLINE to download it"
        )
    return InputError(
        f"{repo_id} has no GGUF named *-{quant}.gguf or "
        f"*-{quant}-0000N-of-0000M.gguf: pick a quant the repository lists",
        field="quant",
    )


def _translate(exc: Exception, repo_id: str, quant: str) -> QwqOllamaError | None:
    """huggingface_hub's and httpx's errors as one line that says what to do; no token in it.

    None for anything else (a bug), which then propagates unchanged.
    """
    from huggingface_hub import errors

    what = f"{repo_id} {quant}"
    url = f"https://huggingface.co/{repo_id}"
    if isinstance(exc, errors.HFValidationError):
        return InputError(
            f"not a Hugging Face repository id: {repo_id!r} (want owner/name)", field="repo_id"
        )
    if isinstance(exc, errors.GatedRepoError):
        text = (
            f"{repo_id} is gated: accept its terms at {url} and set HF_TOKEN to a token of "
            "that account"
        )
    elif isinstance(exc, errors.RepositoryNotFoundError):
        text = (
            f"{repo_id} not found on the Hugging Face Hub, or private and HF_TOKEN has no "
            "access: check the name, or set HF_TOKEN"
        )
    elif isinstance(exc, errors.RevisionNotFoundError):
        text = f"{repo_id}: its main branch was not found on the Hugging Face Hub"
    elif isinstance(exc, getattr(errors, "IncompleteSnapshotError", ())):  # huggingface_hub 2.x
        text = (
            f"{what}: the cached snapshot is incomplete and the Hub cannot be reached: "
            "run the download again with network access"
        )
    elif isinstance(exc, errors.LocalEntryNotFoundError) and _offline():
        text = (
            f"{what}: nothing cached for this repository and HF_HUB_OFFLINE is set: unset "
            "HF_HUB_OFFLINE to download it"
        )
    elif isinstance(exc, errors.LocalEntryNotFoundError):
        cause = type(exc.__cause__).__name__ if exc.__cause__ else "no response"
        text = (
            f"{what}: could not reach the Hugging Face Hub ({cause}) and nothing is cached: "
            "check the network, proxy or HF_ENDPOINT, then try again"
        )
    elif isinstance(exc, errors.HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else "?"
        text = f"{what}: the Hugging Face Hub answered HTTP {status}: try again later"
    elif isinstance(exc, OSError):
        text = (
            f"{what}: download failed ({exc.strerror or type(exc).__name__}): check free "
            "disk space and the permissions of the cache (HF_HOME)"
        )
    elif isinstance(exc, ValueError) and "'..'" in str(exc):
        # huggingface_hub refuses a listed name with a `..` segment (a path out of the
        # folder) before anything is written: the Hub's answer is hostile, not our call
        text = (
            f"{what}: the Hub listed a file whose name leaves the repository's folder "
            "(a '..' segment): refused, nothing was downloaded"
        )
    elif is_http_error(exc):
        text = (
            f"{what}: network error during download ({type(exc).__name__}): check the "
            "network, then run it again (finished files are kept)"
        )
    else:
        return None
    return EnvironmentProblem(scrub_secrets(text))


def is_http_error(exc: Exception) -> bool:
    """huggingface_hub 2.x talks through httpx2, 1.x through httpx; whichever raised is loaded."""
    for name in ("httpx2", "httpx"):
        module = sys.modules.get(name)
        if module is not None and isinstance(exc, module.HTTPError):
            return True
    return False


def scrub_secrets(text: str) -> str:
    """Never echo a token, even if a path or a server message happened to contain it."""
    from huggingface_hub import get_token

    for secret in {
        os.environ.get("HF_TOKEN"),
        os.environ.get("HUGGING_FACE_HUB_TOKEN"),
        get_token(),
    }:
        if secret:
            text = text.replace(secret, "***")
    return _TOKEN_LIKE.sub("hf_***", text)
