"""The last step of an Ollama build: the built programs load the small model and generate.

A binary that links and answers `--version` can still die on its first model load (an
instruction this CPU does not execute, a helper the daemon cannot find). So, before a build is
moved into place, its llama-server (v0.30+) serves the small model and answers a few tokens on
its own, and then the daemon does the same through its own engine. A failure names the part
that broke and quotes its log.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from qwq_ollama.daemon.client import OllamaAPI
from qwq_ollama.engines.llama_server import LlamaServer
from qwq_ollama.engines.private_daemon import OllamaDaemon, free_port
from qwq_ollama.engines.private_process import PrivateProcess
from qwq_ollama.errors import QwqOllamaError
from qwq_ollama.weights_file import sha256_file

SMOKE_MESSAGES = [{"role": "user", "content": "Say hello."}]
SMOKE_TOKENS = 4
SMOKE_MODEL = "qwq-ollama-smoke"
_ILLEGAL = re.compile(r"(?i)illegal instruction|SIGILL")


class SmokeFailure(Exception):
    """What broke (`part`) and the one-line reason, for BuildStep.failed."""

    def __init__(self, part: str, reason: str) -> None:
        self.part = part
        self.reason = reason
        super().__init__(f"{part}: {reason}")


def explain(part: str, text: str) -> str:
    """One line a user can act on, from an error and the log it quotes."""
    quoted = text.strip().replace("\n", " | ")[-300:]
    if _ILLEGAL.search(text):
        return (
            f"{part} died of an illegal instruction: the build uses an instruction set "
            "this CPU does not execute. Leave it out with QWQ_OLLAMA_CPU_OPTIONS (the "
            f"ggml options to keep, e.g. 'AVX2 FMA F16C', or 'none'); log: {quoted}"
        )
    return f"{part} could not load the small model and generate: {quoted}"


def check_llama_server(server: Path, gguf: Path, log: Path) -> None:
    """llama-server alone serves `gguf` and answers a few tokens."""
    port = free_port()
    argv = [
        str(server),
        "--model",
        str(gguf),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--ctx-size",
        "512",
        "--threads",
        "2",
        "--parallel",
        "1",
    ]
    running: PrivateProcess | None = None
    try:
        with LlamaServer(
            argv, f"http://127.0.0.1:{port}", startup_timeout=120.0, timeout=120.0
        ) as running:
            parts = list(
                running.api.chat_stream(
                    "smoke", SMOKE_MESSAGES, options={"num_predict": SMOKE_TOKENS, "seed": 1}
                )
            )
            _keep_log(running, log)
    except QwqOllamaError as exc:
        raise SmokeFailure("llama-server", explain("llama-server", str(exc))) from None
    # Tokens decoded, whatever their text (a test model's may have none).
    decoded = max((p.eval_count or 0 for p in parts), default=0)
    if not decoded and not any(p.message.content or p.message.thinking for p in parts):
        raise SmokeFailure("llama-server", "llama-server decoded no token for the small model")


def check_daemon(binary: Path, gguf: Path, log: Path) -> None:
    """`ollama serve` imports `gguf`, loads it in its engine and streams a few tokens."""
    with tempfile.TemporaryDirectory(prefix="qwq-ollama-smoke-") as tmp:
        daemon = OllamaDaemon(
            binary,
            Path(tmp) / "models",
            state_dir=Path(tmp) / "state",
            env={"OLLAMA_KEEP_ALIVE": "0"},
            startup_timeout=60.0,
        )
        try:
            with daemon:
                try:
                    _generate(OllamaAPI(daemon.host, timeout=300.0), gguf)
                finally:
                    _keep_log(daemon, log)
        except QwqOllamaError as exc:
            tail = exc.args[0] if exc.args else ""
            if daemon.log_path.exists():  # the daemon's own log, in the temporary state dir
                tail += " " + daemon.log_path.read_text(errors="replace")[-2000:]
            raise SmokeFailure("ollama", explain("ollama", tail)) from None


def _generate(api: OllamaAPI, gguf: Path) -> None:
    digest = "sha256:" + sha256_file(gguf)
    if not api.has_blob(digest):
        api.push_blob(digest, gguf)
    for _ in api.create(SMOKE_MODEL, files={gguf.name: digest}):
        pass
    chunks = list(
        api.chat_stream(
            SMOKE_MODEL, SMOKE_MESSAGES, options={"num_predict": SMOKE_TOKENS, "seed": 1}
        )
    )
    final = chunks[-1] if chunks else None
    if not final or not getattr(final, "eval_count", 0):
        raise SmokeFailure("ollama", "the daemon streamed no tokens for the small model")


def _keep_log(process: PrivateProcess, log: Path) -> None:
    """Copy the server's log into the build's log folder before its state dir goes."""
    log.parent.mkdir(parents=True, exist_ok=True)
    if process.log_path.exists():
        shutil.copyfile(process.log_path, log)


def smoke_check(prefix: Path, gguf: Path, log_dir: Path) -> None:
    """Raise SmokeFailure unless the build in `prefix` loads `gguf` and generates."""
    server = prefix / "lib" / "ollama" / "llama-server"
    if server.is_file():
        check_llama_server(server, gguf, log_dir / "smoke-llama-server.log")
    check_daemon(prefix / "bin" / "ollama", gguf, log_dir / "smoke-ollama.log")
