"""Prove each variant right against the live daemon: prompt fidelity, registration, thinking
control (checks/thinking.py), generation.

Returns findings as data; the CLI prints the table and writes the JSON and Markdown reports.
A failing step is recorded as such, so partial results are never lost.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

from qwq_ollama.catalog.conversation import Conversation, load_corpus
from qwq_ollama.catalog.render import hf_prompter
from qwq_ollama.catalog.schema import Catalog, Variant
from qwq_ollama.checks.budget import budgeted_watched
from qwq_ollama.checks.doctor import sampling_leaks, untested_version_finding
from qwq_ollama.checks.fidelity import (
    FidelityResult,
    judge_prompts,
    official_renderer,
    template_source,
)
from qwq_ollama.checks.findings import Finding, failed
from qwq_ollama.checks.generation import ChatResult, generate_watched
from qwq_ollama.checks.thinking import check_thinking
from qwq_ollama.daemon.answers import Shown
from qwq_ollama.daemon.chat_engine import ChatEngine
from qwq_ollama.daemon.client import OllamaAPI
from qwq_ollama.daemon.registry import registration
from qwq_ollama.errors import DaemonError, QwqOllamaError, RefusedError

DEFAULT_CHECKS = ("fidelity", "registration", "thinking", "generation")
CHECKS = (*DEFAULT_CHECKS, "code")  # `code` generates a whole program: opt in
GENERATION_PROMPT = "In two short sentences: why is the sky blue?"


@dataclass
class ValidationReport:
    findings: list[Finding] = field(default_factory=list)
    daemon_version: str | None = None
    engine: str = "Ollama"  # or "llama.cpp" (checks/llama_cpp.py)
    step_errors: list[QwqOllamaError] = field(default_factory=list)  # steps that could not run

    @property
    def failed(self) -> bool:
        return failed(self.findings)

    @property
    def exit_code(self) -> int:
        """0 when every check passed, 1 when one failed; a step that could not run is no
        verdict: its error's own code (2, or 3 for a daemon that stopped answering)."""
        if self.step_errors:
            return self.step_errors[0].exit_code
        return 1 if self.failed else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "failed": self.failed,
            "engine": self.engine,
            "daemon_version": self.daemon_version,
            "findings": [f.to_dict() for f in self.findings],
        }


Progress = Callable[[str], None]


def validate(
    api: OllamaAPI,
    catalog: Catalog,
    names: list[str] | None = None,
    *,
    weights_name: str | None = None,
    checks: tuple[str, ...] = DEFAULT_CHECKS,
    num_predict: int = 256,
    code_prompt: str = "flappy-bird",
    seed: int | None = None,
    progress: Progress | None = None,
    report: ValidationReport | None = None,
) -> ValidationReport:
    """Run the checks per variant; a step that cannot run is an `error` finding, not a crash.

    Findings go into `report` as they are made, so a caller keeps them if a later step raises.
    """
    say = progress or (lambda _m: None)
    report = report if report is not None else ValidationReport()
    try:
        report.daemon_version = api.supported_version()
    except QwqOllamaError as exc:
        report.findings.append(Finding(api.host, "daemon", "error", str(exc)))
        raise
    untested = untested_version_finding(api.host, report.daemon_version)
    if untested is not None:
        report.findings.append(untested)
    for variant in catalog.chosen(names):
        try:
            shown = api.show(variant.name)
        except QwqOllamaError as exc:
            report.findings.append(Finding(variant.name, "registered", "error", str(exc)))
            raise
        if shown is None:
            report.findings.append(
                Finding(
                    variant.name,
                    "registered",
                    "error",
                    "not registered",
                    f"qwq-ollama create {variant.name}",
                )
            )
            raise DaemonError(
                f"variant {variant.name} is not registered at {api.host}: run "
                f"`qwq-ollama create {variant.name}`"
            )
        steps: dict[str, Callable[[], Finding]] = {
            "fidelity": partial(check_fidelity, api, catalog, variant),
            "registration": partial(
                check_registration, api, catalog, variant, weights_name, report.daemon_version or ""
            ),
            "thinking": partial(check_thinking, api, variant, seed=seed, num_predict=num_predict),
            "generation": partial(
                check_generation, api, variant, num_predict=num_predict, seed=seed
            ),
            "code": partial(
                check_code_generation, api, variant, code_prompt, num_predict=num_predict, seed=seed
            ),
        }
        run_checks(report, variant.name, steps, checks, say)
    return report


def run_checks(
    report: ValidationReport,
    subject: str,
    steps: dict[str, Callable[[], Finding]],
    checks: tuple[str, ...],
    say: Progress,
) -> None:
    """The chosen steps in order; one that cannot run is an `error` finding, not a crash."""
    for check in checks:
        say(f"{subject}: {check}")
        try:
            report.findings.append(steps[check]())
        except QwqOllamaError as exc:
            report.findings.append(Finding(subject, check, "error", str(exc)))
            report.step_errors.append(exc)


