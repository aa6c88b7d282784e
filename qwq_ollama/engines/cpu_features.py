"""Which x86 instruction sets our Ollama builds use: those this CPU both claims and runs.

ggml compiles its CPU code for the instruction sets it is told to use and never checks at run
time whether the CPU executes them. Compiling for "this machine" and /proc/cpuinfo are not
proof: in a VM, CPUID can list AVX-512 or AMX that the kernel or the hypervisor has not
enabled, and AMX tile data needs the kernel's permission for each process. So each instruction set is *probed*: a tiny
C program executes one of its instructions in a child process, and only what ran is used.

AMX is never used: Ollama v0.24's cgo build does not compile the AMX buffer type ggml then calls
(the link fails), and a llama-server built with it died of SIGILL where CPUID claimed it.

The probe binary stays in the build's prefix with a record of what the build uses, so a tools
cache copied to, or shared with, another machine is checked there in a millisecond
(`still_runs`) before anything starts.
"""

from __future__ import annotations

import json
import platform
import re
import signal
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from qwq_ollama.atomic import staged_file, write_text_atomic

RECORD = "cpu-features.json"
PROBE = "cpu-probe"


@dataclass(frozen=True)
class Feature:
    """One of ggml's x86 build options, what it needs, and how to show it runs."""

    option: str  # ggml's CMake option, GGML_<option>
    cpuinfo: frozenset[str]  # the /proc/cpuinfo flags it needs
    gcc: tuple[str, ...]  # the compiler flags ggml's CMake adds for it
    needs: tuple[str, ...]  # options that must be on too
    probe: str  # C body executing one of its instructions (reads `seed`, writes `sink`)


