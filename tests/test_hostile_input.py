"""Hostile input, with no daemon reachable: each class of issue 13, for every command and field it
touches. Each is refused with exit 2 and one line naming the file (and line and field where there
is one), quickly, with every output file as before."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from qwq_ollama.catalog.load import MAX_NODES, load_yaml_with_lines, parse_json, read_text
from qwq_ollama.catalog.modelfile import parse_modelfile
from qwq_ollama.catalog.render import render_variant
from qwq_ollama.catalog.schema import load_catalog
from qwq_ollama.errors import InputError

from .conftest import ROOT, run_cli, snapshot

CATALOG = "modelfiles/models.yaml"
CHAT_J2 = "templates/qwq/chat_template.jinja.j2"
GO_J2 = "templates/qwq/ollama.gotmpl.j2"
MODELFILE_J2 = "templates/Modelfile.j2"
FIXED = "    description: The official template with the <think> prefill and Qwen's sampling.\n"
LOCAL = "weights:\n  local:\n    gguf: ./local.gguf\n"  # added for the cases that need it
RENDER_LOCAL = ("render", "--weights", "local", "--out", "out")


def _laughs(levels: int = 9) -> str:
    """Each anchor stands for nine of the one before: 9**9 strings from nine short lines."""
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for n in range(1, levels):
        lines.append(f"l{n}: &l{n} [" + ",".join([f"*l{n - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Case:
    id: str
    file: str  # the file the hostile text goes into
    old: str | None  # text replaced (None: the whole file becomes `new`)
    new: str
    args: tuple[str, ...] = ("render",)
    field: str | None = None  # named in the message
    line: bool = False  # the message carries file:line


def catalog_case(
    id: str, old: str, new: str, field: str | None, *args: str, line: bool = True
) -> Case:
    return Case(id, CATALOG, old, new, args or ("render",), field, line)


CASES = [
    # 1. catalog strings that would end their context in a rendered file (the probe's own case
    # first), for every field that lands in one; refused whichever command reads the catalog.
    catalog_case(
        "description-injects-lines",
        FIXED,
        '    description: "ok\\nFROM /etc/passwd\\nPARAMETER temperature 9"\n',
        "variants.qwq-fixed.description",
    ),
    *[
        catalog_case(
            f"description-injects-lines-{args[0]}",
            FIXED,
            '    description: "ok\\nFROM /etc/passwd"\n',
            "variants.qwq-fixed.description",
            *args,
        )
        for args in [
            ("create", "qwq-fixed"),
            ("list",),
            ("export", "llama-cpp", "qwq-fixed"),
            ("render", "--check"),
        ]
    ],
    catalog_case(
        "description-carriage-return",
        FIXED,
        '    description: "ok\\rSYSTEM evil"\n',
        "variants.qwq-fixed.description",
    ),
    catalog_case(
        "description-line-separator",
        FIXED,
        '    description: "ok\\u2028x"\n',
        "variants.qwq-fixed.description",
    ),
    catalog_case(
        "weights-description-newline",
        "    description: QwQ-32B, 4-bit",
        '    description: "a\\nFROM x" # QwQ-32B, 4-bit',
        "weights.qwq-32b.description",
    ),
    catalog_case(
        "license-closes-its-quotes",
        "    license: Apache-2.0 (Qwen/QwQ-32B)\n",
        '    license: "MIT\\n\\"\\"\\"\\nPARAMETER temperature 9"\n',
        "weights.qwq-32b.license",
    ),
    catalog_case(
        "license-nul",
        "    license: Apache-2.0 (Qwen/QwQ-32B)\n",
        '    license: "MIT\\0"\n',
        "weights.qwq-32b.license",
    ),
    catalog_case(
        "stop-closes-its-quotes",
        "    num_ctx: 16384\n",
        '    num_ctx: 16384\n    stop: ["a\\n\\"\\"\\"\\nFROM x"]\n',
        "defaults.parameters",
    ),
    catalog_case(
        "system-surrogate",
        "    think_prefill: false\n",
        '    think_prefill: false\n    system: "a\\ud800"\n',
        "variants.qwq-noprefill.system",
    ),
    catalog_case(
        "name-trailing-newline", "  qwq-minp:\n", '  "qwq-minp\\n":\n', "variants.qwq-minp\\n"
    ),
    catalog_case(
        "ollama-ref-injects-lines",
        "    builtin: smollm2-135m\n",
        '    ollama: "qwen\\nSYSTEM evil"\n',
        "weights.smollm2-135m.ollama",
    ),
    catalog_case(
        "ollama-ref-space",
        "    builtin: smollm2-135m\n",
        '    ollama: "qwen 7b"\n',
        "weights.smollm2-135m.ollama",
    ),
    catalog_case(
        "hf-repo-newline",
        "repo: unsloth/QwQ-32B-GGUF",
        'repo: "unsloth/QwQ\\nFROM x"',
        "weights.qwq-32b.hf.repo",
    ),
    catalog_case(
        "hf-quant-newline", "quant: Q4_K_M", 'quant: "Q4\\nFROM x"', "weights.qwq-32b.hf.quant"
    ),
    catalog_case(
        "gguf-path-newline",
        "weights:\n",
        LOCAL.replace("./local.gguf", '"./a\\nSYSTEM evil.gguf"'),
        "weights.local.gguf",
        *RENDER_LOCAL,
    ),
    catalog_case(
        "gguf-path-dropped-rune",
        "weights:\n",
        LOCAL.replace("./local.gguf", '"./a\\u00a0b.gguf"'),
        "weights.local.gguf",
        *RENDER_LOCAL,
    ),
    catalog_case(
        "templates-path-newline",
        "templates: ../templates\n",
        'templates: "../templates\\nx"\n',
        "templates",
    ),
    # 2. template sources whose rendered outputs their readers would refuse
    Case(
        "hf-template-unclosed",
        CHAT_J2,
        "{{- '<|im_start|>assistant' }}",
        "{{- '<|im_start|>assistant' }",
        line=True,
    ),
    Case(
        "hf-template-unclosed-check",
        CHAT_J2,
        "{{- '<|im_start|>assistant' }}",
        "{{- '<|im_start|>assistant' }",
        ("render", "--check"),
        line=True,
    ),
    Case(
        "hf-template-break-outside-loop", CHAT_J2, "{%- if tools %}", "{% break %}\n{%- if tools %}"
    ),
    Case(
        "hf-template-unknown-filter",
        CHAT_J2,
        "fn.arguments | tojson",
        "fn.arguments | json",
        line=True,
    ),
    Case(
        "go-template-unclosed",
        GO_J2,
        '{{- "<|im_end|>\\n" }}\n  {{- else if eq .Role "tool" }}',
        '{{- "<|im_end|>\\n" }\n  {{- else if eq .Role "tool" }}',
        line=True,
    ),
    Case(
        "go-template-unknown-function",
        GO_J2,
        "{{ .Function.Name }}",
        "{{ tojson .Function.Name }}",
        line=True,
    ),
    Case(
        "go-template-call-without-pipeline",
        GO_J2,
        '{{- $prev := "" }}',
        '{{- $prev := "" }}{{ template "x" }}',
        ("render", "--check"),
        line=True,
    ),
    Case(
        "modelfile-template-injects-parameter",
        MODELFILE_J2,
        "(% if license %)",
        "PARAMETER temperature 9\n(% if license %)",
    ),
    Case(
        "modelfile-template-uncommented-description",
        MODELFILE_J2,
        "# (( variant.description ))",
        "(( variant.description ))",
    ),
    Case("modelfile-template-no-from", MODELFILE_J2, "FROM (( from_ ))", "# FROM (( from_ ))"),
    # 3. YAML that expands without bound
    Case("yaml-billion-laughs", CATALOG, None, _laughs(), line=True),
    Case("yaml-billion-laughs-create", CATALOG, None, _laughs(), ("create",), line=True),
    Case(
        "yaml-alias-inside-its-anchor",
        CATALOG,
        "templates: ../templates\n",
        "templates: ../templates\nloop: &loop [*loop]\n",
        line=True,
    ),
    Case("yaml-nested-deep", CATALOG, None, "a: " + "[" * 100_000 + "]" * 100_000, line=True),
    Case(
        "yaml-too-large",
        CATALOG,
        "templates: ../templates\n",
        "templates: ../templates\n# " + "x" * (1 << 20) + "\n",
    ),
    # 5. JSON nested past any real input
    Case(
        "conversation-nested-deep",
        "conversation.json",
        None,
        "[" * 100_000 + "]" * 100_000,
        ("prompt", "qwq-fixed", "--messages", "conversation.json"),
    ),
    Case(
        "conversation-nested-deep-in-content",
        "conversation.json",
        None,
        '[{"role": "user", "content": "hi", "tool_calls": ' + "[" * 5000 + "]" * 5000 + "}]",
        ("prompt", "qwq-fixed", "--messages", "conversation.json"),
    ),
    Case(
        "conversation-surrogate",
        "conversation.json",
        None,
        '[{"role": "user", "content": "\\ud800"}]',
        ("prompt", "qwq-fixed", "--messages", "conversation.json"),
    ),
    Case(
        "tokenizer-config-nested-deep",
        "tokenizer_config.json",
        None,
        '{"pad_token": ' + "[" * 100_000 + "]" * 100_000 + "}",
        ("fix-tokenizer", "tokenizer_config.json"),
    ),
]


def _apply(case: Case, root: Path) -> Path:
    target = root / case.file
    if case.old is None:
        target.write_text(case.new, encoding="utf-8")
    else:
        text = target.read_text(encoding="utf-8")
        assert case.old in text, (case.id, case.old)
        target.write_text(text.replace(case.old, case.new, 1), encoding="utf-8")
    return target


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_hostile_input_is_one_line_exit_2_and_changes_nothing(
    case: Case, project_copy: Path
) -> None:
    root = project_copy
    (root / "modelfiles" / "local.gguf").write_bytes(b"GGUF")
    (root / "conversation.json").write_text('[{"role": "user", "content": "hi"}]')
    _apply(case, root)
    before = snapshot(root)
    catalog = ("--catalog", str(root / CATALOG)) if case.args[0] not in ("fix-tokenizer",) else ()

    started = time.monotonic()
    result = run_cli(*case.args, *catalog, cwd=root)
    elapsed = time.monotonic() - started

    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    message = lines[0]
    named = case.file.split("/")[-1] if case.file != CATALOG else str(root / CATALOG)
    assert named in message, message
    if case.line:
        assert re.search(re.escape(named) + r":\d+: ", message), message
    if case.field:
        assert ": " + case.field + ":" in message, message
    assert snapshot(root) == before
    assert elapsed < 10, f"took {elapsed:.1f} s"


def test_the_table_covers_every_class() -> None:
    ids = " ".join(c.id for c in CASES)
    for fragment in (
        "description",
        "license",
        "stop",
        "system",
        "name",
        "ollama-ref",
        "hf-repo",
        "gguf-path",
        "templates-path",
        "hf-template",
        "go-template",
        "modelfile-template",
        "billion-laughs",
        "nested-deep",
        "conversation",
    ):
        assert fragment in ids, fragment
    assert len(CASES) >= 35


def test_billion_laughs_is_refused_before_it_expands(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(InputError, match=f"expand to more than {MAX_NODES}"):
        load_yaml_with_lines(tmp_path / "c.yaml", _laughs(12))
    # Unbounded, 12 levels expand to 10**12 nodes: hours. Refused, it takes milliseconds; 10 s
    # is far above what a loaded 2-core machine needs and far below the failure.
    assert time.monotonic() - started < 10


def test_yaml_nested_as_deep_as_the_loader_allows_still_loads(tmp_path: Path) -> None:
    """The bounds refuse hostile files only: anchors, aliases and merge keys still work."""
    text = "base: &base {num_ctx: 1, stop: [a, b]}\nv: {<<: *base, top_k: 1}\nw: *base\n"
    loaded = load_yaml_with_lines(tmp_path / "c.yaml", text)
    assert loaded.data["v"] == {"num_ctx": 1, "stop": ["a", "b"], "top_k": 1}
    nested = load_yaml_with_lines(tmp_path / "d.yaml", "a: " + "[" * 31 + "]" * 31)
    assert nested.data["a"] is not None


def test_json_depth_ignores_brackets_inside_strings() -> None:
    text = json.dumps({"messages": [{"content": "[" * 1000 + '"' + "{" * 1000}]})
    assert parse_json(text, "x.json")["messages"][0]["content"].startswith("[[[")
    assert parse_json('["\\ud83d\\ude80"]', "x.json") == ["\U0001f680"]  # a pair is text


def test_read_text_refuses_before_reading_everything(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    big.write_bytes(b" " * 2048)
    with pytest.raises(InputError, match="larger than 1 KiB"):
        read_text(big, 1024)


def test_a_stop_string_with_a_line_break_stays_in_the_exported_scripts_comment(
    project_copy: Path,
) -> None:
    """A stop string may hold a line break (the Modelfile carries it quoted); the llama.cpp
    script `export` prints names it in a comment, where a raw line break would start a
    command of its own."""
    catalog = project_copy / CATALOG
    catalog.write_text(
        catalog.read_text().replace(
            "    num_ctx: 16384\n",
            '    num_ctx: 16384\n    stop: ["<|im_end|>", "\\nrm -rf ~/x #"]\n',
        )
    )
    result = run_cli("export", "llama-cpp", "qwq-fixed", "--catalog", str(catalog))
    assert result.returncode == 0, result.stderr
    assert "'\\nrm -rf ~/x #'" in result.stdout
    assert all(line.startswith("#") for line in result.stdout.splitlines() if "rm -rf" in line)


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    key=st.sampled_from(["repo", "quant"]),
    text=st.one_of(
        st.text(max_size=30),
        st.sampled_from(
            ["a/b\nSYSTEM x", "a/b c", '"a/b"', "org/model.GGUF", "Q4_K_M", "Q4 K", "a/b:c"]
        ),
    ),
)
def test_hf_repo_ids_are_refused_or_read_back_exactly(
    tmp_path_factory, key: str, text: str
) -> None:
    """The HF weights land in FROM as hf.co/REPO:QUANT (no daemon: it would download them)."""
    hf = {"repo": "org/model", "quant": "Q4_K_M", key: text}
    data = {
        "templates": str(ROOT / "templates"),
        "weights": {"w": {"hf": hf}},
        "defaults": {"weights": "w", "template": "qwq"},
        "variants": {"v": {"parameters": {"num_ctx": 2048}}},
    }
    path = tmp_path_factory.mktemp("hf") / "models.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    try:
        catalog = load_catalog(path)
        rendered = render_variant(catalog, catalog.variant("v"))
    except InputError as exc:
        assert exc.field == f"weights.w.hf.{key}", str(exc)
        return
    commands = parse_modelfile(rendered.modelfile)
    assert [v for c, v in commands if c == "model"] == [f"hf.co/{hf['repo']}:{hf['quant']}"]


def test_prompt_over_a_template_jinja_cannot_compile_is_one_line(project_copy: Path) -> None:
    """`prompt` renders the chat template without `render`'s checks; a template Jinja turns
    into broken Python (`{% break %}` outside a loop) is still one line, exit 2."""
    source = project_copy / CHAT_J2
    source.write_text(
        source.read_text().replace("{%- if tools %}", "{% break %}\n{%- if tools %}", 1)
    )
    (project_copy / "conversation.json").write_text('[{"role": "user", "content": "hi"}]')
    result = run_cli(
        "prompt",
        "qwq-fixed",
        "--messages",
        "conversation.json",
        "--catalog",
        str(project_copy / CATALOG),
        cwd=project_copy,
    )
    assert result.returncode == 2
    assert result.stderr == "Error: chat template does not compile: 'break' outside loop\n"
