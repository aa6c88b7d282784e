"""Render a Hugging Face chat template the way transformers' `apply_chat_template` does.

Same environment as transformers: an immutable sandbox, `trim_blocks` and `lstrip_blocks`,
loop controls, a `tojson` that keeps non-ASCII and does not HTML-escape, `raise_exception` and
`strftime_now`. transformers itself is far heavier than this, so it is only a test dependency:
the tests check this module against it.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from typing import Any

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

from qwq_ollama.errors import InputError


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None,
            separators: tuple[str, str] | None = None, sort_keys: bool = False) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


@lru_cache(maxsize=32)
def compile_chat_template(source: str) -> jinja2.Template:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env.from_string(source)


def render_chat(source: str, messages: list[dict[str, Any]], *,
                tools: list[dict[str, Any]] | None = None,
                add_generation_prompt: bool = True, **extra: Any) -> str:
    """The prompt text for `messages`; template errors become one-line InputErrors."""
    try:
        template = compile_chat_template(source)
        return template.render(messages=messages, tools=tools,
                               add_generation_prompt=add_generation_prompt, **extra)
    except jinja2.TemplateSyntaxError as exc:
        raise InputError(f"chat template syntax error: {exc.message}", line=exc.lineno) from None
    except SyntaxError as exc:  # Jinja compiles `{% break %}` outside a loop to broken Python
        raise InputError(f"chat template does not compile: {exc.msg}") from None
    except jinja2.TemplateError as exc:
        raise InputError(f"chat template failed on this conversation: {exc}") from None
    except (TypeError, ValueError, AttributeError, LookupError, ArithmeticError) as exc:
        # Python's own errors inside the template, e.g. `'...' + message.content` for a null
        # content (an OpenAI tool call), which many published templates do not expect.
        raise InputError(f"chat template failed on this conversation: "
                         f"{type(exc).__name__}: {exc}") from None