_AVX512 = ("AVX512",)
FEATURES = (
    Feature(
        "SSE42",
        frozenset({"sse4_2"}),
        ("-msse4.2",),
        (),
        "sink = _mm_crc32_u32((unsigned)seed, 7u);",
    ),
    Feature(
        "AVX",
        frozenset({"avx"}),
        ("-mavx",),
        ("SSE42",),
        "__m256 a = _mm256_set1_ps((float)seed); a = _mm256_add_ps(a, a);"
        " sink = (long long)_mm256_cvtss_f32(a);",
    ),
    Feature(
        "AVX2",
        frozenset({"avx2"}),
        ("-mavx2",),
        ("AVX",),
        "__m256i a = _mm256_set1_epi32(seed); a = _mm256_add_epi32(a, a);"
        " sink = _mm256_cvtsi256_si32(a);",
    ),
    Feature(
        "FMA",
        frozenset({"fma"}),
        ("-mfma",),
        ("AVX",),
        "__m256 a = _mm256_set1_ps((float)seed); a = _mm256_fmadd_ps(a, a, a);"
        " sink = (long long)_mm256_cvtss_f32(a);",
    ),
    Feature(
        "F16C",
        frozenset({"f16c"}),
        ("-mf16c",),
        ("AVX",),
        "__m128 f = _mm_cvtph_ps(_mm_set1_epi16((short)seed)); sink = (long long)_mm_cvtss_f32(f);",
    ),
    Feature(
        "BMI2", frozenset({"bmi2"}), ("-mbmi2",), (), "sink = _pdep_u32((unsigned)seed, 0xff00ffu);"
    ),
    Feature(
        "AVX_VNNI",
        frozenset({"avx_vnni"}),
        ("-mavxvnni",),
        ("AVX2",),
        "__m256i a = _mm256_set1_epi32(seed);"
        " sink = _mm256_cvtsi256_si32(_mm256_dpbusd_avx_epi32(a, a, a));",
    ),
    Feature(
        "AVX512",
        frozenset({"avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw"}),
        ("-mavx512f", "-mavx512cd", "-mavx512vl", "-mavx512dq", "-mavx512bw"),
        ("AVX2",),
        "__m512i a = _mm512_set1_epi32(seed); a = _mm512_conflict_epi32(a);"
        " a = _mm512_add_epi8(a, a); a = _mm512_castps_si512(_mm512_xor_ps("
        "_mm512_castsi512_ps(a), _mm512_castsi512_ps(a))); sink = _mm512_cvtsi512_si32(a)"
        " + _mm256_cvtsi256_si32(_mm256_maskz_add_epi32(3, _mm256_set1_epi32(seed),"
        " _mm256_set1_epi32(seed)));",
    ),
    Feature(
        "AVX512_VBMI",
        frozenset({"avx512vbmi"}),
        ("-mavx512vbmi",),
        _AVX512,
        "__m512i a = _mm512_set1_epi32(seed);"
        " sink = _mm512_cvtsi512_si32(_mm512_permutexvar_epi8(a, a));",
    ),
    Feature(
        "AVX512_VNNI",
        frozenset({"avx512_vnni"}),
        ("-mavx512vnni",),
        _AVX512,
        "__m512i a = _mm512_set1_epi32(seed);"
        " sink = _mm512_cvtsi512_si32(_mm512_dpbusd_epi32(a, a, a));",
    ),
    Feature(
        "AVX512_BF16",
        frozenset({"avx512_bf16"}),
        ("-mavx512bf16",),
        _AVX512,
        "__m512 a = _mm512_set1_ps((float)seed);"
        " __m512bh b = _mm512_cvtne2ps_pbh(a, a);"
        " sink = _mm512_cvtsi512_si32((__m512i)b);",
    ),
)
BY_OPTION = {f.option: f for f in FEATURES}
# Never turned on, whatever the CPU claims (see the module docstring).
NEVER = ("AMX_TILE", "AMX_INT8", "AMX_BF16")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str] | None:
    """The first CPU's flags, or None where there is no x86 `flags` line (not Linux x86)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return None
    match = re.search(r"^flags\s*:(.*)$", text, re.MULTILINE)
    return frozenset(match.group(1).split()) if match else None


def claimed(flags: Iterable[str]) -> tuple[str, ...]:
    """The options whose flags the CPU lists, closed under `needs`, in FEATURES order.

    >>> claimed({"sse4_2", "avx", "avx2", "fma", "f16c", "amx_tile"})
    ('SSE42', 'AVX', 'AVX2', 'FMA', 'F16C')
    """
    have = frozenset(flags)
    return closed_under_needs(f.option for f in FEATURES if f.cpuinfo <= have)


def closed_under_needs(options: Iterable[str]) -> tuple[str, ...]:
    """Drop each option whose prerequisites are not all kept (after a probe failed)."""
    kept: list[str] = []
    wanted = set(options)
    for feature in FEATURES:
        if feature.option in wanted and all(n in kept for n in feature.needs):
            kept.append(feature.option)
    return tuple(kept)


def cmake_options(options: Iterable[str], *, x86: bool = True) -> list[str]:
    """`-DGGML_<X>=ON|OFF` for every x86 option ggml has, AMX always OFF; none elsewhere."""
    if not x86:
        return []
    on = set(options)
    return [f"-DGGML_{f.option}={'ON' if f.option in on else 'OFF'}" for f in FEATURES] + [
        f"-DGGML_{name}=OFF" for name in NEVER
    ]


def gcc_flags(options: Iterable[str], *, x86: bool = True) -> list[str]:
    """Compiler flags for a cgo build: a generic x86-64 baseline plus exactly these sets."""
    if not x86:
        return []
    on = set(options)
    flags = ["-march=x86-64", "-mtune=generic"]
    for feature in FEATURES:
        if feature.option in on:
            flags.extend(feature.gcc)
    return flags


def probe_source() -> str:
    """One C program: `cpu-probe OPTION ...` executes an instruction of each; SIGILL if not."""
    parts = [
        "#include <immintrin.h>",
        "#include <string.h>",
        "static volatile int seed = 3;",
        "static volatile long long sink;",
    ]
    dispatch = []
    for feature in FEATURES:
        target = ",".join(flag[2:] for flag in feature.gcc)
        for need in feature.needs:  # a function's target must include what its body uses
            target = ",".join(flag[2:] for flag in BY_OPTION[need].gcc) + "," + target
        name = f"probe_{feature.option.lower()}"
        parts.append(
            f'__attribute__((target("{target}"), noinline)) static void {name}(void)'
            f" {{ {feature.probe} }}"
        )
        dispatch.append(f'if (!strcmp(argv[i], "{feature.option}")) {name}(); else')
    parts.append(
        "int main(int argc, char **argv) {\n  for (int i = 1; i < argc; i++) {\n    "
        + "\n    ".join(dispatch)
        + "\n    return 2;\n  }\n  return 0;\n}"
    )
    return "\n".join(parts) + "\n"


class ProbeError(Exception):
    """The probe program could not be compiled: the reason, one line."""


def compile_probe(out: Path, cc: str = "gcc") -> Path:
    """Build the probe with the baseline flags only (each function carries its own target)."""
    with staged_file(out) as partial:
        source = partial.parent / "cpu-probe.c"
        source.write_text(probe_source())
        try:
            proc = subprocess.run(
                [cc, "-O1", "-march=x86-64", "-o", str(partial), str(source)],
                capture_output=True,
                text=True,
                timeout=120,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ProbeError(f"cannot run {cc}: {exc}") from None
        if proc.returncode != 0:
            first = next(
                (ln for ln in proc.stderr.splitlines() if "error" in ln), proc.stderr.strip()[:200]
            )
            raise ProbeError(f"{cc} could not compile the instruction-set probe: {first}")
    return out


def probe_runs(probe: Path, options: Iterable[str]) -> str | None:
    """None when every option's instruction ran; else why not, in a few words."""
    options = list(options)
    if not options:
        return None
    try:
        proc = subprocess.run([str(probe), *options], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"the probe did not run ({exc})"
    if proc.returncode == 0:
        return None
    if proc.returncode == -signal.SIGILL:
        return "illegal instruction"
    if proc.returncode < 0:
        return f"killed by {signal.Signals(-proc.returncode).name}"
    return f"exit code {proc.returncode}"


def runnable(probe: Path, flags: Iterable[str]) -> tuple[tuple[str, ...], dict[str, str]]:
    """The claimed options whose instructions ran here, and why each other claimed one did not."""
    listed = claimed(flags)
    refused: dict[str, str] = {}
    for option in listed:
        problem = probe_runs(probe, [option])
        if problem:
            refused[option] = problem
    kept = closed_under_needs(o for o in listed if o not in refused)
    for option in listed:
        if option not in kept and option not in refused:
            refused[option] = "needs " + ", ".join(
                n for n in BY_OPTION[option].needs if n not in kept
            )
    return kept, refused


@dataclass(frozen=True)
class Choice:
    """What a build uses, and why the rest of what the CPU claims was left out."""

    options: tuple[str, ...]
    refused: dict[str, str]
    cpu: str
    x86: bool = True

    def describe(self) -> str:
        used = " ".join(self.options) or "baseline x86-64 only"
        left = "; ".join(f"{k}: {v}" for k, v in self.refused.items())
        return used + (f" (claimed but not run here: {left})" if left else "")


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    try:
        text = cpuinfo.read_text()
    except OSError:
        return platform.processor() or platform.machine()
    match = re.search(r"^model name\s*:\s*(.*)$", text, re.MULTILINE)
    return match.group(1).strip() if match else platform.machine()


def wanted_options(value: str | None) -> frozenset[str] | None:
    """`QWQ_OLLAMA_CPU_OPTIONS` read: None (no limit), or the options to keep at most.

    A named option brings the ones it needs (AVX2 needs AVX, which needs SSE42), so the
    README's `AVX2 FMA F16C` keeps those three and what they stand on, not the baseline alone.
    A name ggml does not have is refused (InputError, exit 2), never silently dropped.

    >>> sorted(wanted_options("avx2, FMA f16c")), wanted_options("none"), wanted_options("")
    (['AVX', 'AVX2', 'F16C', 'FMA', 'SSE42'], frozenset(), None)
    >>> wanted_options("AVX2 AVX1024")
    Traceback (most recent call last):
    qwq_ollama.errors.InputError: QWQ_OLLAMA_CPU_OPTIONS: unknown option 'AVX1024': use ggml's names (SSE42, AVX, AVX2, FMA, F16C, BMI2, AVX_VNNI, AVX512, AVX512_VBMI, AVX512_VNNI, AVX512_BF16), or none
    """
    if value is None or not value.strip():
        return None
    names = frozenset(v.upper() for v in re.split(r"[\s,]+", value.strip()) if v)
    if names == {"NONE"}:
        return frozenset()
    known = {f.option: f for f in FEATURES}
    unknown = sorted(names - set(known))
    if unknown:
        from qwq_ollama.errors import InputError

        raise InputError(
            f"unknown option {unknown[0][:40]!r}: use ggml's names ({', '.join(known)}), or none",
            field="QWQ_OLLAMA_CPU_OPTIONS",
        )
    wanted: set[str] = set()
    pending = list(names)
    while pending:
        option = pending.pop()
        if option not in wanted:
            wanted.add(option)
            pending.extend(known[option].needs)
    return frozenset(wanted)


def choose(
    probe_dir: Path, cpuinfo: Path = Path("/proc/cpuinfo"), limit: frozenset[str] | None = None
) -> Choice:
    """Every option this CPU claims and runs (at most those in `limit`), the probe compiled
    into `probe_dir` and kept there; no options and no probe off x86 (ggml's defaults)."""
    flags = cpu_flags(cpuinfo)
    if flags is None:
        return Choice((), {}, cpu_model(cpuinfo), x86=False)
    options, refused = runnable(compile_probe(probe_dir / PROBE), flags)
    if limit is not None:
        refused |= {o: "left out by QWQ_OLLAMA_CPU_OPTIONS" for o in options if o not in limit}
        options = closed_under_needs(o for o in options if o in limit)
    return Choice(options, refused, cpu_model(cpuinfo))


def write_record(prefix: Path, choice: Choice) -> None:
    """What this build needs of a CPU, beside the probe that checks it, in the prefix."""
    write_text_atomic(
        prefix / RECORD,
        json.dumps(
            {
                "options": list(choice.options),
                "built_on": choice.cpu,
                "claimed_not_run": choice.refused,
            },
            indent=2,
        )
        + "\n",
    )


def read_record(prefix: Path) -> dict[str, object] | None:
    try:
        data = json.loads((prefix / RECORD).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def still_runs(prefix: Path) -> str | None:
    """None when this CPU runs what the build in `prefix` uses; else one line saying why not.

    A prefix without a record (built before records existed) is not trusted either.
    """
    record = read_record(prefix) or {}
    listed = record.get("options")
    if not isinstance(listed, list):
        return f"{prefix / RECORD} is missing: the build's instruction sets are unknown"
    options = [str(o) for o in listed]
    if not options:
        return None
    unknown = [o for o in options if o not in BY_OPTION]
    if unknown:
        return f"{prefix / RECORD} names instruction sets this tool does not know: {unknown}"
    problem = probe_runs(prefix / PROBE, options)
    if problem:
        return (
            f"built on {record.get('built_on', 'another CPU')} for {' '.join(options)}, "
            f"which this CPU does not run ({problem})"
        )
    return None
