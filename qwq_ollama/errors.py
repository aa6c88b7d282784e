"""The exceptions the library raises; the CLI turns them into one-line messages and exit codes."""

from __future__ import annotations


class QwqOllamaError(Exception):
    """Base class: something the user can act on. The message is one line."""

    exit_code = 1


class InputError(QwqOllamaError):
    """Bad input (a catalog, a template, a conversation file, a GGUF): exit code 2.

    The message names the file, and the line and field where there is one.
    """

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: object = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.file = None if file is None else str(file)
        self.line = line
        self.field = field
        self.detail = message
        where = self.file or ""
        if where and line is not None:
            where += f":{line}"
        prefix = f"{where}: " if where else ""
        if field:
            prefix += f"{field}: "
        super().__init__(f"{prefix}{message}")


class EnvironmentProblem(QwqOllamaError):
    """A missing tool or an unusable machine (no Go, no network, a daemon that won't start): exit 2."""

    exit_code = 2


class DaemonError(QwqOllamaError):
    """The daemon (Ollama, or a llama-server) refused a request or answered wrongly: exit 2."""

    exit_code = 2


class DaemonUnreachable(DaemonError):
    """No daemon answers: nothing listens, it did not answer in time, or the connection was
    lost. Exit 3, so a script can tell "start the daemon" apart from bad input (2)."""

    exit_code = 3


class NothingListens(DaemonUnreachable):
    """Nothing accepts connections at the address: the daemon is down, so start it (a daemon
    that is only slow is a plain DaemonUnreachable, where that advice would be wrong)."""


class RefusedError(DaemonError):
    """The daemon answered, and said no (a template it cannot parse, a GGUF it cannot read)."""

    def __init__(self, message: str, *, detail: str) -> None:
        self.detail = detail
        super().__init__(message)
