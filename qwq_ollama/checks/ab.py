"""A/B comparison: the same prompt over several variants and seeds, summarised per variant.

This is how a user sees, on their own machine, that `qwq-fixed` beats `qwq-baseline`.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from qwq_ollama.atomic import atomic_writer
from qwq_ollama.catalog.prompts import NamedPrompt
from qwq_ollama.checks.generation import generate_watched
from qwq_ollama.server.client import OllamaAPI


@dataclass(frozen=True)
class RunStats:
    variant: str
    seed: int
    looped: bool
    loop_start_token: int | None
    first_token_seconds: float | None
    thinking_tokens: int
    answer_tokens: int
    tokens_per_second: float
    code_ok: bool | None  # None: the prompt asks for no code
    done_reason: str | None
    engine: str = "ollama"


@dataclass(frozen=True)
class VariantSummary:
    variant: str
    runs: int
    loop_rate: float
    first_token_seconds: float | None
    thinking_tokens: float
    answer_tokens: float
    tokens_per_second: float
    code_compile_rate: float | None
    engine: str = "ollama"


def code_compiles(answer: str) -> bool:
    from qwq_ollama.checks.code import check_code, extract_last_python_block

    source = extract_last_python_block(answer)
    return source is not None and check_code(source).ok


def run_once(api: OllamaAPI, variant: str, prompt: NamedPrompt, seed: int,
             num_predict: int, engine: str = "ollama") -> RunStats:
    """One streamed run; `api` is an OllamaAPI or, for llama.cpp, a LlamaServerAPI running
    `variant` (both stream parts of the same shape)."""
    result, verdict = generate_watched(api, variant, prompt.text,
                                       options={"seed": seed, "num_predict": num_predict})
    thinking = sum(1 for kind, _ in result.chunks if kind == "thinking")
    answer = sum(1 for kind, _ in result.chunks if kind == "content")
    return RunStats(variant, seed, verdict is not None,
                    verdict.loop_start_token if verdict else None, result.first_token_seconds,
                    thinking, answer, result.tokens_per_second,
                    code_compiles(result.content) if prompt.code else None, result.done_reason,
                    engine)


def summarise(runs: list[RunStats]) -> list[VariantSummary]:
    by_variant: dict[tuple[str, str], list[RunStats]] = {}
    for run in runs:
        by_variant.setdefault((run.variant, run.engine), []).append(run)
    summaries = []
    for (variant, engine), group in by_variant.items():
        ttft = [r.first_token_seconds for r in group if r.first_token_seconds is not None]
        code = [r.code_ok for r in group if r.code_ok is not None]
        # A run that stopped at its first token has no decode rate (0): left out.
        rates = [r.tokens_per_second for r in group if r.tokens_per_second > 0] or [0.0]
        summaries.append(VariantSummary(
            variant, len(group), sum(r.looped for r in group) / len(group),
            statistics.median(ttft) if ttft else None,
            statistics.median(r.thinking_tokens for r in group),
            statistics.median(r.answer_tokens for r in group),
            statistics.median(rates),
            sum(code) / len(code) if code else None, engine))
    return summaries


def compare_variants(api: OllamaAPI, variants: list[str], prompt: NamedPrompt, seeds: int,
            num_predict: int, progress: Callable[[str], None] | None = None,
            engine: str = "ollama") -> tuple[list[VariantSummary], list[RunStats]]:
    say = progress or (lambda _m: None)
    runs = []
    for variant in variants:
        for seed in range(1, seeds + 1):
            say(f"{variant} seed {seed}" + ("" if engine == "ollama" else f" on {engine}"))
            runs.append(run_once(api, variant, prompt, seed, num_predict, engine))
    return summarise(runs), runs


def comparison_dict(prompt: NamedPrompt, summaries: list[VariantSummary],
                    runs: list[RunStats]) -> dict[str, Any]:
    """What `compare --json` prints: the summary per variant and every run behind it."""
    return {"prompt": prompt.name, "summaries": [asdict(s) for s in summaries],
            "runs": [asdict(r) for r in runs]}


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def _engines_differ(items: list[Any]) -> bool:
    """An engine column only when engines are compared side by side."""
    return len({item.engine for item in items}) > 1


def table_rows(summaries: list[VariantSummary]) -> list[list[str]]:
    both = _engines_differ(summaries)
    header = ["variant", *(["engine"] if both else []), "runs", "loop rate", "first token s",
              "thinking tok", "answer tok", "tok/s", "code compiles"]
    rows = [header]
    for s in summaries:
        rows.append([s.variant, *([s.engine] if both else []), str(s.runs), f"{s.loop_rate:.0%}",
                     _fmt(s.first_token_seconds, "{:.2f}"), f"{s.thinking_tokens:.0f}",
                     f"{s.answer_tokens:.0f}", f"{s.tokens_per_second:.1f}",
                     _fmt(s.code_compile_rate, "{:.0%}")])
    return rows


def plot(summaries: list[VariantSummary], path: Path) -> Path:
    """A bar chart per metric, one bar per variant (matplotlib, headless)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [("loop rate", [s.loop_rate for s in summaries]),
               ("thinking tokens", [s.thinking_tokens for s in summaries]),
               ("answer tokens", [s.answer_tokens for s in summaries]),
               ("tokens/s", [s.tokens_per_second for s in summaries])]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.2))
    names = [f"{s.variant}\n{s.engine}" if _engines_differ(summaries) else s.variant
             for s in summaries]
    for ax, (title, values) in zip(axes, metrics, strict=True):
        ax.bar(names, values, color="#4477aa")
        ax.set_title(title)
        ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    with atomic_writer(path) as handle:
        fig.savefig(handle, format="png", dpi=100)
    plt.close(fig)
    return path


def markdown(prompt: NamedPrompt, summaries: list[VariantSummary], runs: list[RunStats],
             plot_name: str | None) -> str:
    rows = table_rows(summaries)
    lines = [f"# qwq-ollama compare: prompt `{prompt.name}`", "",
             "| " + " | ".join(rows[0]) + " |", "|" + " --- |" * len(rows[0])]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    if plot_name:
        lines += ["", f"![per-variant comparison]({plot_name})"]
    both = _engines_differ(runs)
    lines += ["", "## Runs", "", f"| variant |{' engine |' if both else ''} seed | looped | "
              "loop start | done | code |", "|" + " --- |" * (7 if both else 6)]
    for r in runs:
        lines.append(f"| {r.variant} |{f' {r.engine} |' if both else ''} {r.seed} | {r.looped} "
                     f"| {r.loop_start_token or '-'} | {r.done_reason or '-'} | "
                     f"{'-' if r.code_ok is None else r.code_ok} |")
    return "\n".join(lines) + "\n"
