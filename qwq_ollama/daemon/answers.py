"""The daemon's answers as frozen types, as ollama-python's ShowResponse/ProcessResponse: a
caller reads fields, never the JSON. (Kept apart from `wire`, whose parsers the quick `create`
path imports before anything heavy: dataclasses alone would cost it a third of its time.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qwq_ollama.daemon.wire import blob_digest_of, parse_show_parameters


@dataclass(frozen=True)
class Shown:
    """A model as /api/show describes it; the only reading of that answer.

    >>> shown = Shown.from_json({"template": "{{ .Prompt }}", "parameters": "num_ctx 8192",
    ...     "modelfile": "FROM /m/blobs/sha256-" + "a" * 64 + "\\n", "capabilities": ["thinking"],
    ...     "model_info": {"general.architecture": "qwen2", "qwen2.context_length": 32768}})
    >>> shown.parameters, shown.capabilities, shown.context_length
    ({'num_ctx': 8192}, ('thinking',), 32768)
    >>> shown.blob_digest == "sha256:" + "a" * 64
    True
    """

    template: str = ""
    system: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    license: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()
    model_info: dict[str, Any] = field(default_factory=dict)
    tensors: tuple[dict[str, Any], ...] = ()  # only in a verbose answer
    modelfile: str = ""  # the daemon's own Modelfile text, as it answered it
    parser: str | None = None  # the built-in output parser (Modelfile PARSER), if any

    @classmethod
    def from_json(cls, answer: Mapping[str, Any]) -> Shown:
        licence = answer.get("license") or []
        return cls(
            template=str(answer.get("template") or ""),
            system=answer.get("system") or None,
            parameters=parse_show_parameters(str(answer.get("parameters") or "")),
            license=(licence,) if isinstance(licence, str) else tuple(licence),
            capabilities=tuple(answer.get("capabilities") or ()),
            model_info=dict(answer.get("model_info") or {}),
            tensors=tuple(answer.get("tensors") or ()),
            modelfile=str(answer.get("modelfile") or ""),
            parser=_parser_of(answer),
        )

    @property
    def blob_digest(self) -> str | None:
        """The weights blob the model runs over (its Modelfile's FROM line)."""
        return blob_digest_of(self.modelfile)

    @property
    def architecture(self) -> str | None:
        """The GGUF's `general.architecture`: what Ollama calls the model's family, and picks
        behaviour by (it strips earlier reasoning only for qwen3)."""
        value = self.model_info.get("general.architecture")
        return str(value) if value is not None else None

    @property
    def context_length(self) -> int | None:
        """The GGUF's trained `<arch>.context_length`, if the daemon reports it."""
        arch = self.model_info.get("general.architecture")
        value = self.model_info.get(f"{arch}.context_length") if arch else None
        return int(value) if isinstance(value, (int, float)) else None


@dataclass(frozen=True)
class LoadedModel:
    """One model in memory, as /api/ps lists it.

    >>> LoadedModel.from_json({"name": "m:latest", "size": 10, "size_vram": 4})
    LoadedModel(name='m:latest', size=10, size_vram=4, context_length=None)
    """

    name: str
    size: int = 0
    size_vram: int = 0
    context_length: int | None = None

    @classmethod
    def from_json(cls, answer: Mapping[str, Any]) -> LoadedModel:
        context = answer.get("context_length")
        return cls(
            str(answer.get("name") or "?"),
            int(answer.get("size") or 0),
            int(answer.get("size_vram") or 0),
            context if isinstance(context, int) else None,
        )


@dataclass(frozen=True)
class ProgressUpdate:
    """One step of long work on a daemon: Ollama's own create and pull updates, and our uploads
    and hashing, said the same way (a status; bytes done of a total when bytes move).

    >>> ProgressUpdate.from_json({"status": "pulling abc", "total": 10, "completed": 4})
    ProgressUpdate(status='pulling abc', total=10, completed=4)
    """

    status: str
    total: int | None = None
    completed: int | None = None

    @classmethod
    def from_json(cls, answer: Mapping[str, Any]) -> ProgressUpdate:
        total, completed = answer.get("total"), answer.get("completed")
        return cls(
            str(answer.get("status") or ""),
            total if isinstance(total, int) else None,
            completed if isinstance(completed, int) else None,
        )


def _parser_of(answer: Mapping[str, Any]) -> str | None:
    """The model's PARSER. No pinned release fills /api/show's `parser` field (v0.24.0, v0.32.15,
    v0.34.4: the handler never sets it), so it is read from the `modelfile` text the way Ollama
    reads a Modelfile (a TEMPLATE may hold a line that starts with PARSER); a Modelfile that
    does not parse reads as a parser of its own name, which no catalog wants (drift says so)."""
    from qwq_ollama.catalog.modelfile import ModelfileSyntaxError, parse_modelfile

    given = answer.get("parser")
    if isinstance(given, str) and given:
        return given
    text = str(answer.get("modelfile") or "")
    if not text:
        return None  # an answer without its Modelfile says nothing of a parser
    try:
        commands = parse_modelfile(text)
    except ModelfileSyntaxError:
        return "(a Modelfile that does not parse)"
    found = [value for command, value in commands if command == "parser"]
    return found[-1] if found and found[-1] else None
