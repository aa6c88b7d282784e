"""Our rendered Hugging Face templates against Qwen's official QwQ-32B template, judged by
transformers itself (the reference implementation of chat-template semantics)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from transformers.utils.chat_template_utils import render_jinja_template

from qwq_ollama.catalog.chat_template import render_chat
from qwq_ollama.catalog.conversation import Conversation, load_corpus, parse_conversation
from qwq_ollama.catalog.render import render_variant

from .conftest import DATA, OFFICIAL_TEMPLATE

FIXTURES = sorted((DATA / "conversations").glob("*.json"))


def _conversations() -> list[Conversation]:
    own = [parse_conversation(json.loads(p.read_text()), source=p) for p in FIXTURES]
    return own + load_corpus()


CONVERSATIONS = _conversations()


def transformers_render(
    template: str, conv: Conversation, add_generation_prompt: bool = True
) -> str:
    tools: list[Any] | None = conv.tools
    return render_jinja_template(
        [conv.messages],
        tools=tools,
        chat_template=template,
        add_generation_prompt=add_generation_prompt,
    )[0][0]


def test_fixture_set_covers_the_template_features() -> None:
    text = json.dumps([c.messages for c in CONVERSATIONS], ensure_ascii=False)
    for feature in ('"tool_calls"', '"role": "tool"', '"role": "system"', "</think>", "中"):
        assert feature in text, feature
    assert len(FIXTURES) >= 5


@pytest.mark.parametrize("conv", CONVERSATIONS, ids=lambda c: c.name)
@pytest.mark.parametrize("generation", [True, False], ids=["gen", "no-gen"])
def test_qwq_fixed_renders_exactly_as_the_official_template(catalog, conv, generation) -> None:
    ours = render_variant(catalog, catalog.variant("qwq-fixed")).hf_template
    assert transformers_render(ours, conv, generation) == transformers_render(
        OFFICIAL_TEMPLATE, conv, generation
    )


@pytest.mark.parametrize("conv", CONVERSATIONS, ids=lambda c: c.name)
def test_noprefill_differs_only_in_the_generation_prompt(catalog, conv) -> None:
    ours = render_variant(catalog, catalog.variant("qwq-noprefill")).hf_template
    official = transformers_render(OFFICIAL_TEMPLATE, conv)
    assert official.endswith("<|im_start|>assistant\n<think>\n")
    assert transformers_render(ours, conv) == official.removesuffix("<think>\n")


@pytest.mark.parametrize("conv", CONVERSATIONS, ids=lambda c: c.name)
def test_our_renderer_has_transformers_semantics(conv) -> None:
    assert render_chat(OFFICIAL_TEMPLATE, conv.messages, tools=conv.tools) == transformers_render(
        OFFICIAL_TEMPLATE, conv
    )


def test_reasoning_in_history_is_dropped(catalog) -> None:
    conv = parse_conversation(
        [
            {"role": "user", "content": "Q1"},
            {"role": "assistant", "content": "<think>\nsecret plan\n</think>\n\nA1"},
            {"role": "user", "content": "Q2"},
        ]
    )
    ours = render_variant(catalog, catalog.variant("qwq-fixed")).hf_template
    prompt = render_chat(ours, conv.messages)
    assert "secret plan" not in prompt
    assert "<|im_start|>assistant\nA1<|im_end|>" in prompt


def test_templates_render_content_as_data_not_code(catalog) -> None:
    payload = "{{ 7 * 7 }} {% for x in range(3) %}x{% endfor %} {{/* go */}}"
    conv = parse_conversation([{"role": "user", "content": payload}])
    ours = render_variant(catalog, catalog.variant("qwq-fixed")).hf_template
    assert payload in render_chat(ours, conv.messages)
    assert "49" not in render_chat(ours, conv.messages)


def test_fixture_files_are_valid_conversations() -> None:
    for path in FIXTURES:
        assert parse_conversation(json.loads(Path(path).read_text()), source=path).messages