def check_fidelity(api: OllamaAPI, catalog: Catalog, variant: Variant) -> Finding:
    """Every corpus prompt the daemon builds against the HF template's, and which template the
    daemon built them with: one the catalog did not choose fails, whatever the prompts say."""
    hf_prompt = hf_prompter(catalog, variant)
    corpus = load_corpus()
    shown = api.show(variant.name)
    architecture = (shown.architecture if shown else None) or ""
    results = [
        judge_prompts(
            conv.name,
            conv,
            hf_prompt(conv.messages, conv.tools),
            live_prompt(api, variant.name, conv),
            known=variant.family.divergences,
            render=official_renderer(hf_prompt),
            architecture=architecture,
        )
        for conv in corpus
    ]
    source = template_source(results, corpus)
    details = {"template_source": source, "conversations": conversation_details(results)}
    # "unknown": no conversation tells the templates apart (a family whose official template
    # prints no tool schema), which is no evidence against the catalog's choice.
    if source not in (variant.template_source, "unknown"):
        return Finding(
            variant.name,
            "fidelity",
            "fail",
            f"the daemon builds prompts with "
            f"{_SOURCE_WORDS.get(source, source)}, not the catalog's "
            f"{_SOURCE_WORDS[variant.template_source]}",
            _SOURCE_FIX,
            details=details,
        )
    return fidelity_verdict(variant, results, details)


def conversation_details(results: list[FidelityResult]) -> list[dict[str, Any]]:
    """Per conversation: its verdict, and both prompts where they differ (what the HTML report
    shows side by side); identical prompts are left out to keep the JSON small."""
    return [
        {
            "name": r.conversation,
            "status": r.status,
            "divergences": list(r.divergences),
            "reasons": list(r.reasons),
            "detail": r.detail,
            "compared_with": r.compared_with,
            **(
                {}
                if r.status == "pass"
                else {"hf_prompt": r.hf_prompt, "ollama_prompt": r.ollama_prompt}
            ),
        }
        for r in results
    ]


def live_prompt(api: ChatEngine, name: str, conv: Conversation) -> str:
    """The engine's prompt (an Ollama daemon's or a llama-server's), or what it said when it
    refused to build one (a template without tools refuses a conversation that has them): that
    differs from every HF prompt, so it fails the conversation with the reason in the report."""
    try:
        return api.render_prompt(name, conv.messages, conv.tools)
    except RefusedError as exc:
        return f"(refused: {exc.detail})"


_SOURCE_WORDS = {
    "go_template": "Modelfile TEMPLATE (Go)",
    "jinja": "a Jinja chat template (the GGUF's own)",
    "unknown": "a template this check could not identify",
}
_SOURCE_FIX = (
    "unset OLLAMA_GO_TEMPLATE where the daemon runs (or set it to 1), restart it, "
    "and run `qwq-ollama create` again"
)


def fidelity_verdict(variant: Variant, results: list[Any], details: dict[str, Any]) -> Finding:
    differing = [r for r in results if r.status == "fail"]
    known = [r for r in results if r.status == "known"]
    if differing:
        first = differing[0]
        return Finding(
            variant.name,
            "fidelity",
            "fail",
            f"{len(differing)}/{len(results)} prompts differ; {first.conversation}: {first.detail}",
            details=details,
        )
    if known:
        keys = sorted({k for r in known for k in r.divergences})
        return Finding(
            variant.name,
            "fidelity",
            "known",
            f"{len(results) - len(known)}/{len(results)} identical; the rest differ "
            f"only by known divergences: {', '.join(keys)}",
            details=details,
        )
    return Finding(
        variant.name, "fidelity", "pass", f"all {len(results)} prompts identical", details=details
    )


def check_registration(
    api: OllamaAPI,
    catalog: Catalog,
    variant: Variant,
    weights_name: str | None,
    daemon_version: str = "",
) -> Finding:
    found = registration(api, catalog, variant, weights_name)
    shown = found.shown or Shown()
    problems = [found.describe()] if found.drift else []
    problems += sampling_leaks(shown, daemon_version)
    if variant.family.switch != "none" and "thinking" not in shown.capabilities:
        problems.append("no `thinking` capability: Ollama will not separate the reasoning")
    if ".Tools" in shown.template and "tools" not in shown.capabilities:
        problems.append("no `tools` capability")
    if "num_ctx" not in shown.parameters:
        problems.append("num_ctx is not set: Ollama's small default truncates reasoning")
    details = {"capabilities": list(shown.capabilities), "parameters": shown.parameters}
    if problems:
        return Finding(variant.name, "registration", "fail", "; ".join(problems), details=details)
    return Finding(
        variant.name,
        "registration",
        "pass",
        "template, parameters and capabilities match the catalog",
        details=details,
    )


def _options(num_predict: int, seed: int | None) -> dict[str, Any]:
    return {"num_predict": num_predict} | ({} if seed is None else {"seed": seed})


