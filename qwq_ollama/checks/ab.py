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
from qwq_ollama.catalog.schema import Variant
from qwq_ollama.checks.budget import budgeted_watched
from qwq_ollama.checks.generation import generate_watched
from qwq_ollama.daemon.chat_engine import ChatEngine
from qwq_ollama.daemon.client import OllamaAPI


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
    think_budget: int | None = None  # the cap the run had, if any
    capped: bool = False  # the budget ended the thinking (the answer followed the early stop)


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
    think_budget: int | None = None
    capped_rate: float | None = None  # runs the budget capped (None: no budget)
    answer_rate: float = 1.0  # runs that ended with an answer


def code_compiles(answer: str) -> bool:
    from qwq_ollama.checks.code import check_code, extract_last_python_block

    source = extract_last_python_block(answer)
    return source is not None and check_code(source).ok


def run_once(
    api: ChatEngine,
    variant: str,
    prompt: NamedPrompt,
    seed: int,
    num_predict: int,
    engine: str = "ollama",
    budgeted: tuple[Variant, int] | None = None,
) -> RunStats:
    """One streamed run; `api` is an Ollama daemon or a llama-server running `variant`.
    `budgeted` (the variant and its thinking budget) caps the thinking on an Ollama daemon."""
    options = {"seed": seed, "num_predict": num_predict}
    capped = False
    if budgeted is not None and isinstance(api, OllamaAPI):
        result, verdict, outcome = budgeted_watched(
            api, budgeted[0], prompt.text, budget=budgeted[1], options=options
        )
        capped = outcome.capped
    else:
        result, verdict = generate_watched(api, variant, prompt.text, options=options)
    thinking = sum(1 for kind, _ in result.chunks if kind == "thinking")
    answer = sum(1 for kind, _ in result.chunks if kind == "content")
    return RunStats(
        variant,
        seed,
        verdict is not None,
        verdict.loop_start_token if verdict else None,
        result.first_token_seconds,
        thinking,
        answer,
        result.tokens_per_second,
        code_compiles(result.content) if prompt.code else None,
        result.done_reason,
        engine,
        budgeted[1] if budgeted else None,
        capped,
    )


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
        summaries.append(
            VariantSummary(
                variant,
                len(group),
                sum(r.looped for r in group) / len(group),
                statistics.median(ttft) if ttft else None,
                statistics.median(r.thinking_tokens for r in group),
                statistics.median(r.answer_tokens for r in group),
                statistics.median(rates),
                sum(code) / len(code) if code else None,
                engine,
                group[0].think_budget,
                None
                if group[0].think_budget is None
                else sum(r.capped for r in group) / len(group),
                sum(r.answer_tokens > 0 for r in group) / len(group),
            )
        )
    return summaries


def compare_variants(
    api: ChatEngine,
    variants: list[str],
    prompt: NamedPrompt,
    seeds: int,
    num_predict: int,
    progress: Callable[[str], None] | None = None,
    engine: str = "ollama",
    budgeted: dict[str, tuple[Variant, int]] | None = None,
) -> tuple[list[VariantSummary], list[RunStats]]:
    say = progress or (lambda _m: None)
    runs = []
    for variant in variants:
        for seed in range(1, seeds + 1):
            say(f"{variant} seed {seed}" + ("" if engine == "ollama" else f" on {engine}"))
            runs.append(
                run_once(
                    api, variant, prompt, seed, num_predict, engine, (budgeted or {}).get(variant)
                )
            )
    return summarise(runs), runs


def comparison_dict(
    prompt: NamedPrompt, summaries: list[VariantSummary], runs: list[RunStats]
) -> dict[str, Any]:
    """What `compare --json` prints: the summary per variant and every run behind it."""
    return {
        "prompt": prompt.name,
        "summaries": [asdict(s) for s in summaries],
        "runs": [asdict(r) for r in runs],
    }


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def _engines_differ(items: list[Any]) -> bool:
    """An engine column only when engines are compared side by side."""
    return len({item.engine for item in items}) > 1


def table_rows(summaries: list[VariantSummary]) -> list[list[str]]:
    both = _engines_differ(summaries)
    budgets = any(s.think_budget is not None for s in summaries)
    header = [
        "variant",
        *(["engine"] if both else []),
        "runs",
        "loop rate",
        "first token s",
        "thinking tok",
        "answer tok",
        "tok/s",
        "code compiles",
        *(["think budget", "capped", "answered"] if budgets else []),
    ]
    rows = [header]
    for s in summaries:
        rows.append(
            [
                s.variant,
                *([s.engine] if both else []),
                str(s.runs),
                f"{s.loop_rate:.0%}",
                _fmt(s.first_token_seconds, "{:.2f}"),
                f"{s.thinking_tokens:.0f}",
                f"{s.answer_tokens:.0f}",
                f"{s.tokens_per_second:.1f}",
                _fmt(s.code_compile_rate, "{:.0%}"),
                *(
                    [
                        _fmt(s.think_budget, "{}"),
                        _fmt(s.capped_rate, "{:.0%}"),
                        f"{s.answer_rate:.0%}",
                    ]
                    if budgets
                    else []
                ),
            ]
        )
    return rows


