"""A llama-server running a catalog variant: the user's own at a URL, or a private one on a free
loopback port with the command `qwq-ollama export llama-cpp` prints.

The private server is Ollama's own llama-server: v0.30+ runs GGUF models in it and installs it
beside its binary (`lib/ollama/`), so there is no second copy of llama.cpp to build. Finding it
needs the pinned builds (install.py), whose smoke check starts a llama-server itself; so this
sits above both, and llama_server.py needs neither.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from qwq_ollama.engines.install import CURRENT, find_ollama
from qwq_ollama.engines.llama_server import LlamaServer, LlamaServerAPI, check_server_choice
from qwq_ollama.engines.private_daemon import free_port
from qwq_ollama.errors import EnvironmentProblem, InputError

if TYPE_CHECKING:
    from qwq_ollama.catalog.schema import Catalog, Variant


def find_llama_server(version: str | None = None) -> Path:
    """The llama-server of the pinned Ollama (`<prefix>/lib/ollama/llama-server`).

    Found, never built here: building takes minutes, which `qwq-ollama install-ollama` says.
    """
    wanted = version or CURRENT
    found = find_ollama(wanted).binary
    path = found.path.resolve().parent.parent / "lib" / "ollama" / "llama-server" if found else None
    if path is None or not path.is_file():
        raise EnvironmentProblem(
            f"no llama-server of Ollama {wanted} here: run `qwq-ollama "
            "install-ollama` (it builds one), or start your own llama-server "
            "and pass --llama-server URL"
        )
    return path


@contextmanager
def serve_variant(
    catalog: Catalog,
    variant: Variant,
    *,
    url: str | None = None,
    gguf: Path | None = None,
    timeout: float = 600.0,
) -> Iterator[LlamaServerAPI]:
    """A llama-server running `variant`: the one at `url`, or a private one started on a free
    loopback port with the exported command over `gguf` (stopped on leaving)."""
    check_server_choice(url, gguf)
    if url is not None:
        api = LlamaServerAPI(url, timeout)
        try:
            api.version()  # reachable, and a llama-server
            yield api
        finally:
            api.close()
        return
    assert gguf is not None
    argv, address = private_command(catalog, variant, Path(gguf))
    with LlamaServer(argv, address, timeout=timeout) as server:
        yield server.api


def private_command(catalog: Catalog, variant: Variant, gguf: Path) -> tuple[list[str], str]:
    """The exported llama-server command for `variant` over `gguf`, on a free loopback port,
    with this machine's llama-server; and the URL it will listen on."""
    from qwq_ollama.artifacts.export import default_template_path, llama_cpp_command

    template = default_template_path(catalog, variant)
    if not template.is_file():
        raise InputError(
            "the variant's chat template is not rendered yet: run `qwq-ollama render`",
            file=template,
        )
    port = free_port()
    command = llama_cpp_command(
        catalog,
        variant,
        binary=str(find_llama_server()),
        model_path=str(gguf),
        template_path=str(template),
        host="127.0.0.1",
        port=port,
    )
    return command.argv, f"http://127.0.0.1:{port}"
