"""Malformed input of every kind: exit code 2, one line naming the file (and line and field
where there is one), and every output file and the daemon's model list exactly as before."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from qwq_ollama.daemon.client import OllamaAPI

from .conftest import run_cli, snapshot

CATALOG = "modelfiles/models.yaml"
CHAT_J2 = "templates/qwq/chat_template.jinja.j2"
VARIANT_TAIL = "      min_p: 0.1\n"  # first found in qwq-minp's parameters


@dataclass(frozen=True)
class Case:
    id: str
    file: str  # which file the bad input lives in (relative to the project copy)
    old: str | None  # text to replace (None: replace the whole file with `new`)
    new: str | bytes
    command: str = "render"  # render | prompt | create
    field: str | None = None  # expected in the message
    line: bool = False  # the message must carry a line number


def yaml_case(id: str, old: str, new: str, field: str | None = None, line: bool = True) -> Case:
    return Case(id, CATALOG, old, new, field=field, line=line)


def conv_case(id: str, content: object, field: str | None = None) -> Case:
    text = content if isinstance(content, (str, bytes)) else json.dumps(content)
    return Case(id, "conversation.json", None, text, command="prompt", field=field)


def gguf_case(id: str, content: bytes | None) -> Case:
    return Case(
        id,
        "weights.gguf",
        None,
        content if content is not None else b"",
        command="create",
        field="weights.local.gguf",
        line=True,
    )


NUM_CTX = "    num_ctx: 16384\n"  # the last line of the defaults' parameters
CASES: list[Case] = [
    # YAML itself
    yaml_case("yaml-unclosed-flow", NUM_CTX, NUM_CTX + '    stop: ["<|im_end|>", "<|im_start|>"\n'),
    yaml_case("yaml-tab-indent", "  qwq-minp:\n", "\tqwq-minp:\n"),
    yaml_case(
        "yaml-python-tag",
        "  template: qwq\n",
        "  template: !!python/object/apply:os.system ['echo pwned']\n",
    ),
    yaml_case("yaml-bad-mapping", "  qwq-fixed:\n", "  qwq-fixed: : :\n"),
    Case("yaml-top-level-list", CATALOG, None, "- qwq-fixed\n- qwq-minp\n"),
    Case("yaml-empty-file", CATALOG, None, ""),
    Case("yaml-not-utf8", CATALOG, None, b"weights:\n  \xff\xfe: {}\n"),
    # unknown keys
    yaml_case(
        "unknown-top-key",
        "templates: ../templates\n",
        "templates: ../templates\nweigths: {}\n",
        "weigths",
    ),
    yaml_case(
        "unknown-default-variant",
        "default_variants: [qwq-fixed, qwq-noprefill",
        "default_variants: [qwq-fixed, qwq-nofill",
        "default_variants.1",
    ),
    yaml_case(
        "unknown-variant-key",
        "    think_prefill: false\n",
        "    think_prefill: false\n    temprature: 0.6\n",
        "variants.qwq-noprefill.temprature",
    ),
    yaml_case(
        "unknown-weights-key",
        "    builtin: smollm2-135m\n",
        "    builtin: smollm2-135m\n    path: ./x.gguf\n",
        "weights.smollm2-135m.path",
    ),
    # wrong types
    yaml_case(
        "type-temperature-string",
        "temperature: 1.5",
        "temperature: hot",
        "variants.qwq-minp.parameters.temperature",
    ),
    yaml_case(
        "type-num-ctx-float", "num_ctx: 16384", "num_ctx: 16384.5", "defaults.parameters.num_ctx"
    ),
    yaml_case(
        "type-stop-string",
        NUM_CTX,
        NUM_CTX + '    stop: "<|im_end|>"\n',
        "defaults.parameters.stop",
    ),
    yaml_case(
        "type-prefill-string",
        "think_prefill: true",
        'think_prefill: "yes"',
        "defaults.think_prefill",
    ),
    yaml_case(
        "type-variants-list",
        "  qwq-fixed:\n    description:",
        "  - qwq-fixed:\n    description:",
        None,
    ),
    yaml_case(
        "type-num-ctx-bool", "num_ctx: 16384", "num_ctx: true", "defaults.parameters.num_ctx"
    ),
    # out of range
    yaml_case(
        "range-temperature-negative",
        "temperature: 1.5",
        "temperature: -1",
        "variants.qwq-minp.parameters.temperature",
    ),
    yaml_case(
        "range-top-p-above-1", "top_p: 1.0", "top_p: 1.5", "variants.qwq-minp.parameters.top_p"
    ),
    yaml_case(
        "range-min-p-negative", "min_p: 0.1", "min_p: -0.1", "variants.qwq-minp.parameters.min_p"
    ),
    yaml_case("range-num-ctx-zero", "num_ctx: 16384", "num_ctx: 0", "defaults.parameters.num_ctx"),
    yaml_case(
        "range-num-ctx-negative", "num_ctx: 16384", "num_ctx: -5", "defaults.parameters.num_ctx"
    ),
    yaml_case(
        "range-top-k-negative", "top_k: 0", "top_k: -1", "variants.qwq-minp.parameters.top_k"
    ),
    yaml_case(
        "range-repeat-penalty-zero",
        "repeat_penalty: 1.0",
        "repeat_penalty: 0",
        "defaults.parameters.repeat_penalty",
    ),
    yaml_case(
        "range-stop-empty",
        NUM_CTX,
        NUM_CTX + '    stop: ["<|im_end|>", ""]\n',
        "defaults.parameters.stop",
    ),
    yaml_case(
        "range-stop-duplicate",
        NUM_CTX,
        NUM_CTX + '    stop: ["<|im_end|>", "<|im_end|>"]\n',
        "defaults.parameters.stop",
    ),
    # parameter names Ollama v0.24.0 does not know
    yaml_case(
        "param-mirostat",
        VARIANT_TAIL,
        VARIANT_TAIL + "      mirostat: 2\n",
        "variants.qwq-minp.parameters.mirostat",
    ),
    yaml_case(
        "param-capitalised",
        VARIANT_TAIL,
        VARIANT_TAIL + "      Temperature: 0.7\n",
        "variants.qwq-minp.parameters.Temperature",
    ),
    yaml_case(
        "param-tfs-z",
        VARIANT_TAIL,
        VARIANT_TAIL + "      tfs_z: 1.0\n",
        "variants.qwq-minp.parameters.tfs_z",
    ),
    yaml_case(
        "param-penalize-newline",
        VARIANT_TAIL,
        VARIANT_TAIL + "      penalize_newline: true\n",
        "variants.qwq-minp.parameters.penalize_newline",
    ),
    yaml_case(
        "param-llama-cpp-name",
        VARIANT_TAIL,
        VARIANT_TAIL + "      dry_multiplier: 0.5\n",
        "variants.qwq-minp.parameters.dry_multiplier",
    ),
    # names
    yaml_case(
        "name-duplicate-variant", "  qwq-baseline:\n", "  qwq-fixed:\n", "variants.qwq-fixed"
    ),
    yaml_case(
        "name-duplicate-parameter",
        "      top_k: 0\n",
        "      top_k: 0\n      top_k: 20\n",
        "variants.qwq-minp.parameters.top_k",
    ),
    yaml_case("name-uppercase", "  qwq-minp:\n", "  QWQ-MINP:\n", "variants.QWQ-MINP"),
    yaml_case("name-slash", "  qwq-minp:\n", "  qwq/minp:\n", "variants.qwq/minp"),
    yaml_case("name-dot-dot", "  qwq-minp:\n", "  ../minp:\n", "variants.../minp"),
    yaml_case("name-too-long", "  qwq-minp:\n", "  " + "q" * 81 + ":\n", "variants." + "q" * 81),
    yaml_case("name-weights-space", "  smollm2-135m:\n", "  smol lm:\n", "weights.smol lm"),
    # missing references
    yaml_case(
        "missing-weights", "  weights: qwq-32b\n", "  weights: qwq-64b\n", "defaults.weights"
    ),
    yaml_case("missing-template", "  template: qwq\n", "  template: qwen\n", "defaults.template"),
    yaml_case(
        "template-escapes-folder",
        "  template: qwq\n",
        "  template: ../modelfiles\n",
        "defaults.template",
    ),
    yaml_case(
        "extends-unknown",
        "    think_prefill: false\n",
        "    think_prefill: false\n    extends: qwq-nothing\n",
        "variants.qwq-noprefill.extends",
    ),
    yaml_case(
        "extends-cycle",
        "    think_prefill: false\n",
        "    think_prefill: false\n    extends: qwq-noprefill\n",
        "variants.qwq-noprefill.extends",
    ),
    yaml_case(
        "weights-two-sources",
        "    builtin: smollm2-135m\n",
        "    builtin: smollm2-135m\n    gguf: ./x.gguf\n",
        "weights.smollm2-135m",
    ),
    yaml_case("weights-no-source", "    builtin: smollm2-135m\n", "", "weights.smollm2-135m"),
    yaml_case(
        "weights-bad-hf-repo",
        "repo: unsloth/QwQ-32B-GGUF",
        "repo: not a repo",
        "weights.qwq-32b.hf.repo",
    ),
    yaml_case("num-ctx-unset", "    num_ctx: 16384\n", "", "variants.qwq-fixed.parameters"),
    yaml_case(
        "system-unrepresentable",
        "    think_prefill: false\n",
        '    think_prefill: false\n    system: "a\\u200db"\n',
        "variants.qwq-noprefill.system",
    ),
    yaml_case(
        "system-closing-quotes",
        "    think_prefill: false\n",
        '    think_prefill: false\n    system: "one\\nline ends \\"\\"\\"\\ntwo"\n',
        "variants.qwq-noprefill.system",
    ),
    # issue 13: hostile catalogs given to `create` are refused before the daemon is asked
    Case(
        "create-description-injects-lines",
        CATALOG,
        "    description: The official template with the <think> prefill and Qwen's sampling.\n",
        '    description: "ok\\nFROM /etc/passwd\\nPARAMETER temperature 9"\n',
        command="create",
        field="variants.qwq-fixed.description",
        line=True,
    ),
    Case(
        "create-gguf-path-injects-lines",
        CATALOG,
        "    gguf: ../weights.gguf\n",
        '    gguf: "../weights.gguf\\nSYSTEM evil"\n',
        command="create",
        field="weights.local.gguf",
        line=True,
    ),
    Case(
        "create-yaml-billion-laughs",
        CATALOG,
        "templates: ../templates\n",
        "templates: ../templates\n"
        + "".join(
            f"l{n}: &l{n} [" + ",".join([f"*l{n - 1}" if n else '"lol"'] * 9) + "]\n"
            for n in range(9)
        ),
        command="create",
        line=True,
    ),
    # templates with Jinja errors (meta level)
    Case("template-syntax-error", CHAT_J2, "(( variant ))", "(% if %)"),
    Case(
        "template-undefined-value",
        CHAT_J2,
        "(( generation_prompt | jinja_string ))",
        "(( generation_promt | jinja_string ))",
    ),
    Case(
        "template-sandbox-escape",
        CHAT_J2,
        "(( variant ))",
        "(( ''.__class__.__mro__[1].__subclasses__() ))",
    ),
    # conversation files that are not valid chat JSON
    conv_case("conv-invalid-json", '[{"role": "user", "content": "hi"'),
    conv_case("conv-number", 42),
    conv_case("conv-empty-list", [], "messages"),
    conv_case("conv-missing-role", [{"content": "hi"}], "messages[0].role"),
    conv_case("conv-unknown-role", [{"role": "robot", "content": "hi"}], "messages[0].role"),
    # content as a list holds text parts ({type: text, text}), as OpenAI clients send it
    conv_case("conv-content-list", [{"role": "user", "content": ["hi"]}], "messages[0].content[0]"),
    # null content is an assistant's, beside its tool calls, and nobody else's
    conv_case("conv-content-null", [{"role": "user", "content": None}], "messages[0].content"),
    conv_case(
        "conv-tool-calls-on-user",
        [{"role": "user", "content": "", "tool_calls": []}],
        "messages[0].tool_calls",
    ),
    # A JSON string holding an object is what OpenAI clients send; anything else is refused.
    conv_case(
        "conv-arguments-string-not-an-object",
        [
            {"role": "user", "content": "x"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"function": {"name": "f", "arguments": "[1, 2]"}}],
            },
        ],
        "messages[1].tool_calls[0]",
    ),
    conv_case(
        "conv-unknown-message-key",
        [{"role": "user", "content": "x", "speaker": "bob"}],
        "messages[0]",
    ),
    conv_case(
        "conv-tools-not-list",
        {"messages": [{"role": "user", "content": "x"}], "tools": {"a": 1}},
        "tools",
    ),
    conv_case("conv-not-utf8", b'[{"role": "user", "content": "\xff"}]'),
    # GGUFs that are not GGUFs
    gguf_case("gguf-text-file", b"this is not a model\n"),
    gguf_case("gguf-empty", None),
    gguf_case("gguf-truncated-header", b"TRUNCATED"),  # replaced by a real prefix below
]


def _apply(case: Case, root: Path, small_gguf: Path | None) -> Path:
    target = root / case.file
    if case.id == "gguf-truncated-header":
        assert small_gguf is not None
        target.write_bytes(small_gguf.read_bytes()[:200_000])
    elif case.old is None:
        target.write_bytes(case.new if isinstance(case.new, bytes) else case.new.encode())
    else:
        text = target.read_text()
        assert case.old in text, (case.id, case.old)
        target.write_text(text.replace(case.old, str(case.new), 1))
    return target


def _assert_one_line_error(
    case: Case, result: subprocess.CompletedProcess[str], named: str, bad_file: Path
) -> None:
    """Exit 2 and a single `Error: ` line naming the file, and its line and field if known."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    errors = [ln for ln in lines if ln.startswith("Error: ")]
    # `create` streams the daemon's progress first; the error is still a single last line.
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    if case.command != "create":
        assert len(lines) == 1, result.stderr
    message = lines[-1]
    assert named in message or str(bad_file.resolve()) in message, message
    if case.line:
        assert re.search(re.escape(named) + r":\d+: ", message), message
    if case.field:
        assert re.search(": " + re.escape(case.field) + r"[.:\[]", message), message
    assert "Traceback" not in result.stderr


