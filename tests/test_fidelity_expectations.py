"""The exact expectations a divergence without a mask is judged by: the official rendering of the
conversation as Ollama transforms it. Fast checks of our own logic; the live tests hold them
against every pinned daemon (tests/test_families_live.py)."""

from __future__ import annotations

from qwq_ollama.catalog.conversation import (
    Conversation,
    content_printed_whole,
    null_content_read_as_empty,
    ollama_merges_roles,
    ollama_strips_earlier_reasoning,
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