# Per metric: title, the value of one run, the summary's value, and whether it is a rate (fixed
# 0-100 % axis, so an all-zero rate reads as 0 %, not as noise around zero).
_METRICS: tuple[
    tuple[str, Callable[[RunStats], float | None], Callable[[VariantSummary], float | None], bool],
    ...,
] = (
    ("loop rate (mean)", lambda r: 100.0 * r.looped, lambda s: 100.0 * s.loop_rate, True),
    (
        "code compiles (mean)",
        lambda r: None if r.code_ok is None else 100.0 * r.code_ok,
        lambda s: None if s.code_compile_rate is None else 100.0 * s.code_compile_rate,
        True,
    ),
    ("thinking tokens (median)", lambda r: r.thinking_tokens, lambda s: s.thinking_tokens, False),
    ("answer tokens (median)", lambda r: r.answer_tokens, lambda s: s.answer_tokens, False),
    ("tokens/s (median)", lambda r: r.tokens_per_second, lambda s: s.tokens_per_second, False),
)


def figure(summaries: list[VariantSummary], runs: list[RunStats]) -> Any:
    """One panel per metric, a bar per variant for its summary and every seed's value as a dot
    beside it, so seeds of 0 % and 100 % never hide behind a 33 % bar (matplotlib, headless)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in _METRICS if any(m[2](s) is not None for s in summaries)]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        _panel(ax, metric, summaries, runs)
    fig.suptitle("bars: the variant's mean or median; dots: each seed", fontsize=9)
    fig.tight_layout()
    return fig


def render_plot(summaries: list[VariantSummary], runs: list[RunStats]) -> bytes:
    """The figure as PNG bytes: written beside a Markdown report, inlined in an HTML one."""
    import io

    fig = figure(summaries, runs)  # chooses the headless backend before pyplot is imported
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def _panel(
    ax: Any, metric: tuple[Any, ...], summaries: list[VariantSummary], runs: list[RunStats]
) -> None:
    title, per_run, per_summary, is_rate = metric
    both = _engines_differ(summaries)
    top = 0.0
    for x, s in enumerate(summaries):
        ax.bar(x - 0.15, per_summary(s) or 0.0, width=0.5, color="#4477aa")
        seeds = [per_run(r) for r in runs if (r.variant, r.engine) == (s.variant, s.engine)]
        seeds = [v for v in seeds if v is not None]
        top = max([top, per_summary(s) or 0.0, *seeds])
        ax.plot(
            [x + 0.25] * len(seeds),
            seeds,
            "o",
            color="#cc3311",
            markersize=5,
            alpha=0.7,
            label="one seed" if x == 0 else None,
        )
    ax.set_xticks(
        range(len(summaries)),
        [f"{s.variant}\n{s.engine}" if both else s.variant for s in summaries],
        rotation=30,
        ha="right",
    )
    ax.set_title(title)
    if is_rate:
        ax.set_ylim(-4, 104)  # 0-100 %, with room for the dots at either end
        ax.set_yticks(range(0, 101, 20))
        ax.set_ylabel("%")
    else:  # from 0, and all zeros read as 0 of 1, not as noise around zero
        ax.set_ylim(0, top * 1.1 or 1.0)


def plot(summaries: list[VariantSummary], runs: list[RunStats], path: Path) -> Path:
    """The PNG written atomically beside a Markdown report."""
    data = render_plot(summaries, runs)
    with atomic_writer(path) as handle:
        handle.write(data)
    return path


def markdown(
    prompt: NamedPrompt,
    summaries: list[VariantSummary],
    runs: list[RunStats],
    plot_name: str | None,
) -> str:
    rows = table_rows(summaries)
    lines = [
        f"# qwq-ollama compare: prompt `{prompt.name}`",
        "",
        "| " + " | ".join(rows[0]) + " |",
        "|" + " --- |" * len(rows[0]),
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    if plot_name:
        lines += ["", f"![per-variant comparison]({plot_name})"]
    both = _engines_differ(runs)
    lines += [
        "",
        "## Runs",
        "",
        f"| variant |{' engine |' if both else ''} seed | looped | loop start | done | code |",
        "|" + " --- |" * (7 if both else 6),
    ]
    for r in runs:
        lines.append(
            f"| {r.variant} |{f' {r.engine} |' if both else ''} {r.seed} | {r.looped} "
            f"| {r.loop_start_token or '-'} | {r.done_reason or '-'} | "
            f"{'-' if r.code_ok is None else r.code_ok} |"
        )
    return "\n".join(lines) + "\n"
