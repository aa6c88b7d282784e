"""`render` parses each output as its reader will before writing it: the chat template as
transformers does, the Ollama template with Go's text/template, the Modelfile with Ollama's
grammar. These are the readers' own rules, checked here without a daemon."""

from __future__ import annotations

import shutil
from pathlib import Path

import jinja2
import pytest
from transformers.utils.chat_template_utils import _compile_jinja_template

from qwq_ollama.catalog import gotemplate
from qwq_ollama.catalog.chat_template import compile_chat_template
from qwq_ollama.catalog.modelfile import ModelfileSyntaxError, parse_modelfile
from qwq_ollama.go_helpers import GoHelper

from .conftest import run_cli

# (Modelfile text, what Ollama v0.24.0's parser.ParseFile reads from it), from its lexer's rules.
READS = [
    ("FROM x\nPARAMETER temperature 0.7 # x\n", [("model", "x"), ("temperature", "0.7 # x")]),
    ('# c\nFROM  ./a b.gguf \nSYSTEM """a\nb"""\n', [("model", "./a b.gguf"), ("system", "a\nb")]),
    ('FROM x\nSYSTEM """a """ b"""', [("model", "x"), ("system", 'a """ b')]),
    ('FROM x\nSYSTEM "a" and "b"\n', [("model", "x"), ("system", 'a" and "b')]),
    ("FROM x\r\nLICENSE a\r\nLICENSE b", [("model", "x"), ("license", "a"), ("license", "b")]),
    ("FROM a\u00a0b\u200dc\n", [("model", "abc")]),  # runes Go cannot print are dropped
    ("\ufeffFROM x\nMESSAGE user hi there\n", [("model", "x"), ("message", "user: hi there")]),
    ("FROM x\nPARAMETER  temperature 1\n", [("model", "x"), ("", "temperature 1")]),
    ("from x\nsystem hi", [("model", "x"), ("system", "hi")]),
]
REFUSES = [
    ('FROM x\nSYSTEM """a\n"""\nb"""\n', 4, "command must be one of"),
    ('FROM x\nTEMPLATE """never closed\n', None, "unexpected EOF"),
    ("FROM x\nPARAMETER te-mp 1\n", None, "unexpected EOF"),
    ("FROM x\nFOO bar\n", 2, "command must be one of"),
    ("FROM x\r\nFOO bar\r\n", 3, "command must be one of"),  # CR and LF both count a line
    ("FROM x\nMESSAGE robot hi\n", 2, "message role must be one of"),
    ("SYSTEM x\n", None, "no FROM line"),
    ("FROM x\nSYSTEM", None, "unexpected EOF"),
]


@pytest.mark.parametrize("text, commands", READS)
def test_modelfiles_read_as_ollama_reads_them(text: str, commands: list) -> None:
    assert parse_modelfile(text) == commands


@pytest.mark.parametrize("text, line, message", REFUSES)
def test_modelfiles_ollama_refuses_are_refused(text: str, line: int | None, message: str) -> None:
    with pytest.raises(ModelfileSyntaxError, match=message) as caught:
        parse_modelfile(text)
    assert caught.value.line == line


HF_SOURCES = [
    "{{ messages[0].content }}",
    "{% for m in messages %}{% if loop.first %}{% continue %}"
    "{% endif %}{{ m.content | tojson }}{% endfor %}",
    "{{ raise_exception('x') }}",
    "{% if x %}",
    "{{ x | nosuchfilter }}",
    "{{ x is nosuchtest }}",
    "{% break %}",
    "{{ x }",
]


@pytest.mark.parametrize("source", HF_SOURCES)
def test_the_chat_template_check_agrees_with_transformers(source: str) -> None:
    def refused(compile_) -> bool:
        try:
            compile_(source)
        except (jinja2.TemplateSyntaxError, SyntaxError):  # `{% break %}` outside a loop
            return True
        return False

    assert refused(compile_chat_template) == refused(_compile_jinja_template)


needs_go = pytest.mark.skipif(shutil.which("go") is None, reason="no Go toolchain")


@needs_go
def test_the_go_check_reads_templates_as_ollama_does() -> None:
    problems = gotemplate.parse_problems(
        [
            "{{ json .Messages }}{{ currentDate }}{{ yesterdayDate }}{{ toTypeScriptType . }}",
            "a\nb\n{{ if }}",
            "{{ tojson . }}",
            '{{ template "x" }}',
            "{{ .Messages",
        ]
    )
    assert problems == [
        None,
        (3, "missing value for if"),
        (1, 'function "tojson" not defined'),
        (1, "undefined template specified"),
        (1, "unclosed action"),
    ]


@needs_go
def test_the_go_checker_is_built_once_per_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QWQ_OLLAMA_TOOLS", str(tmp_path / "tools"))
    first = gotemplate.helper_binary()
    assert first.is_file() and first.parent.parent == tmp_path / "tools"
    stamp = first.stat().st_mtime_ns
    assert gotemplate.helper_binary() == first and first.stat().st_mtime_ns == stamp
    monkeypatch.setattr(GoHelper, "source", lambda self: b"package main\nnot go\n")
    with pytest.raises(gotemplate.GoUnavailable, match="`go build` of the template checker"):
        gotemplate.helper_binary()  # another source is another build, and this one fails


def test_without_go_render_says_so_in_one_line_and_still_writes(
    project_copy: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    env = {
        "PATH": str(tmp_path / "no-tools"),
        "QWQ_OLLAMA_CACHE": str(tmp_path / "cache"),
        "QWQ_OLLAMA_TOOLS": str(tmp_path / "tools"),
    }
    result = run_cli(
        "render",
        "--catalog",
        str(project_copy / "modelfiles" / "models.yaml"),
        "--out",
        str(out),
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        "note: Go is not installed (no `go` on PATH), so the Ollama "
        "templates were not parsed before writing; the daemon still parses "
        "each one `create` sends\n"
    )
    assert (out / "qwq-fixed.Modelfile").is_file()