def check_generation(
    api: ChatEngine,
    variant: Variant,
    *,
    num_predict: int,
    seed: int | None = None,
    prompt: str = GENERATION_PROMPT,
) -> Finding:
    """Stream one answer: thinking apart from content, stops holding, no runaway loop."""
    started = time.monotonic()
    budget: dict[str, Any] = {}
    if variant.think_budget is not None and isinstance(api, OllamaAPI):
        # Ollama has no budget: the tool enforces the catalog's (checks/budget.py).
        result, verdict, outcome = budgeted_watched(
            api, variant, prompt, budget=variant.think_budget, options=_options(num_predict, seed)
        )
        budget = {"think_budget": asdict(outcome)}
    else:
        result, verdict = generate_watched(
            api, variant.name, prompt, options=_options(num_predict, seed)
        )
    problems = _output_problems(variant, result, verdict)
    details = {
        **budget,
        "done_reason": result.done_reason,
        "thinking_chars": len(result.thinking),
        "content_chars": len(result.content),
        "eval_count": result.eval_count,
        "tokens_per_second": round(result.tokens_per_second, 1),
        "seconds": round(time.monotonic() - started, 2),
        "stopped_early": result.stopped_early,
    }
    if problems:
        return Finding(variant.name, "generation", "fail", "; ".join(problems), details=details)
    return Finding(
        variant.name,
        "generation",
        "pass",
        f"thinking {len(result.thinking)} chars apart from answer "
        f"{len(result.content)} chars; done_reason {result.done_reason}",
        details=details,
    )


def _output_problems(variant: Variant, result: ChatResult, verdict: Any) -> list[str]:
    problems = []
    family = variant.family
    if family.think_open in result.content or family.think_close in result.content:
        problems.append("think tags leaked into the answer content")
    leaked = [s for s in family.special_tokens if s in result.content or s in result.thinking]
    if leaked:
        problems.append(f"stop token text in the output: {', '.join(leaked)}")
    if variant.prefills_reasoning and result.content and not result.thinking:
        problems.append("the prefilled reasoning did not arrive as thinking")
    if not result.content.strip() and result.stopped_early is None:
        problems.append(_no_answer(result))
    if verdict is not None:
        problems.append(
            f"loop: began at token {verdict.loop_start_token}, stopped at token "
            f"{verdict.detected_at_token} ({verdict.reason})"
        )
    return problems


def _no_answer(result: ChatResult) -> str:
    """An empty answer is a failure: the reasoning never closed, or the model said nothing."""
    if result.thinking.strip():
        cause = (
            "the token cap came first"
            if result.done_reason == "length"
            else f"done_reason {result.done_reason}"
        )
        return (
            f"no answer: the reasoning never closed ({len(result.thinking)} chars of "
            f"thinking, {cause})"
        )
    return f"no answer and no reasoning (done_reason {result.done_reason})"


def check_code_generation(
    api: ChatEngine,
    variant: Variant,
    prompt_name: str,
    *,
    num_predict: int,
    seed: int | None = None,
) -> Finding:
    """The guide's end-to-end test: the answer's last python block compiles, and runs."""
    from qwq_ollama.catalog.prompts import get_prompt
    from qwq_ollama.checks.code import check_code, extract_last_python_block, run_headless

    prompt = get_prompt(prompt_name)
    result, verdict = generate_watched(
        api, variant.name, prompt.text, options=_options(num_predict, seed)
    )
    problems = _output_problems(variant, result, verdict)
    source = extract_last_python_block(result.content)
    details: dict[str, Any] = {
        "prompt": prompt.name,
        "done_reason": result.done_reason,
        "answer_chars": len(result.content),
    }
    if source is None:
        problems.append("no python code block in the answer")
    else:
        report = check_code(source)
        details["code"] = asdict(report)
        if not report.ok:
            problems.append(_describe_code(report))
        elif prompt.run:
            run = run_headless(source)
            details["run"] = asdict(run)
            if run.skipped:
                details["run_skipped"] = run.skipped
            elif not run.exited_cleanly:
                problems.append(
                    "the program "
                    + (
                        "never exited"
                        if run.timed_out
                        else f"failed: {run.error or run.returncode}"
                    )
                )
    if problems:
        return Finding(variant.name, "code", "fail", "; ".join(problems), details=details)
    return Finding(
        variant.name,
        "code",
        "pass",
        "the answer's program compiles" + (" and runs headless" if prompt.run else ""),
        details=details,
    )


def _describe_code(report: Any) -> str:
    if report.syntax_error:
        return f"syntax error: {report.syntax_error}"
    return f"undefined names: {', '.join(report.undefined_names[:5])}"


def markdown_report(report: ValidationReport) -> str:
    lines = [
        "# qwq-ollama validate",
        "",
        f"{report.engine} {report.daemon_version or 'unknown'}",
        "",
        "| variant | check | result | reason |",
        "| --- | --- | --- | --- |",
    ]
    for f in report.findings:
        reason = f.message.replace("|", "\\|")
        lines.append(f"| {f.subject} | {f.check} | {f.status} | {reason} |")
    lines += ["", f"Overall: {'FAIL' if report.failed else 'PASS'}", ""]
    return "\n".join(lines)
