"""The way back, on every pinned Ollama: scripted model output in each variant's format goes
through the release's own thinking and tool parsers (checks/parse_back.py builds a Go helper
against github.com/ollama/ollama at that version), streamed in small pieces and in one piece,
and must come back as the message it encodes. Where a release gets it wrong, the failure is
named below and must still happen: a fixed daemon makes the test say so."""

from __future__ import annotations

import pytest

from qwq_ollama.catalog.render import hf_prompter, render_variant
from qwq_ollama.catalog.schema import Catalog, load_catalog
from qwq_ollama.checks.parse_back import ParseCase, ParsedMessage, chunks_of, parse_back
from qwq_ollama.facts import OLLAMA_TESTED

pytestmark = pytest.mark.live

CATALOG: Catalog = load_catalog()
WEATHER = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}]
CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
CODE = "```python\nprint('<think>x</think>')\n```"
ANSWER = ParsedMessage("4", "Two and two.")


def _cases(opened: str) -> list[ParseCase]:
    """The output shapes, for a prompt that opens `<think>` itself (opened="") or leaves it to
    the model (opened="<think>\\n")."""
    reasoning = opened + "Two and two.\n</think>\n\n4"
    return [
        ParseCase("as-prompted", reasoning, ANSWER),
        ParseCase("think-closed-across-chunks", reasoning, ANSWER,
                  split_at=(len(opened) + 17,)),  # between "</th" and "ink>"
        ParseCase("cut-by-num-predict", opened + "Two and tw", ParsedMessage("", "Two and tw")),
        ParseCase("code-with-think-tags", opened + "Code.\n</think>\n\n" + CODE,
                  ParsedMessage(CODE, "Code.")),
        ParseCase("thinking-then-tool-call", opened + "Need it.\n</think>\n\n" + CALL,
                  ParsedMessage("", "Need it.", (("get_weather", '{"city": "Oslo"}'),))),
        # The other shape: a prefilled prompt whose model opens <think> anyway, or a model
        # that skips opening it (thinking without <think>); then "</think>" first.
        ParseCase("other-opening",
                  ("" if opened else "<think>\n") + "Two and two.\n</think>\n\n4", ANSWER),
        ParseCase("close-first", "</think>\n\n4", ParsedMessage("4", "")),
    ]


PREFILLED = _cases("")
SELF_OPENED = _cases("<think>\n")
NO_THINKING = [
    ParseCase("answer", "4", ParsedMessage("4", "")),
    ParseCase("code-with-think-tags", CODE, ParsedMessage(CODE, "")),
    ParseCase("tool-call", CALL, ParsedMessage("", "", (("get_weather", '{"city": "Oslo"}'),))),
]
CASES = {"qwq-fixed": PREFILLED, "r1-distill-qwen": PREFILLED, "qwq-noprefill": SELF_OPENED,
         "qwen3-thinking": SELF_OPENED, "qwen3-nothink": NO_THINKING}
# R1's official template has no tool-call format Ollama could learn: no tool cases for it.
NO_TOOLS = {"r1-distill-qwen"}

# What every pinned release gets wrong (the same Go code in v0.24.0, v0.32.15 and v0.34.4:
# thinking/parser.go, tools/tools.go and the chat handler's use of them).
DAEMON_FAILURES = {
    ("qwq-fixed", "other-opening"): "the thinking parser is primed with the prompt's <think>, "
                                    "so a model that opens <think> again keeps it in thinking",
    ("r1-distill-qwen", "other-opening"): "as for qwq-fixed",
    ("qwq-noprefill", "other-opening"): "without <think> in the output nothing is thinking: the "
                                        "reasoning and </think> arrive as content",
    ("qwen3-thinking", "other-opening"): "as for qwq-noprefill",
    ("qwq-noprefill", "close-first"): "'</think>' without '<think>' stays in the content",
    ("qwen3-thinking", "close-first"): "as for qwq-noprefill",
}
def _normal(message: ParsedMessage) -> ParsedMessage:
    """Whitespace around the reasoning is the format's, not the message's."""
    return ParsedMessage(message.content, message.thinking.strip(), message.tool_calls)


@pytest.mark.parametrize("version", OLLAMA_TESTED, ids=lambda v: f"ollama-{v}")
@pytest.mark.parametrize("name", sorted(CASES))
def test_model_output_comes_back_as_the_message_it_encodes(version: str, name: str) -> None:
    variant = CATALOG.variant(name)
    rendered = render_variant(CATALOG, variant)
    tools = None if name in NO_TOOLS else WEATHER
    prompt = hf_prompter(CATALOG, variant)([{"role": "user", "content": "Weather?"}], tools)
    cases = [c for c in CASES[name] if tools or "tool" not in c.name]
    streamed = parse_back(version, rendered.ollama_template, prompt,
                          [chunks_of(c.output, c.split_at) for c in cases], tools=tools)
    whole = parse_back(version, rendered.ollama_template, prompt, [[c.output] for c in cases],
                       tools=tools)
    wrong = []
    for case, got_streamed, got_whole in zip(cases, streamed, whole, strict=True):
        for mode, got in (("streamed", got_streamed), ("whole", got_whole)):
            expected_failure = (name, case.name) in DAEMON_FAILURES
            if (_normal(got) == case.want) == expected_failure:
                wrong.append((case.name, mode, got, "fixed?" if expected_failure else "wrong"))
    assert not wrong, wrong
