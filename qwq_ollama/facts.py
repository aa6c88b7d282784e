"""Facts about Ollama and QwQ's chat format that several modules rely on, kept in one place.

Each comes from a source read at a pinned tag (see ../shared/reference in the project's notes and
the docstrings that use them); a new Ollama release is adopted by changing this file first.
"""

from __future__ import annotations

# The release users install now (its private daemon drives the demo and the bench), the one
# most ran before it, and the last release with the in-process cgo engine, kept as the
# compatibility target. All three are built from source and tested; every release between the
# oldest and the newest is supported, and a newer one is checked with a note that it is untested.
OLLAMA_CURRENT = "0.34.4"
OLLAMA_PREVIOUS = "0.32.15"
OLLAMA_COMPAT = "0.24.0"
OLLAMA_TESTED = (OLLAMA_CURRENT, OLLAMA_PREVIOUS, OLLAMA_COMPAT)
OLLAMA_MINIMUM = OLLAMA_COMPAT

# Without OLLAMA_CONTEXT_LENGTH, a daemon on a CPU-only or small-GPU machine (under 23 GiB of
# VRAM) gives a model a 4096-token context: server/routes.go on both tested releases.
DAEMON_DEFAULT_CONTEXT = 4096
# Below this a QwQ thinking trace (thousands of tokens) is routinely cut off.
MIN_REASONING_CONTEXT = 8192

# ChatML, as QwQ's tokenizer spells it.
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
END_OF_TEXT = "<|endoftext|>"
CHATML_SPECIAL = (IM_END, IM_START, END_OF_TEXT)
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
# QwQ's official generation prompt opens the reasoning for the model.
THINK_PREFILL = THINK_OPEN + "\n"


def version_tuple(version: str) -> tuple[int, ...] | None:
    """`0.32.15` -> (0, 32, 15); None for what is not a release number (`0.0.0` dev builds too).

    >>> version_tuple("0.32.15"), version_tuple("0.24.0-rc1"), version_tuple("0.0.0")
    ((0, 32, 15), (0, 24, 0), None)
    """
    core = version.strip().lstrip("v").split("-", 1)[0].split("+", 1)[0]
    parts = core.split(".")
    if not all(p.isdigit() for p in parts) or len(parts) < 2:
        return None
    numbers = tuple(int(p) for p in parts)
    return None if not any(numbers) else numbers


def is_supported(version: str) -> bool | None:
    """Whether a daemon of this version is new enough; None when the version says nothing."""
    mine = version_tuple(version)
    return None if mine is None else mine >= version_tuple(OLLAMA_MINIMUM)  # type: ignore[operator]


# From 0.30 on, GGUF models run in a separate llama-server process (llama.cpp, pinned by the
# release). From 0.30 to 0.34.0 `create` also validates each GGUF with llama-quantize, writing a
# converted copy beside the uploaded blob: an import needs twice the file's size free. From
# 0.34.1 the model layer is the uploaded blob itself, and llama-quantize is never run
# (server/create.go ggufLayersWithMediaType).
LLAMA_SERVER_SINCE = (0, 30)
SINGLE_COPY_IMPORT_SINCE = (0, 34, 1)
# From 0.33.3 the daemon reads `general.sampling.*` from the GGUF as defaults beneath the
# Modelfile's PARAMETERs, and /api/show does not list them (server/images.go, routes.go).
GGUF_SAMPLING_SINCE = (0, 33, 3)
# From 0.34.0 /api/create, chat and generate refuse these (server/create.go, routes.go).
TYPICAL_P_REFUSED_SINCE = (0, 34, 0)
ADAPTERS_REFUSED_SINCE = (0, 34, 0)
# The error text a v0.34 daemon ends a generation with after 100 identical chunks; v0.32 ended
# such a stream silently after 30 (llm/llama_server.go).
TOKEN_REPEAT_ERROR = "token repeat limit reached"


def engine_of(version: str) -> str:
    """Which engine a daemon of this version runs QwQ (qwen2) and SmolLM2 (llama) on."""
    mine = version_tuple(version)
    if mine is not None and mine < LLAMA_SERVER_SINCE:
        return "Ollama's built-in llama.cpp runner (cgo)"
    return "llama-server (a llama.cpp build pinned by the release)"


def import_copies(version: str) -> int:
    """How many copies of a GGUF an import leaves on the daemon's disk at its peak."""
    mine = version_tuple(version)
    if mine is None:
        return 2  # a dev build says nothing: assume the larger need
    return 2 if LLAMA_SERVER_SINCE <= mine < SINGLE_COPY_IMPORT_SINCE else 1


def at_least(version: str, since: tuple[int, ...]) -> bool:
    """Whether a daemon reporting `version` has a behaviour added in `since`; a dev build
    (`0.0.0`, unparseable) is taken to be new.

    >>> at_least("0.34.4", (0, 33, 3)), at_least("0.32.15", (0, 33, 3)), at_least("0.0.0", (1,))
    (True, False, True)
    """
    mine = version_tuple(version)
    return True if mine is None else mine >= since


def is_untested_newer(version: str) -> bool:
    """A release newer than the newest one built and tested here (still supported)."""
    mine = version_tuple(version)
    return mine is not None and mine > version_tuple(OLLAMA_CURRENT)  # type: ignore[operator]
