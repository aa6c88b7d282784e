"""Fast tests that kill the small, plausible bugs a test audit made (issue 31): each fails
with its bug in place and passes without it, in the fast tier."""

from __future__ import annotations

import pytest

from qwq_ollama.catalog.gguf_sampling import leaks
from qwq_ollama.daemon.host import parse_host
from qwq_ollama.redaction import redact


@pytest.mark.parametrize(
    "url",
    [
        "https://proxy.example/ollama?hf_abcdef123",
        "https://proxy.example/ollama?a=1&hf_abcdef123",
        "http://alice:pw@h:1/?hf_abcdef123#frag",
    ],
)
def test_a_valueless_query_item_is_never_shown(url: str) -> None:
    """(a) A bare `?TOKEN` is a token: shown as `***` whether the URL parses or not."""
    assert "hf_abcdef123" not in redact(url)
    assert "hf_abcdef123" not in parse_host(url, "--host").display


def test_only_known_harmless_query_keys_keep_their_values() -> None:
    assert (
        redact("https://h/f.gguf?download=true&sig=abc&X-Amz-Signature=s")
        == "https://h/f.gguf?download=true&sig=***&X-Amz-Signature=***"
    )


@pytest.mark.parametrize(
    ("gguf_temp", "leaked"),
    [
        (0.6, True),
        (0.79, True),
        (0.81, True),
        (0.8, False),
        (0.800000011920929, False),
    ],
)
def test_a_gguf_temperature_unlike_ollamas_default_is_a_leak(
    gguf_temp: float, leaked: bool
) -> None:
    """(b) A GGUF's temp of 0.6 under Ollama's default of 0.8 changes the sampling of a
    variant that leaves temperature unset; only float32's rounding of 0.8 is the same."""
    found = leaks({"top_p": 0.95}, {"general.sampling.temp": gguf_temp}, "0.34.4")
    assert bool(found) is leaked, found
    if leaked:
        assert found[0].startswith(f"the GGUF sets general.sampling.temp = {gguf_temp}")


def test_a_variant_that_sets_the_parameter_is_not_leaked_into() -> None:
    assert leaks({"temperature": 0.6}, {"general.sampling.temp": 0.8}, "0.34.4") == []
