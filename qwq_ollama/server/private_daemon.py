"""A private `ollama serve` the tool owns: its own loopback port, models dir and home.

Tests and the demo use it so that a user's own daemon and models are never touched, and it
stays offline (`OLLAMA_NO_CLOUD=1`: v0.32 otherwise asks ollama.com for model recommendations at
start). It stops the whole process group (server and runners), so no process outlives it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import httpx

from qwq_ollama.errors import DaemonError

LOG_TAIL_LINES = 15
# A private daemon needs none of these; keeping them out keeps them out of its log.
SECRET_VARIABLES = frozenset({"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "OLLAMA_API_KEY"})


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


class OllamaDaemon:
    """Start with `start()` or `with OllamaDaemon(...) as d:`; `d.host` is for OLLAMA_HOST."""

    def __init__(self, binary: Path, models_dir: Path, *, port: int | None = None,
                 host: str = "127.0.0.1", state_dir: Path | None = None,
                 env: dict[str, str] | None = None, startup_timeout: float = 60.0) -> None:
        self.binary = Path(binary)
        self.models_dir = Path(models_dir)
        self.bind_host = host
        self.port = port
        self.extra_env = dict(env or {})
        self.startup_timeout = startup_timeout
        self._own_state = state_dir is None
        self.state_dir = Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix="qwq-ollama-"))
        self.log_path = self.state_dir / "serve.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"http://{self.bind_host}:{self.port}"

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return " | ".join(ln.strip() for ln in text.strip().splitlines()[-lines:]) or "(empty log)"

    def start(self) -> OllamaDaemon:
        self._check_models_dir()
        if self.port is None:
            self.port = free_port(self.bind_host)
        elif _port_in_use(self.bind_host, self.port):
            raise DaemonError(f"port {self.port} on {self.bind_host} is already in use: "
                              "choose another port or stop what listens there")
        home = self.state_dir / "home"
        home.mkdir(parents=True, exist_ok=True)
        inherited = {k: v for k, v in os.environ.items() if k not in SECRET_VARIABLES}
        env = {**inherited, "OLLAMA_HOST": f"{self.bind_host}:{self.port}",
               "OLLAMA_MODELS": str(self.models_dir), "HOME": str(home),
               "OLLAMA_NO_CLOUD": "1", **self.extra_env}
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [str(self.binary), "serve"], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _check_models_dir(self) -> None:
        try:
            self.models_dir.mkdir(parents=True, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=self.models_dir, prefix=".probe-")
            probe.close()
        except OSError as exc:
            raise DaemonError(f"models dir {self.models_dir} is not writable: "
                              f"{exc.strerror or exc}") from None

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise DaemonError(f"ollama serve exited with code {self.process.returncode} "
                                  f"while starting; log: {self.log_tail()}")
            try:
                reply = httpx.get(f"{self.host}/api/version", timeout=2.0)
                if reply.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise DaemonError(f"ollama serve did not answer on {self.host} within "
                          f"{self.startup_timeout:.0f} s; log: {self.log_tail()}")

    def version(self) -> str:
        return str(httpx.get(f"{self.host}/api/version", timeout=10).json()["version"])

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the process group, then SIGKILL what is left; always reaps the server."""
        proc, self.process = self.process, None
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        _wait_group_gone(proc.pid)
        if self._own_state:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> OllamaDaemon:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def process_group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_group_gone(pgid: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while process_group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
