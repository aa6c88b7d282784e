"""The exact expectations a divergence without a mask is judged by: the official rendering of the
conversation as Ollama transforms it. Fast checks of our own logic; the live tests hold them
against every pinned daemon (tests/test_families_live.py)."""

from __future__ import annotations

import json

import pytest

from qwq_ollama.catalog.conversation import (
    CONDITIONS,
    EXPECTATIONS,
    Conversation,
    content_printed_whole,
    integral_floats_printed_whole,
    load_corpus,
    null_content_read_as_empty,
    ollama_merges_roles,
    ollama_strips_earlier_reasoning,
    tool_as_ollama_keeps_it,
    tool_description_defaulted,
)
from qwq_ollama.catalog.render import hf_prompter
from qwq_ollama.catalog.schema import load_catalog
from qwq_ollama.checks.fidelity import judge_prompts, official_renderer

CATALOG = load_catalog()
HISTORY = Conversation(
    [
        {"role": "user", "content": "What is 2 + 2?"},
        {"role": "assistant", "content": "<think>\nSimple addition.\n</think>\n\n4"},
        {"role": "user", "content": "Times 3?"},
    ],
    name="history",
)


def test_consecutive_roles_merge_as_ollama_collates_them() -> None:
    conv = Conversation(
        [
            {"role": "user", "content": "a"},
            {"role": "user", "content": "b"},
            {"role": "assistant", "content": "c", "thinking": "t"},
            {"role": "assistant", "content": "d", "thinking": "lost"},
            {"role": "tool", "content": "x"},
            {"role": "tool", "content": "y"},
        ]
    )
    merged, restore = ollama_merges_roles(conv)
    assert merged.messages == [
        {"role": "user", "content": "a\n\nb"},
        {"role": "assistant", "content": "c\n\nd", "thinking": "t"},
        {"role": "tool", "content": "x"},
        {"role": "tool", "content": "y"},
    ]
    assert restore("p") == "p" and conv.messages[0]["content"] == "a"  # input left alone


def test_earlier_reasoning_is_stripped_on_qwen3_only() -> None:
    stripped, _ = ollama_strips_earlier_reasoning(HISTORY, "qwen3")
    assert stripped.messages[1]["content"] == "4"
    # Ollama's parser splits at the first </think>; a think block that never closes is all
    # reasoning; content without one is left alone.
    odd = Conversation(
        [
            {"role": "assistant", "content": "  <think>a</think> b</think> c"},
            {"role": "assistant", "content": "<think>never closed"},
            {"role": "assistant", "content": "plain </think> text"},
            {"role": "user", "content": "next"},
        ]
    )
    kept = [m["content"] for m in ollama_strips_earlier_reasoning(odd, "qwen3")[0].messages]
    assert kept == ["b</think> c", "", "plain </think> text", "next"]
    # On any other architecture nothing is stripped: the content is printed whole.
    other, restore = ollama_strips_earlier_reasoning(HISTORY, "llama")
    assert "</think>" not in other.messages[1]["content"]
    assert restore(other.messages[1]["content"]) == HISTORY.messages[1]["content"]


def test_content_printed_whole_is_the_official_rendering_with_the_cut_undone() -> None:
    prompt = hf_prompter(CATALOG, CATALOG.variant("qwq-fixed"))
    official = prompt(HISTORY.messages)
    assert "Simple addition" not in official  # the official template cuts earlier reasoning
    conv, restore = content_printed_whole(HISTORY)
    expected = restore(prompt(conv.messages))
    assert expected == official.replace(
        "<|im_start|>assistant\n4<|im_end|>",
        "<|im_start|>assistant\n<think>\nSimple addition.\n</think>\n\n4<|im_end|>",
    )


def test_null_content_reaches_a_go_template_as_empty() -> None:
    conv = Conversation([{"role": "assistant", "content": None, "tool_calls": []}])
    assert null_content_read_as_empty(conv)[0].messages[0]["content"] == ""


def test_a_divergence_is_judged_by_its_exact_expectation() -> None:
    variant = CATALOG.variant("qwq-fixed")
    render = official_renderer(hf_prompter(CATALOG, variant))
    conv, restore = content_printed_whole(HISTORY)
    daemon = restore(render(conv))  # what Ollama builds: the earlier reasoning kept
    known = variant.family.divergences
    result = judge_prompts("history", HISTORY, render(HISTORY), daemon, known=known, render=render)
    assert (result.status, result.compared_with) == ("known", "transformed")
    assert result.divergences == ("reasoning-in-history-content",)
    # One character more anywhere and the divergence no longer explains it.
    wrong = judge_prompts(
        "history", HISTORY, render(HISTORY), daemon + " ", known=known, render=render
    )
    assert wrong.status == "fail" and "expected prompt (transformed)" in wrong.detail
    # Without a way to render the expectation, nothing is excused.
    blind = judge_prompts("history", HISTORY, render(HISTORY), daemon, known=known)
    assert blind.status == "fail"


# A tool conversation of the corpus: two tools, two calls with their results, a new user turn.
TOOLS = next(c for c in load_corpus() if c.name == "tools-system-call-result")


def _engine_prompt(variant_name: str, conv: Conversation) -> tuple[str, str]:
    """The official prompt of `conv`, and the one Ollama builds for it (the exact expectation,
    which tests/test_families_live.py holds against every pinned daemon)."""
    variant = CATALOG.variant(variant_name)
    render = official_renderer(hf_prompter(CATALOG, variant))
    expected, restores = conv, []
    for divergence in [d for d in variant.family.divergences if d.applies(conv)]:
        expected, restore = EXPECTATIONS[divergence.expect](expected, "", divergence.bos_token)
        restores.append(restore)
    prompt = render(expected)
    for restore in reversed(restores):
        prompt = restore(prompt)
    return render(conv), prompt


