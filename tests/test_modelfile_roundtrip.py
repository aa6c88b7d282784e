"""Property test: every SYSTEM, TEMPLATE and PARAMETER value we write into a Modelfile comes
back exactly from the real daemon after `ollama create -f`, or is refused before anything is
written. Zero silent changes. Refusals are checked too: Ollama really would have changed them."""

from __future__ import annotations

import os
import subprocess
import unicodedata
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from qwq_ollama.catalog.modelfile import Unrepresentable, parameter_value, quote_value
from qwq_ollama.daemon.answers import Shown
from qwq_ollama.daemon.client import OllamaAPI

from .conftest import f32

BUDGET = 150
TRICKY = [
    '"""',
    'say "hi"',
    '"quoted"',
    "a\r\nb",
    "\r",
    "  edges  ",
    "\ttab",
    'line\n"""\nnext',
    'ends with quotes"""',
    "FROM evil\nPARAMETER temperature 9",
    "# not a comment",
    "\\n\\t\\\\",
    "\u00a0nbsp",
    "zero\u200bwidth",
    "emoji 🚀 and 中文",
    "x" * 5000,
    "{{ .System }}",
    "\n",
]
printable = st.text(
    st.characters(
        codec="utf-8", categories=("L", "M", "N", "P", "S"), include_characters=' \t\r\n"\\'
    ),
    min_size=1,
    max_size=80,
)
# Mostly text a user would write, with tricky pieces and raw noise mixed in.
texts = st.one_of(
    printable,
    printable,
    printable,
    st.lists(
        st.sampled_from(TRICKY[:12] + ["a", " ", "\n", '"', '"""']), min_size=1, max_size=6
    ).map("".join),
    st.sampled_from(TRICKY),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=20),
)
go_plain_texts = texts.filter(lambda t: "{{" not in t and "}}" not in t)
numbers = st.floats(min_value=0.0, max_value=2.0, allow_nan=False, width=32)
seeds = st.integers(min_value=-(2**31), max_value=2**40)


def _create(binary: Path, host: str, text: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    modelfile = tmp / "Modelfile"
    modelfile.write_bytes(text.encode("utf-8"))
    return subprocess.run(
        [str(binary), "create", "roundtrip", "-f", str(modelfile)],
        capture_output=True,
        text=True,
        env={**os.environ, "OLLAMA_HOST": host, "HOME": str(tmp)},
    )


def test_values_round_trip_or_are_refused(
    ollama_binary, daemon, api: OllamaAPI, small_base: str, tmp_path_factory, capsys
) -> None:
    ran = {"kept": 0, "refused": 0}

    @settings(
        max_examples=BUDGET,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(system=texts, template=go_plain_texts, stop=texts, temperature=numbers, seed=seeds)
    def one_case(system: str, template: str, stop: str, temperature: float, seed: int) -> None:
        tmp = tmp_path_factory.mktemp("mf")
        try:
            lines = [
                f"FROM {small_base}",
                f"TEMPLATE {quote_value(template)}",
                f"SYSTEM {quote_value(system)}",
                f"PARAMETER stop {parameter_value(stop)}",
                f"PARAMETER temperature {parameter_value(temperature)}",
                f"PARAMETER seed {parameter_value(seed)}",
            ]
        except Unrepresentable:
            ran["refused"] += 1
            _assert_ollama_would_change_it(
                ollama_binary.path, daemon.host, api, small_base, tmp, system, template, stop
            )
            return
        result = _create(ollama_binary.path, daemon.host, "\n".join(lines) + "\n", tmp)
        assert result.returncode == 0, result.stderr
        shown = api.show("roundtrip") or Shown()
        assert shown.template == template
        assert shown.system == (system or None)
        params = shown.parameters
        assert params["stop"] == [stop]
        assert params["seed"] == seed or (abs(seed) > 2**53)
        assert f32(params["temperature"]) == f32(temperature)
        ran["kept"] += 1

    one_case()
    with capsys.disabled():
        print(
            f"\nModelfile round-trip: {ran['kept']} kept exactly, "
            f"{ran['refused']} refused up front, 0 silently changed"
        )
    assert ran["kept"] + ran["refused"] >= BUDGET


def _assert_ollama_would_change_it(
    binary: Path,
    host: str,
    api: OllamaAPI,
    base: str,
    tmp: Path,
    system: str,
    template: str,
    stop: str,
) -> None:
    """Write the naive triple-quoted form anyway: Ollama must fail or return something else.

    Empty values are refused by policy, not because Ollama alters them (an empty stop string
    would match everywhere; an empty SYSTEM is stored as none), so they are not replayed.
    """
    if "" in (system, template, stop):
        return
    # Characters this Python's Unicode tables do not know are refused to be safe; a newer Go
    # may know them, so those refusals are not replayed either.
    if any(unicodedata.category(ch) == "Cn" for ch in system + template + stop):
        return
    naive = (
        f'FROM {base}\nTEMPLATE """{template}"""\nSYSTEM """{system}"""\n'
        f'PARAMETER stop """{stop}"""\n'
    )
    result = _create(binary, host, naive, tmp)
    if result.returncode != 0:
        return
    shown = api.show("roundtrip") or Shown()
    back = (shown.template, shown.system, shown.parameters.get("stop"))
    assert back != (template, system, [stop]), "refused a value Ollama would have kept"
