"""Which instruction sets our Ollama builds use: only those a CPU claims and was seen to run.

The flag sets under tests/data/cpuinfo are /proc/cpuinfo `flags` lines: recorded on this machine
kind's AMD EPYC (AVX-512, no AMX) and on the GPU machine's Intel Xeon, which lists AMX like the
CPU of the failed CI run; and, written for the test, an AVX2-only Haswell and an AVX-512
Skylake-X without AMX. The probe tests run the real probe here: where this
CPU lacks an instruction set, executing it must die of SIGILL and be refused.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from qwq_ollama.engines import cpu_features
from qwq_ollama.engines.cpu_features import (
    BY_OPTION,
    FEATURES,
    Choice,
    claimed,
    cmake_options,
    gcc_flags,
    still_runs,
)
from qwq_ollama.engines.install import COMPAT, find_ollama
from qwq_ollama.errors import InputError

CPUINFO = Path(__file__).parent / "data" / "cpuinfo"


def flags_of(name: str) -> frozenset[str]:
    return frozenset((CPUINFO / f"{name}.flags").read_text().split())


@pytest.mark.parametrize(
    "cpu, expected",
    [
        (
            "amd-epyc-avx512",
            (
                "SSE42",
                "AVX",
                "AVX2",
                "FMA",
                "F16C",
                "BMI2",
                "AVX512",
                "AVX512_VBMI",
                "AVX512_VNNI",
                "AVX512_BF16",
            ),
        ),
        (
            "intel-xeon-amx",
            (
                "SSE42",
                "AVX",
                "AVX2",
                "FMA",
                "F16C",
                "BMI2",
                "AVX_VNNI",
                "AVX512",
                "AVX512_VBMI",
                "AVX512_VNNI",
                "AVX512_BF16",
            ),
        ),
        ("intel-haswell-avx2", ("SSE42", "AVX", "AVX2", "FMA", "F16C", "BMI2")),
        ("intel-skylakex-avx512", ("SSE42", "AVX", "AVX2", "FMA", "F16C", "BMI2", "AVX512")),
    ],
)
def test_the_build_options_follow_what_each_cpu_lists(cpu: str, expected: tuple[str, ...]) -> None:
    options = claimed(flags_of(cpu))
    assert options == expected
    cmake = cmake_options(options)
    # AMX is off even on the Xeon that lists it; nothing native; every option said explicitly.
    assert {"-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF", "-DGGML_AMX_BF16=OFF"} <= set(cmake)
    assert not any("NATIVE" in o for o in cmake)
    assert {o.split("=")[0] for o in cmake} >= {f"-DGGML_{f.option}" for f in FEATURES}
    gcc = gcc_flags(options)
    assert gcc[:2] == ["-march=x86-64", "-mtune=generic"]
    assert not any("native" in f or "amx" in f for f in gcc)
    assert ("-mavx512f" in gcc) == ("AVX512" in options)


def test_an_instruction_set_without_its_base_is_not_used() -> None:
    # A VM that hides AVX2 but lists FMA and AVX-512: nothing above AVX is usable.
    flags = flags_of("intel-skylakex-avx512") - {"avx2"}
    assert claimed(flags) == ("SSE42", "AVX", "FMA", "F16C", "BMI2")


def test_off_x86_the_build_adds_no_flags() -> None:
    assert cmake_options((), x86=False) == [] and gcc_flags((), x86=False) == []


@pytest.fixture(scope="module")
def probe_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if cpu_features.cpu_flags() is None:
        pytest.skip("not an x86 Linux machine")
    folder = tmp_path_factory.mktemp("probe")
    cpu_features.compile_probe(folder / cpu_features.PROBE)
    return folder


def test_here_every_chosen_instruction_set_runs(probe_dir: Path) -> None:
    choice = cpu_features.choose(probe_dir)
    here = cpu_features.cpu_flags()
    assert here is not None
    assert set(choice.options) <= set(claimed(here))
    assert cpu_features.probe_runs(probe_dir / cpu_features.PROBE, choice.options) is None
    assert not any(name.startswith("AMX") for name in choice.options)


def missing_here() -> str:
    here = cpu_features.cpu_flags() or frozenset()
    absent = [f.option for f in FEATURES if not f.cpuinfo <= here]
    if not absent:
        pytest.skip("this CPU lists every instruction set the probe knows")
    return absent[-1]


def test_an_instruction_set_this_cpu_lacks_dies_of_sigill(probe_dir: Path) -> None:
    option = missing_here()
    assert (
        cpu_features.probe_runs(probe_dir / cpu_features.PROBE, [option]) == "illegal instruction"
    )


def test_the_limit_variable_leaves_instruction_sets_out(probe_dir: Path) -> None:
    choice = cpu_features.choose(probe_dir, limit=frozenset({"SSE42", "AVX", "AVX2"}))
    assert set(choice.options) <= {"SSE42", "AVX", "AVX2"}
    assert all(
        choice.refused.get(o) == "left out by QWQ_OLLAMA_CPU_OPTIONS"
        for o in claimed(cpu_features.cpu_flags() or ())
        if o not in choice.options
    )
    assert cpu_features.choose(probe_dir, limit=frozenset()).options == ()


def test_the_readme_example_keeps_what_it_names_where_the_cpu_runs_it(probe_dir: Path) -> None:
    """`AVX2 FMA F16C` (the README's value) keeps those sets and what they need, on a CPU that
    runs them; before, their prerequisites were left out with them, so the build fell back to
    the x86-64 baseline whatever the CPU."""
    every = cpu_features.choose(probe_dir)
    limited = cpu_features.choose(probe_dir, limit=cpu_features.wanted_options("AVX2 FMA F16C"))
    expected = {"SSE42", "AVX", "AVX2", "FMA", "F16C"} & set(every.options)
    assert set(limited.options) == expected
    if "AVX2" in every.options:
        assert "AVX2" in limited.options


@pytest.mark.parametrize("value", ["AVX2 AVX1024", "avx-2", "all"])
def test_an_unknown_option_name_is_refused(value: str) -> None:
    with pytest.raises(InputError, match=r"^QWQ_OLLAMA_CPU_OPTIONS: unknown option"):
        cpu_features.wanted_options(value)


def moved_cache(prefix: Path, probe_dir: Path, options: list[str]) -> Path:
    """A built prefix as another machine left it: its record, its probe, a stub binary."""
    (prefix / "bin").mkdir(parents=True)
    ollama = prefix / "bin" / "ollama"
    ollama.write_text(f"#!/bin/sh\necho 'ollama version is {COMPAT}'\n")
    ollama.chmod(ollama.stat().st_mode | stat.S_IXUSR)
    (prefix / cpu_features.PROBE).write_bytes((probe_dir / cpu_features.PROBE).read_bytes())
    (prefix / cpu_features.PROBE).chmod(0o755)
    cpu_features.write_record(prefix, Choice(tuple(options), {}, "another CPU"))
    return prefix


def test_a_cache_built_for_another_cpu_is_caught_before_use(
    probe_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    option = missing_here()
    tools = tmp_path / "tools"
    prefix = moved_cache(tools / f"ollama-{COMPAT}", probe_dir, [*BY_OPTION[option].needs, option])
    problem = still_runs(prefix)
    assert problem is not None and "illegal instruction" in problem and option in problem
    monkeypatch.setenv("QWQ_OLLAMA_TOOLS", str(tools))
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("QWQ_OLLAMA_BINARY", raising=False)
    lookup = find_ollama(COMPAT)
    assert lookup.binary is None  # never handed to a test or the demo
    assert any("rebuilds it for this CPU" in note for note in lookup.notes)


def test_a_cache_this_cpu_runs_is_used(
    probe_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tools = tmp_path / "tools"
    choice = cpu_features.choose(probe_dir)
    moved_cache(tools / f"ollama-{COMPAT}", probe_dir, list(choice.options))
    monkeypatch.setenv("QWQ_OLLAMA_TOOLS", str(tools))
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("QWQ_OLLAMA_BINARY", raising=False)
    found = find_ollama(COMPAT).binary
    assert found is not None and found.origin == "built"


def test_a_prefix_without_a_record_is_not_trusted(tmp_path: Path) -> None:
    problem = still_runs(tmp_path)
    assert problem is not None and "instruction sets are unknown" in problem
