"""The HTML reports and the compare plot, without a daemon: escaping, marked differences, the
honest axes, and `--report` choosing the format by the file's suffix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from qwq_ollama.catalog.prompts import NamedPrompt
from qwq_ollama.checks.ab import RunStats, summarise
from qwq_ollama.checks.findings import Finding
from qwq_ollama.checks.report_html import compare_html, marked_diff, validate_html
from qwq_ollama.checks.validate import ValidationReport

from .conftest import run_cli

HOSTILE = '</pre><script>alert("x")</script><img src=https://example.com/t.png>'


def _run(variant: str, seed: int, looped: bool, thinking: int = 10) -> RunStats:
    return RunStats(
        variant, seed, looped, 5 if looped else None, 0.2, thinking, 0, 30.0, None, "stop"
    )


def _report() -> ValidationReport:
    conversations = [
        {"name": "plain", "status": "pass", "divergences": [], "detail": "identical"},
        {
            "name": "with-tools",
            "status": "known",
            "divergences": ["tool-schema-json"],
            "reasons": ["Go's json prints tool schemas compactly"],
            "detail": "why",
            "hf_prompt": 'A {"a": 1} ' + HOSTILE,
            "ollama_prompt": 'A {"a":1} ' + HOSTILE,
        },
    ]
    return ValidationReport(
        [
            Finding(
                "qwq-fixed",
                "fidelity",
                "known",
                "1/2 identical",
                details={"conversations": conversations},
            ),
            Finding("qwq-fixed", "generation", "fail", HOSTILE, "do " + HOSTILE),
        ],
        "0.24.0",
    )


def test_marked_diff_marks_only_the_differing_bytes_and_escapes_the_rest() -> None:
    left, right = marked_diff('x <b>{"a": 1}', 'x <b>{"a":1}')
    assert left == "x &lt;b&gt;{&#34;a&#34;:<mark> </mark>1}"
    assert right == "x &lt;b&gt;{&#34;a&#34;:1}"


def test_validate_html_escapes_untrusted_text_and_labels_known_divergences() -> None:
    html = validate_html(_report())
    assert "<script" not in html and "<img src=https" not in html
    assert html.count("&lt;script&gt;") == 4  # message, fix, and both prompts
    assert "known divergence\n<code>tool-schema-json</code>: Go&#39;s json prints" in html
    assert html.count("<mark>") == 1
    assert "plain" not in html  # identical conversations carry no prompts to show
    assert 'id="overall">\nFAIL</span>' in html


def test_compare_html_is_one_file_with_the_plot_inline() -> None:
    runs = [_run("qwq-fixed", 1, False), _run("qwq-fixed", 2, True)]
    html = compare_html(
        NamedPrompt("tiny", "x", code=False, run=False), summarise(runs), runs, b"\x89PNG fake"
    )
    assert 'src="data:image/png;base64,iVBORyBmYWtl"' in html
    assert re.findall(r'(?:src|href)="(?!data:)', html) == []
    assert "<td>qwq-fixed</td><td>2</td><td>50%</td>" in html


def test_plot_rates_use_a_fixed_axis_and_show_every_seed() -> None:
    pytest.importorskip("matplotlib")
    from qwq_ollama.checks.ab import figure

    runs = [
        _run("a", 1, False, 10),
        _run("a", 2, False, 30),
        _run("a", 3, False, 50),
        _run("b", 1, False, 20),
    ]
    fig = figure(summarise(runs), runs)
    loop, thinking = fig.axes[0], fig.axes[1]
    assert loop.get_title() == "loop rate (mean)"
    assert loop.get_ylim() == (-4, 104)  # all-zero loop rate: still a 0-100 % axis
    dots = [list(line.get_ydata()) for line in thinking.lines]
    assert dots == [[10, 30, 50], [20]]  # every seed, not only the median bar
    assert [bar.get_height() for bar in thinking.patches] == [30, 20]
    assert fig.axes[2].get_ylim() == (0, 1)  # no answer tokens at all: 0 of 1, not +-0.05
    assert len(fig.axes) == 4  # no code panel for a prompt that asks for no code


@pytest.mark.parametrize(
    ("name", "marker"), [("out.html", "<!DOCTYPE html>"), ("out.md", "# qwq-ollama validate")]
)
def test_validate_report_format_follows_the_suffix(tmp_path: Path, name: str, marker: str) -> None:
    """Even a run that cannot reach its daemon writes its report, in the format asked for."""
    result = run_cli(
        "validate",
        "qwq-fixed",
        "--host",
        "127.0.0.1:9",
        "--seed",
        "1",
        "--timeout",
        "2",
        "--report",
        str(tmp_path / name),
    )
    assert result.returncode == 3
    text = (tmp_path / name).read_text()
    assert text.startswith(marker) and "127.0.0.1:9" in text


def test_findings_carry_prompts_only_where_they_differ() -> None:
    from qwq_ollama.checks.fidelity import FidelityResult
    from qwq_ollama.checks.validate import conversation_details

    same = FidelityResult("plain", "pass", (), "identical", "p" * 5000, "p" * 5000)
    known = FidelityResult("tools", "known", ("tool-schema-json",), "why", "a: 1", "a:1")
    details = conversation_details([same, known])
    assert "hf_prompt" not in details[0] and "ollama_prompt" not in details[0]
    assert (details[1]["hf_prompt"], details[1]["ollama_prompt"]) == ("a: 1", "a:1")
