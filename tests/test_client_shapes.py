"""The message shapes OpenAI and Hugging Face clients send are read at the one door every
conversation goes through (catalog/conversation.py, parse_conversation), as Ollama's /v1
endpoint reads them: `name` and `tool_call_id` on tool messages, `content: null`, content as a
list of text parts, `reasoning_content` beside `thinking`, `type` and `id` on tool calls."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qwq_ollama.catalog.conversation import as_hf_messages, parse_conversation
from qwq_ollama.catalog.render import hf_prompter
from qwq_ollama.catalog.schema import load_catalog
from qwq_ollama.errors import InputError

from .conftest import run_cli

CATALOG = load_catalog()
TOOL = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two integers.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
}
# An agent loop as the OpenAI SDK sends it.
OPENAI: list[dict[str, Any]] = [
    {"role": "system", "content": [{"type": "text", "text": "You add."}]},
    {
        "role": "user",
        "content": [{"type": "text", "text": "2 + 40?"}, {"type": "text", "text": "Then 1 + 1."}],
    },
    {
        "role": "assistant",
        "content": None,
        "reasoning_content": "Two calls.",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "add", "arguments": '{"a": 2, "b": 40}'},
            },
            {
                "id": "call_2",
                "type": "function",
                "function": {"name": "add", "arguments": '{"a": 1, "b": 1}'},
            },
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "name": "add", "content": "42"},
    {"role": "tool", "tool_call_id": "call_2", "content": "2"},
    {"role": "assistant", "content": "42 and 2."},
    {"role": "user", "content": "Thanks."},
]
# The same conversation in the keys Ollama's /api/chat takes.
OLLAMA: list[dict[str, Any]] = [
    {"role": "system", "content": "You add."},
    {"role": "user", "content": "2 + 40?\n\nThen 1 + 1."},
    {
        "role": "assistant",
        "content": None,
        "thinking": "Two calls.",
        "tool_calls": OPENAI[2]["tool_calls"],
    },
    {"role": "tool", "tool_call_id": "call_1", "tool_name": "add", "content": "42"},
    {"role": "tool", "tool_call_id": "call_2", "tool_name": "add", "content": "2"},
    {"role": "assistant", "content": "42 and 2."},
    {"role": "user", "content": "Thanks."},
]


def test_openai_shapes_read_as_ollamas_v1_reads_them() -> None:
    conv = parse_conversation({"messages": OPENAI, "tools": [TOOL]})
    assert conv.messages == OLLAMA
    # The HF rendering reads reasoning as transformers' templates do.
    assert as_hf_messages(conv.messages)[2]["reasoning_content"] == "Two calls."


# Not QwQ: its official template cuts every earlier assistant's content, and fails on the null
# one the SDK sends beside tool calls (transformers fails the same way).
@pytest.mark.parametrize("variant_name", ["qwen3-thinking", "r1-distill-qwen"])
def test_openai_shapes_render_as_the_ollama_shape_does(variant_name: str) -> None:
    prompt = hf_prompter(CATALOG, CATALOG.variant(variant_name))
    openai = parse_conversation({"messages": OPENAI, "tools": [TOOL]})
    ollama = parse_conversation({"messages": OLLAMA, "tools": [TOOL]})
    assert prompt(openai.messages, openai.tools) == prompt(ollama.messages, ollama.tools)
    assert "2 + 40?\n\nThen 1 + 1." in prompt(openai.messages, openai.tools)


def test_prompt_reads_a_file_in_the_openai_shape(tmp_path: Path) -> None:
    path = tmp_path / "openai.json"
    path.write_text(json.dumps({"messages": OPENAI, "tools": [TOOL]}))
    result = run_cli("prompt", "qwen3-thinking", "--messages", str(path))
    assert result.returncode == 0, result.stderr
    same = tmp_path / "ollama.json"
    same.write_text(json.dumps({"messages": OLLAMA, "tools": [TOOL]}))
    assert result.stdout == run_cli("prompt", "qwen3-thinking", "--messages", str(same)).stdout
    assert "<tool_response>\n42\n</tool_response>" in result.stdout


@pytest.mark.parametrize(
    ("message", "field", "words"),
    [
        (
            {"role": "user", "content": [{"type": "image_url", "image_url": "x"}]},
            "content[0]",
            "a content part",
        ),
        ({"role": "user", "content": []}, "content", "no parts"),
        ({"role": "tool", "content": "1", "name": "add", "tool_name": "sub"}, "name", "differ"),
        ({"role": "tool", "content": "1", "name": 3}, "name", "must be a string"),
        (
            {"role": "assistant", "content": "a", "reasoning_content": "r", "thinking": "t"},
            "reasoning_content",
            "differ",
        ),
        (
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"type": "custom", "function": {"name": "f", "arguments": {}}}],
            },
            "tool_calls[0].type",
            "must be function",
        ),
    ],
)
def test_a_bad_client_shape_is_one_line_naming_its_field(
    message: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(InputError) as caught:
        parse_conversation([{"role": "user", "content": "hi"}, message], source="c.json")
    assert str(caught.value).startswith(f"c.json: messages[1].{field}: ")
    assert words in str(caught.value)