OFFLINE = [c for c in CASES if c.command != "create"]
CREATE = [c for c in CASES if c.command == "create"]


def test_the_table_is_large_enough() -> None:
    print(f"bad-input cases: {len(CASES)} ({len(OFFLINE)} without a daemon)")
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", OFFLINE, ids=lambda c: c.id)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(case: Case, project_copy: Path) -> None:
    root = project_copy
    catalog = root / CATALOG
    (root / "conversation.json").write_text('[{"role": "user", "content": "hello"}]')
    bad_file = _apply(case, root, None)
    before = snapshot(root / "modelfiles")
    if case.command == "render":
        result = run_cli("render", "--catalog", str(catalog))
    else:
        result = run_cli(
            "prompt", "qwq-fixed", "--messages", str(bad_file), "--catalog", str(catalog)
        )
    _assert_one_line_error(case, result, str(bad_file), bad_file)
    assert snapshot(root / "modelfiles") == before


@pytest.mark.parametrize("case", CREATE, ids=lambda c: c.id)
def test_bad_weights_are_one_line_exit_2_and_the_daemon_keeps_its_models(
    case: Case, project_copy: Path, small_gguf: Path, daemon, api: OllamaAPI
) -> None:
    root = project_copy
    catalog = root / CATALOG
    catalog.write_text(
        catalog.read_text().replace(
            "weights:\n", "weights:\n  local:\n    gguf: ../weights.gguf\n", 1
        )
    )
    bad_file = _apply(case, root, small_gguf)
    before_files = snapshot(root / "modelfiles")
    before_models = sorted(api.list_names())
    result = run_cli(
        "create",
        "qwq-fixed",
        "--weights",
        "local",
        "--catalog",
        str(catalog),
        "--host",
        daemon.host,
    )
    _assert_one_line_error(case, result, str(catalog), bad_file)
    assert snapshot(root / "modelfiles") == before_files
    assert sorted(api.list_names()) == before_models
