"""The HTML reports of `validate --report F.html` and `compare --report F.html`.

One self-contained file a person opens in a browser: inline CSS, the plot inline as base64,
nothing fetched. Prompts and model output are untrusted text, so the templates autoescape.
"""

from __future__ import annotations

import base64
import difflib
from typing import Any

import jinja2
import markupsafe

from qwq_ollama.catalog.prompts import NamedPrompt
from qwq_ollama.checks.ab import RunStats, VariantSummary, table_rows
from qwq_ollama.checks.validate import ValidationReport

_STYLE = """
body { margin: 0; font: 15px/1.4 system-ui, sans-serif; color: #222; background: #fff; }
header { background: #1f3a5f; color: #fff; padding: 14px 24px; display: flex;
         align-items: center; justify-content: space-between; }
header h1 { margin: 0; font-size: 22px; }
main { padding: 12px 24px; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 4px; color: #fff;
         font-weight: bold; }
.badge.big { font-size: 20px; padding: 6px 18px; }
.pass { background: #2e7d32; } .known { background: #6a8d2f; } .warn { background: #b26a00; }
.fail, .error { background: #c62828; }
table { border-collapse: collapse; margin: 8px 0 16px; }
td, th { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
.sides { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
pre { white-space: pre-wrap; word-break: break-all; background: #f6f6f6; padding: 8px;
      border: 1px solid #ddd; margin: 0; font-size: 12px; }
mark { background: #ffd400; color: #000; }
.divergence { font-size: 13px; color: #444; }
.divergence code { background: #e8eef6; padding: 1px 4px; }
img { max-width: 100%; }
"""

_BASE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>{{ style }}</style></head>
<body><header><h1>{{ title }}</h1>{% block badge %}{% endblock %}</header>
<main>{% block main %}{% endblock %}</main></body></html>
"""

_VALIDATE = """{% extends "base" %}
{% block badge %}<span class="badge big {{ 'fail' if failed else 'pass' }}" id="overall">
{{ 'FAIL' if failed else 'PASS' }}</span>{% endblock %}
{% block main %}
<p>{{ engine }} {{ version }}</p>
<table><tr><th>variant</th><th>check</th><th>result</th><th>reason</th></tr>
{% for f in findings %}<tr><td>{{ f.subject }}</td><td>{{ f.check }}</td>
<td><span class="badge {{ f.status }}">{{ f.status }}</span></td>
<td>{{ f.message }}{% if f.fix and f.status not in ('pass', 'known') %}<br>
<small>fix: {{ f.fix }}</small>{% endif %}</td></tr>
{% endfor %}</table>
{% for f in findings if f.conversations %}
<h2>{{ f.subject }}: {{ f.check }}</h2>
{% for c in f.conversations %}
<h3><span class="badge {{ c.status }}">{{ c.status }}</span> {{ c.name }}</h3>
{% for key, reason in c.labels %}<p class="divergence">known divergence
<code>{{ key }}</code>: {{ reason }}</p>{% endfor %}
{% if c.status == 'fail' %}<p>{{ c.detail }}</p>{% endif %}
<div class="sides"><div><h4>Hugging Face template</h4><pre>{{ c.hf }}</pre></div>
<div><h4>{{ engine }}</h4><pre>{{ c.live }}</pre></div></div>
{% endfor %}{% endfor %}
{% endblock %}
"""

_COMPARE = """{% extends "base" %}
{% block main %}
<table><tr>{% for cell in header %}<th>{{ cell }}</th>{% endfor %}</tr>
{% for row in rows %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}</table>
<img alt="per-variant comparison" src="data:image/png;base64,{{ png }}">
<h2>Runs</h2>
<table><tr><th>variant</th><th>engine</th><th>seed</th><th>looped</th><th>loop start</th>
<th>done</th><th>code</th></tr>
{% for r in runs %}<tr><td>{{ r.variant }}</td><td>{{ r.engine }}</td><td>{{ r.seed }}</td>
<td><span class="badge {{ 'fail' if r.looped else 'pass' }}">{{ 'yes' if r.looped else 'no' }}
</span></td><td>{{ r.loop_start_token or '-' }}</td><td>{{ r.done_reason or '-' }}</td>
<td>{{ '-' if r.code_ok is none else r.code_ok }}</td></tr>{% endfor %}</table>
{% endblock %}
"""

_ENV = jinja2.Environment(
    loader=jinja2.DictLoader({"base": _BASE, "validate": _VALIDATE, "compare": _COMPARE}),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def marked_diff(a: str, b: str) -> tuple[markupsafe.Markup, markupsafe.Markup]:
    """Both texts escaped, with the spans where they differ in <mark>."""
    left: list[str] = []
    right: list[str] = []
    opcodes = difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
    for tag, i1, i2, j1, j2 in opcodes:
        for out, text in ((left, a[i1:i2]), (right, b[j1:j2])):
            if not text:
                continue
            escaped = markupsafe.escape(text)
            out.append(escaped if tag == "equal" else f"<mark>{escaped}</mark>")
    return markupsafe.Markup("".join(left)), markupsafe.Markup("".join(right))


def _conversations(details: dict[str, Any]) -> list[dict[str, Any]]:
    """The conversations whose prompts differ, each with both prompts marked up."""
    shown = []
    for conv in details.get("conversations", []):
        if "hf_prompt" not in conv:
            continue
        hf, live = marked_diff(conv["hf_prompt"], conv["ollama_prompt"])
        reasons = conv.get("reasons") or [""] * len(conv["divergences"])
        labels = list(zip(conv["divergences"], reasons, strict=False))
        shown.append(
            {
                "name": conv["name"],
                "status": conv["status"],
                "detail": conv["detail"],
                "labels": labels,
                "hf": hf,
                "live": live,
            }
        )
    return shown


def validate_html(report: ValidationReport) -> str:
    findings = [
        {
            "subject": f.subject,
            "check": f.check,
            "status": f.status,
            "message": f.message,
            "fix": f.fix,
            "conversations": _conversations(f.details),
        }
        for f in report.findings
    ]
    return _ENV.get_template("validate").render(
        title="qwq-ollama validate",
        style=_STYLE,
        failed=report.failed,
        engine=report.engine,
        version=report.daemon_version or "unknown",
        findings=findings,
    )


def compare_html(
    prompt: NamedPrompt, summaries: list[VariantSummary], runs: list[RunStats], png: bytes
) -> str:
    rows = table_rows(summaries)
    return _ENV.get_template("compare").render(
        title=f"qwq-ollama compare: prompt {prompt.name}",
        style=_STYLE,
        header=rows[0],
        rows=rows[1:],
        runs=runs,
        png=base64.b64encode(png).decode("ascii"),
    )
