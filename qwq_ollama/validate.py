"""Prove each variant right against the live daemon: prompt fidelity, registration, generation.

Returns findings as data; the CLI prints the table and writes the JSON and Markdown reports.
A failing step is recorded as such, so partial results are never lost.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from .catalog import Catalog, Variant
from .client import OllamaAPI, parse_show_parameters
from .conversation import load_corpus
from .errors import DaemonError, QwqOllamaError
from .fidelity import compare, hf_prompt
from .registry import desired_state, drift

CHECKS = ("fidelity", "registration", "generation")
GENERATION_PROMPT = "In two short sentences: why is the sky blue?"
LEAKS = ("<|im_end|>", "<|im_start|>", "<|endoftext|>")


@dataclass
class Finding:
    variant: str
    check: str
    status: str  # "pass", "fail", "known", "error"
    reason: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class ValidationReport:
    findings: list[Finding] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(f.status in ("fail", "error") for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {"failed": self.failed, "findings": [asdict(f) for f in self.findings]}


Progress = Callable[[str], None]


def validate(api: OllamaAPI, catalog: Catalog, names: list[str] | None = None, *,
             weights_name: str | None = None, checks: tuple[str, ...] = CHECKS,
             num_predict: int = 256, progress: Progress | None = None,
             report: ValidationReport | None = None) -> ValidationReport:
    """Run the checks per variant; a step that cannot run is an `error` finding, not a crash.

    Findings go into `report` as they are made, so a caller keeps them if a later step raises.
    """
    say = progress or (lambda _m: None)
    report = report if report is not None else ValidationReport()
    for variant in [catalog.variant(n) for n in (names or list(catalog.variants))]:
        if api.show(variant.name) is None:
            report.findings.append(Finding(variant.name, "registered", "error",
                                           "not registered"))
            raise DaemonError(f"variant {variant.name} is not registered at {api.host}: run "
                              f"`qwq-ollama create {variant.name}`")
        steps: dict[str, Callable[[], Finding]] = {
            "fidelity": lambda v=variant: check_fidelity(api, catalog, v),
            "registration": lambda v=variant: check_registration(api, catalog, v, weights_name),
            "generation": lambda v=variant: check_generation(api, v, num_predict=num_predict),
        }
        for check in checks:
            say(f"{variant.name}: {check}")
            try:
                report.findings.append(steps[check]())
            except QwqOllamaError as exc:
                report.findings.append(Finding(variant.name, check, "error", str(exc)))
    return report


def check_fidelity(api: OllamaAPI, catalog: Catalog, variant: Variant) -> Finding:
    results = []
    for conv in load_corpus():
        live = api.render_prompt(variant.name, conv.messages, conv.tools)
        results.append(compare(conv.name, conv, hf_prompt(catalog, variant, conv), live))
    failed = [r for r in results if r.status == "fail"]
    known = [r for r in results if r.status == "known"]
    details = {"conversations": [{"name": r.conversation, "status": r.status,
                                  "divergences": list(r.divergences), "detail": r.detail}
                                 for r in results]}
    if failed:
        first = failed[0]
        return Finding(variant.name, "fidelity", "fail",
                       f"{len(failed)}/{len(results)} prompts differ; {first.conversation}: "
                       f"{first.detail}", details)
    if known:
        keys = sorted({k for r in known for k in r.divergences})
        return Finding(variant.name, "fidelity", "known",
                       f"{len(results) - len(known)}/{len(results)} identical; the rest differ "
                       f"only by known divergences: {', '.join(keys)}", details)
    return Finding(variant.name, "fidelity", "pass",
                   f"all {len(results)} prompts identical", details)


def check_registration(api: OllamaAPI, catalog: Catalog, variant: Variant,
                       weights_name: str | None) -> Finding:
    weights = catalog.weights_named(weights_name or variant.weights)
    want = desired_state(catalog, variant, weights)
    shown = api.show(variant.name) or {}
    problems = [f"{d} differs from the catalog" for d in drift(want, shown, None)]
    capabilities = shown.get("capabilities") or []
    if "thinking" not in capabilities:
        problems.append("no `thinking` capability: Ollama will not separate the reasoning")
    if "{{" in want.template and ".Tools" in want.template and "tools" not in capabilities:
        problems.append("no `tools` capability")
    if "num_ctx" not in parse_show_parameters(shown.get("parameters", "")):
        problems.append("num_ctx is not set: Ollama's small default truncates reasoning")
    details = {"capabilities": capabilities,
               "parameters": parse_show_parameters(shown.get("parameters", ""))}
    if problems:
        return Finding(variant.name, "registration", "fail", "; ".join(problems), details)
    return Finding(variant.name, "registration", "pass",
                   "template, parameters and capabilities match the catalog", details)


def check_generation(api: OllamaAPI, variant: Variant, *, num_predict: int,
                     prompt: str = GENERATION_PROMPT) -> Finding:
    """Stream one answer: thinking apart from content, stops holding, no runaway loop."""
    from .chat import run_chat
    from .loop_detector import LoopDetector

    detector = LoopDetector()
    verdicts: list[Any] = []

    def watch(result: Any) -> str | None:
        kind, text = result.chunks[-1] if result.chunks else ("", "")
        verdict = detector.feed(text)
        if verdict is not None:
            verdicts.append(verdict)
            return verdict.reason
        return None

    started = time.monotonic()
    result = run_chat(api, variant.name, [{"role": "user", "content": prompt}],
                      options={"num_predict": num_predict}, should_stop=watch)
    problems = []
    if "<think>" in result.content or "</think>" in result.content:
        problems.append("think tags leaked into the answer content")
    leaked = [s for s in LEAKS if s in result.content or s in result.thinking]
    if leaked:
        problems.append(f"stop token text in the output: {', '.join(leaked)}")
    if variant.think_prefill and result.content and not result.thinking:
        problems.append("the prefilled reasoning did not arrive as thinking")
    if verdicts:
        v = verdicts[0]
        problems.append(f"loop: began at token {v.loop_start_token}, stopped at token "
                        f"{v.detected_at_token} ({v.reason})")
    details = {"done_reason": result.done_reason, "thinking_chars": len(result.thinking),
               "content_chars": len(result.content), "eval_count": result.eval_count,
               "tokens_per_second": round(result.tokens_per_second, 1),
               "seconds": round(time.monotonic() - started, 2),
               "stopped_early": result.stopped_early}
    if problems:
        return Finding(variant.name, "generation", "fail", "; ".join(problems), details)
    return Finding(variant.name, "generation", "pass",
                   f"thinking {len(result.thinking)} chars apart from answer "
                   f"{len(result.content)} chars; done_reason {result.done_reason}", details)


def markdown_report(report: ValidationReport) -> str:
    lines = ["# qwq-ollama validate", "", "| variant | check | result | reason |",
             "| --- | --- | --- | --- |"]
    for f in report.findings:
        reason = f.reason.replace("|", "\\|")
        lines.append(f"| {f.variant} | {f.check} | {f.status} | {reason} |")
    lines += ["", f"Overall: {'FAIL' if report.failed else 'PASS'}", ""]
    return "\n".join(lines)
