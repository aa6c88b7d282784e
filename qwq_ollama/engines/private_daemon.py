"""A private `ollama serve` the tool owns: its own loopback port, models dir and home.

Tests and the demo use it so that a user's own daemon and models are never touched, and it
stays offline (`OLLAMA_NO_CLOUD=1`: v0.32 otherwise asks ollama.com for model recommendations at
start). It stops the whole process group (server and runners), so no process outlives it.
"""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path

from qwq_ollama.daemon.client import OllamaAPI
from qwq_ollama.engines.private_process import SECRET_VARIABLES, PrivateProcess, process_group_alive
from qwq_ollama.errors import DaemonError

__all__ = ["SECRET_VARIABLES", "OllamaDaemon", "free_port", "process_group_alive"]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


class OllamaDaemon(PrivateProcess):
    """Start with `start()` or `with OllamaDaemon(...) as d:`; `d.host` is for OLLAMA_HOST."""

    label = "ollama serve"

    def __init__(
        self,
        binary: Path,
        models_dir: Path,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        state_dir: Path | None = None,
        env: dict[str, str] | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        super().__init__(
            state_dir=state_dir,
            log_name="serve.log",
            prefix="qwq-ollama-",
            startup_timeout=startup_timeout,
        )
        self.binary = Path(binary)
        self.models_dir = Path(models_dir)
        self.bind_host = host
        self.port = port
        self.extra_env = dict(env or {})
        self.api: OllamaAPI | None = None  # once started

    @property
    def host(self) -> str:
        return f"http://{self.bind_host}:{self.port}"

    def start(self) -> OllamaDaemon:
        self._check_models_dir()
        if self.port is None:
            self.port = free_port(self.bind_host)
        elif _port_in_use(self.bind_host, self.port):
            raise DaemonError(
                f"port {self.port} on {self.bind_host} is already in use: "
                "choose another port or stop what listens there"
            )
        home = self.state_dir / "home"
        home.mkdir(parents=True, exist_ok=True)
        env = {
            **self.inherited_environment(),
            "OLLAMA_HOST": f"{self.bind_host}:{self.port}",
            "OLLAMA_MODELS": str(self.models_dir),
            "HOME": str(home),
            "OLLAMA_NO_CLOUD": "1",
            **self.extra_env,
        }
        self.api = OllamaAPI(self.host, timeout=10.0)
        self._launch([str(self.binary), "serve"], env)
        return self

    def _check_models_dir(self) -> None:
        try:
            self.models_dir.mkdir(parents=True, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=self.models_dir, prefix=".probe-")
            probe.close()
        except OSError as exc:
            raise DaemonError(
                f"models dir {self.models_dir} is not writable: {exc.strerror or exc}"
            ) from None

    def version(self) -> str:
        return OllamaAPI(self.host, timeout=10.0).version()
