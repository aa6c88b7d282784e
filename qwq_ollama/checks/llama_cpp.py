"""Prove a variant right on llama.cpp, as `validate` does on Ollama: the prompt llama-server
builds against the HF template's, the settings it runs with against the catalog's, and a streamed
generation (reasoning apart, stops holding, the loop detector watching). Same Finding type.

Each variant runs on its own llama-server (the exported command bakes its template and sampling
in), so the caller hands over `servers`: a variant -> a running server, e.g. serve_variant.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

from qwq_ollama.catalog.conversation import load_corpus
from qwq_ollama.catalog.family import Divergence
from qwq_ollama.catalog.render import hf_prompter, render_variant
from qwq_ollama.catalog.schema import Catalog, Variant
from qwq_ollama.checks.fidelity import judge_prompts, official_renderer
from qwq_ollama.checks.findings import Finding
from qwq_ollama.checks.validate import (
    Progress,
    ValidationReport,
    check_code_generation,
    check_generation,
    conversation_details,
    fidelity_verdict,
    live_prompt,
    run_checks,
)
from qwq_ollama.daemon.registry import same_value
from qwq_ollama.engines.llama_server import LlamaServerAPI
from qwq_ollama.errors import QwqOllamaError

CHECKS = ("fidelity", "settings", "context", "generation", "code")
DEFAULT_CHECKS = CHECKS[:4]  # `code` generates a whole program: opt in
ENGINE = "llama.cpp"
# Where llama-server's prompt may differ from the HF template's, and why; any other difference
# is a failure. Measured on b11076 over the whole corpus, every variant (docs/llama-cpp.md).
KNOWN_DIVERGENCES: tuple[Divergence, ...] = (
    Divergence(
        key="tool-call-arguments-string",
        reason="llama-server decodes tool-call arguments an OpenAI client sends as a JSON string "
        "when the template prints them with tojson (QwQ's), so the model sees the object it "
        "writes in its own calls; the HF template prints the quoted string",
        when="tool_call_arguments_as_string",
        expect="string_arguments_decoded",
    ),
    Divergence(
        key="null-content-read-as-empty",
        reason="llama-server hands the template an assistant's null content as the empty "
        "string, so a template that writes tool calls only for null content (R1's, as OpenAI "
        "clients send them) writes none",
        when="null_content",
        expect="null_content_read_as_empty",
    ),
    Divergence(
        key="tool-description-defaulted",
        reason="llama-server hands the template a tool sent without a description with "
        '`"description": ""` after its name, so tojson prints it; the HF template prints the '
        "tool as sent",
        when="tool_without_description",
        expect="tool_description_defaulted",
    ),
    Divergence(
        key="integral-float-printed-whole",
        reason="llama-server hands the template a tool-call argument like 1500.0 as the number "
        "1500, so tojson prints no `.0`; transformers prints 1500.0",
        when="integral_float_in_arguments",
        expect="integral_floats_printed_whole",
    ),
)
SERVER_FIX = (
    "start llama-server with the command `qwq-ollama export llama-cpp {name} --binary "
    "llama-server` prints"
)

Servers = Callable[[Variant], AbstractContextManager[LlamaServerAPI]]


def validate_llama_cpp(
    servers: Servers,
    catalog: Catalog,
    names: list[str] | None = None,
    *,
    checks: tuple[str, ...] = DEFAULT_CHECKS,
    num_predict: int = 256,
    code_prompt: str = "flappy-bird",
    seed: int | None = None,
    progress: Progress | None = None,
    report: ValidationReport | None = None,
) -> ValidationReport:
    """Run the checks per variant on its server; findings go into `report` as they are made."""
    say = progress or (lambda _m: None)
    report = report if report is not None else ValidationReport(engine=ENGINE)
    report.engine = ENGINE
    for variant in catalog.chosen(names):
        say(f"{variant.name}: llama-server")
        try:
            with servers(variant) as api:
                report.daemon_version = api.version()
                run_checks(
                    report,
                    variant.name,
                    _steps(api, catalog, variant, num_predict, code_prompt, seed),
                    checks,
                    say,
                )
        except QwqOllamaError as exc:
            report.findings.append(Finding(variant.name, "server", "error", str(exc)))
            raise
    return report


def _steps(
    api: LlamaServerAPI,
    catalog: Catalog,
    variant: Variant,
    num_predict: int,
    code_prompt: str,
    seed: int | None,
) -> dict[str, Callable[[], Finding]]:
    return {
        "fidelity": lambda: check_fidelity(api, catalog, variant),
        "settings": lambda: check_settings(api, catalog, variant),
        "context": lambda: check_context(api, variant),
        "generation": lambda: check_generation(api, variant, num_predict=num_predict, seed=seed),
        "code": lambda: check_code_generation(
            api, variant, code_prompt, num_predict=num_predict, seed=seed
        ),
    }


def loaded_template(text: str) -> str:
    """A chat template as llama.cpp holds it (and /props shows it): line ends made `\\n`, one
    trailing newline dropped (common/jinja/lexer.cpp), as Jinja itself does."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text[:-1] if text.endswith("\n") else text


