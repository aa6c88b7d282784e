"""Render a Hugging Face chat template the way transformers' `apply_chat_template` does.

Same environment as transformers: an immutable sandbox, `trim_blocks` and `lstrip_blocks`,
loop controls, a `tojson` that keeps non-ASCII and does not HTML-escape, `raise_exception` and
`strftime_now`. transformers itself is far heavier than this, so it is only a test dependency:
the tests check this module against it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

from qwq_ollama.errors import InputError


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


@lru_cache(maxsize=32)
def compile_chat_template(source: str) -> jinja2.Template:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env.from_string(source)


def render_chat(
    source: str,
    messages: list[dict[str, Any]],
    *,
    tools: list[dict[str, Any]] | None = None,
    add_generation_prompt: bool = True,
    **extra: Any,
) -> str:
    """The prompt text for `messages`; template errors become one-line InputErrors."""
    try:
        template = compile_chat_template(source)
        return template.render(
            messages=messages, tools=tools, add_generation_prompt=add_generation_prompt, **extra
        )
    except jinja2.TemplateSyntaxError as exc:
        raise InputError(f"chat template syntax error: {exc.message}", line=exc.lineno) from None
    except SyntaxError as exc:  # Jinja compiles `{% break %}` outside a loop to broken Python
        raise InputError(f"chat template does not compile: {exc.msg}") from None
    except jinja2.TemplateError as exc:
        raise InputError(f"chat template failed on this conversation: {exc}") from None
    except (TypeError, ValueError, AttributeError, LookupError, ArithmeticError) as exc:
        # Python's own errors inside the template, e.g. `'...' + message.content` for a null
        # content (an OpenAI tool call), which many published templates do not expect.
        raise InputError(
            f"chat template failed on this conversation: {type(exc).__name__}: {exc}"
        ) from None


# Bounds for a template nobody on this side wrote (a GGUF's embedded one): the sandbox holds
# against escapes, not against cost, so it renders in a child process with these limits.
UNTRUSTED_CPU_SECONDS = 10
UNTRUSTED_MEMORY = 1 << 30  # bytes of address space for the child, Python and Jinja included
UNTRUSTED_OUTPUT = 16 << 20  # characters of all prompts together
_MEMORY_EXIT = 3


@dataclass(frozen=True)
class RenderJob:
    """One rendering of a template: what `render_chat` takes besides the source."""

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    add_generation_prompt: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def render_untrusted(
    source: str,
    jobs: list[RenderJob],
    *,
    what: str = "the chat template",
    cpu_seconds: int = UNTRUSTED_CPU_SECONDS,
    memory: int = UNTRUSTED_MEMORY,
) -> list[str | None]:
    """Each job's prompt (None where the template fails on it), rendered in a child process
    bounded in CPU time, memory (setrlimit) and output; a template that loops forever or
    builds a 4 GB string is one-line InputError naming the bound, not a hang or a dead tool."""
    import subprocess
    import sys

    def limits() -> None:  # in the child, before it runs anything
        import resource

        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    request = json.dumps(
        {
            "source": source,
            "jobs": [
                {
                    "messages": j.messages,
                    "tools": j.tools,
                    "add_generation_prompt": j.add_generation_prompt,
                    "extra": j.extra,
                }
                for j in jobs
            ],
        }
    )
    code = "from qwq_ollama.catalog.chat_template import _render_in_child; _render_in_child()"
    try:
        done = subprocess.run(
            [sys.executable, "-c", code],
            input=request.encode(),
            capture_output=True,
            preexec_fn=limits,  # noqa: PLW1509
            timeout=cpu_seconds * 3 + 30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise InputError(
            f"{what} did not finish rendering within {cpu_seconds * 3 + 30} s: refused"
        ) from None
    if done.returncode == _MEMORY_EXIT or (done.returncode != 0 and b"MemoryError" in done.stderr):
        raise InputError(f"{what} needed more than {memory >> 20} MiB to render: refused")
    if done.returncode != 0:
        import signal

        if done.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
            raise InputError(f"{what} ran past {cpu_seconds} s of CPU time rendering: refused")
        raise InputError(
            f"{what} could not be rendered (the renderer exited with {done.returncode})"
        )
    answer = json.loads(done.stdout)
    if answer.get("too_big"):
        raise InputError(
            f"{what} rendered more than {UNTRUSTED_OUTPUT >> 20} M characters: refused"
        )
    return [None if p is None else str(p) for p in answer["prompts"]]


def _render_in_child() -> None:
    """The child's side of `render_untrusted`: a request on stdin, the prompts on stdout."""
    import sys

    try:
        request = json.loads(sys.stdin.buffer.read())
        prompts: list[str | None] = []
        total = 0
        for job in request["jobs"]:
            try:
                prompt: str | None = render_chat(
                    request["source"],
                    job["messages"],
                    tools=job["tools"],
                    add_generation_prompt=job["add_generation_prompt"],
                    **job["extra"],
                )
            except MemoryError:
                raise
            except Exception:  # noqa: BLE001 - any failure of an untrusted template: no prompt
                prompt = None
            total += len(prompt or "")
            if total > UNTRUSTED_OUTPUT:
                sys.stdout.write(json.dumps({"too_big": True}))
                return
            prompts.append(prompt)
        sys.stdout.write(json.dumps({"prompts": prompts}))
    except MemoryError:
        sys.stdout = sys.__stdout__
        raise SystemExit(_MEMORY_EXIT) from None