def _judge(variant_name: str, conv: Conversation, engine_prompt: str) -> str:
    variant = CATALOG.variant(variant_name)
    render = official_renderer(hf_prompter(CATALOG, variant))
    result = judge_prompts(
        conv.name,
        conv,
        render(conv),
        engine_prompt,
        known=variant.family.divergences,
        render=render,
    )
    return result.status


@pytest.mark.parametrize("variant_name", ["qwq-fixed", "qwen3-thinking"])
def test_tool_mutants_fail_where_a_mask_called_them_identical(variant_name: str) -> None:
    """Each engine prompt below was judged "masked: identical" while masks hid the tool list and
    the arguments: a gutted schema, a dropped tool, emptied or reordered arguments."""
    official, prompt = _engine_prompt(variant_name, TOOLS)
    assert _judge(variant_name, TOOLS, prompt) in ("pass", "known")
    weather, add = (
        json.dumps(tool_as_ollama_keeps_it(t), ensure_ascii=False) for t in TOOLS.tools or []
    )
    assert weather in prompt and add in prompt  # each tool printed as transformers does
    gutted = prompt.replace(weather, '{"name":"WRONG_TOOL"}')
    dropped = prompt.replace("\n" + add, "")
    emptied = prompt.replace('"arguments": {"a": 2, "b": 40}', '"arguments": {}')
    reordered = prompt.replace('"arguments": {"a": 2, "b": 40}', '"arguments": {"b": 40, "a": 2}')
    for mutant in (gutted, dropped, emptied, reordered):
        assert mutant != prompt
        assert _judge(variant_name, TOOLS, mutant) == "fail"


@pytest.mark.parametrize("variant_name", ["qwq-fixed", "qwen3-thinking"])
def test_a_mutated_conversation_reaching_the_engine_fails(variant_name: str) -> None:
    """The engine builds its prompt from a conversation other than the one sent (a tool lost,
    a schema emptied, arguments lost or changed): judged against the conversation sent, it
    fails."""
    tools = TOOLS.tools or []
    gutted_tool = {"type": "function", "function": {"name": "WRONG_TOOL"}}
    calls = [i for i, m in enumerate(TOOLS.messages) if m.get("tool_calls")]
    emptied = [dict(m) for m in TOOLS.messages]
    [index] = calls
    emptied[index] = {
        **emptied[index],
        "tool_calls": [
            {**c, "function": {**c["function"], "arguments": {}}}
            for c in emptied[index]["tool_calls"]
        ],
    }
    changed = [dict(m) for m in TOOLS.messages]
    changed[index] = {
        **changed[index],
        "tool_calls": [
            {**c, "function": {**c["function"], "arguments": {"a": 2, "b": 41}}}
            if c["function"]["name"] == "add"
            else c
            for c in changed[index]["tool_calls"]
        ],
    }
    for mutated in (
        Conversation(TOOLS.messages, tools[:1], TOOLS.name),
        Conversation(TOOLS.messages, [gutted_tool, tools[1]], TOOLS.name),
        Conversation(emptied, tools, TOOLS.name),
        Conversation(changed, tools, TOOLS.name),
    ):
        _, engine_prompt = _engine_prompt(variant_name, mutated)
        assert _judge(variant_name, TOOLS, engine_prompt) == "fail"


def test_a_tool_is_read_as_ollamas_structs_keep_it() -> None:
    """templateTool (template/template.go) and ToolProperty (api/types.go): top-level property
    names sorted, nested ones in the client's order, a single type as a string, keys outside
    the structs (default, minimum, additionalProperties) and empty ones gone, whole floats
    without `.0`; printed in the order our TEMPLATE prints (templates/tool_json.gotmpl.j2)."""
    tool = {
        "function": {
            "parameters": {
                "properties": {
                    "z": {"default": 1, "minimum": 0, "type": ["integer"], "description": ""},
                    "a": {
                        "properties": {"y": {"type": ["string", "null"]}, "b": {"enum": [1.0]}},
                        "description": "nested",
                        "type": "object",
                        "additionalProperties": False,
                    },
                },
                "type": "object",
                "required": ["z"],
            },
            "description": "",
            "name": "f",
        },
        "type": "function",
    }
    assert json.dumps(tool_as_ollama_keeps_it(tool)) == (
        '{"type": "function", "function": {"name": "f", "parameters": {"type": "object", '
        '"properties": {"a": {"type": "object", "description": "nested", "properties": '
        '{"y": {"type": ["string", "null"]}, "b": {"enum": [1]}}}, "z": {"type": "integer"}}, '
        '"required": ["z"]}}}'
    )


def test_llama_servers_tool_expectations() -> None:
    """llama-server (b11076) fills in an empty description after a tool's name and prints an
    integral float argument without `.0`; tests/test_llama_cpp_live.py holds both live."""
    conv = Conversation(
        [
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"function": {"name": "f", "arguments": {"n": 1500.0, "x": 0.5}}}],
            }
        ],
        [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    )
    assert CONDITIONS["tool_without_description"](conv)
    assert CONDITIONS["integral_float_in_arguments"](conv)
    [tool] = tool_description_defaulted(conv)[0].tools or []
    assert list(tool["function"].items()) == [
        ("name", "f"),
        ("description", ""),
        ("parameters", {"type": "object"}),
    ]
    [message] = integral_floats_printed_whole(conv)[0].messages
    arguments = message["tool_calls"][0]["function"]["arguments"]
    assert json.dumps(arguments) == '{"n": 1500, "x": 0.5}'
    assert conv.messages[0]["tool_calls"][0]["function"]["arguments"]["n"] == 1500.0  # untouched