def check_fidelity(api: LlamaServerAPI, catalog: Catalog, variant: Variant) -> Finding:
    """Every corpus prompt llama-server builds (/apply-template) against the HF template's."""
    hf_prompt = hf_prompter(catalog, variant)
    results = [
        judge_prompts(
            conv.name,
            conv,
            hf_prompt(conv.messages, conv.tools),
            live_prompt(api, "", conv),
            known=KNOWN_DIVERGENCES,
            engine=ENGINE,
            render=official_renderer(hf_prompt),
        )
        for conv in load_corpus()
    ]
    ours = api.props().chat_template == loaded_template(
        render_variant(catalog, variant).hf_template
    )
    details = {
        "template": "the variant's" if ours else "another (the GGUF's own?)",
        "conversations": conversation_details(results),
    }
    finding = fidelity_verdict(variant, results, details)
    if ours:
        return finding
    fix = SERVER_FIX.format(name=variant.name) + (
        ", or embed the variant's template with `qwq-ollama embed-template`"
    )
    return Finding(
        finding.subject,
        finding.check,
        finding.status,
        f"{finding.message}, with a chat template that is not the variant's text",
        fix,
        details=details,
    )


def check_settings(api: LlamaServerAPI, catalog: Catalog, variant: Variant) -> Finding:
    """/props' default sampling (what a request that sets nothing gets) against the catalog's."""
    from qwq_ollama.artifacts.export import llama_server_settings

    shown = api.props().sampling
    wanted = llama_server_settings(catalog, variant)
    drift = [
        f"{key} {shown.get(key)!r}, not {value!r}"
        for key, value in wanted.items()
        if not same_value(shown.get(key), value)
    ]
    details = {"wanted": wanted, "shown": {k: shown.get(k) for k in wanted}}
    if drift:
        return Finding(
            variant.name,
            "settings",
            "fail",
            "the server runs with " + "; ".join(drift),
            SERVER_FIX.format(name=variant.name),
            details=details,
        )
    return Finding(
        variant.name,
        "settings",
        "pass",
        f"sampling as the catalog says ({len(wanted)} values, samplers "
        f"{' > '.join(wanted['samplers'])})",
        details=details,
    )


def check_context(api: LlamaServerAPI, variant: Variant) -> Finding:
    """The slots' context against num_ctx. llama-server caps it at the model's training
    context, as Ollama clamps num_ctx: that is said (warn), not failed."""
    wanted = variant.parameters.num_ctx
    served = api.props().n_ctx
    trained = api.trained_context()
    details = {"n_ctx": served, "num_ctx": wanted, "n_ctx_train": trained}
    if served == wanted:
        return Finding(
            variant.name,
            "context",
            "pass",
            f"n_ctx {served}, the variant's num_ctx",
            details=details,
        )
    if trained is not None and wanted is not None and served == trained < wanted:
        return Finding(
            variant.name,
            "context",
            "warn",
            f"n_ctx {served}, not num_ctx {wanted}: "
            f"the model was trained with a context of {trained} tokens and "
            "llama-server caps the slots' context at it",
            details=details,
        )
    return Finding(
        variant.name,
        "context",
        "fail",
        f"n_ctx {served}, not num_ctx {wanted}",
        SERVER_FIX.format(name=variant.name) + f" (--ctx-size {wanted})",
        details=details,
    )
