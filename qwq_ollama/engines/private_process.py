"""A server the tool starts and owns: one command in its own process group, its output in a log,
ready when its API answers, and stopped as a whole group so that nothing outlives it.

The private Ollama daemon and the private llama-server are both this; each says how it is
started and which API tells that it is ready.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

from qwq_ollama.errors import DaemonError, EnvironmentProblem

LOG_TAIL_LINES = 15
# A private server needs none of these; keeping them out keeps them out of its log.
SECRET_VARIABLES = frozenset({"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "OLLAMA_API_KEY"})


class ServerAPI(Protocol):
    """What a private process's client must offer while it starts and stops."""

    host: str

    def is_ready(self) -> bool: ...

    def close(self) -> None: ...


class PrivateProcess:
    """Subclasses call `_launch(argv, env)` from their `start()` and give `api` (an Ollama or
    llama-server client, once started) and `label` (for messages)."""

    label = "server"
    api: ServerAPI | None

    def __init__(
        self, *, state_dir: Path | None, log_name: str, prefix: str, startup_timeout: float
    ) -> None:
        self._own_state = state_dir is None
        self.state_dir = Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix=prefix))
        self.log_path = self.state_dir / log_name
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return " | ".join(ln.strip() for ln in text.strip().splitlines()[-lines:]) or "(empty log)"

    @staticmethod
    def inherited_environment() -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if k not in SECRET_VARIABLES}

    def _launch(self, argv: list[str], env: dict[str, str], cwd: Path | None = None) -> None:
        """Start `argv` and wait until its API answers; on any failure nothing is left running."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            try:
                self.process = subprocess.Popen(
                    argv,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    cwd=cwd,
                    start_new_session=True,
                )
            except OSError as exc:
                raise EnvironmentProblem(f"cannot run {argv[0]}: {exc.strerror}") from None
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        """Poll the API until it answers, the process exits, or the start-up time runs out."""
        process, api = self.process, self.api
        assert process is not None and api is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline and process.poll() is None:
            if api.is_ready():
                return
            time.sleep(0.1)
        if process.poll() is not None:
            code = process.returncode
            ended = (
                f"died of {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
            )
            raise DaemonError(f"{self.label} {ended} while starting; log: {self.log_tail()}")
        raise DaemonError(
            f"{self.label} did not answer on {api.host} within "
            f"{self.startup_timeout:.0f} s; log: {self.log_tail()}"
        )

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the process group, then SIGKILL what is left; always reaps the server.

        Our own connections close first, so that the server's port is free at once (a
        connection the server closed would hold it in TIME_WAIT)."""
        if self.api is not None:
            self.api.close()
        proc, self.process = self.process, None
        if proc is not None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
            _signal_group(proc.pid, signal.SIGKILL)  # whatever the server left behind
            proc.wait()
            deadline = time.monotonic() + 5.0
            while process_group_alive(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        if self._own_state:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()  # type: ignore[attr-defined]
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def process_group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
