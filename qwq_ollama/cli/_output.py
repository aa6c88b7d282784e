"""Everything the CLI writes: versioned JSON (stdout or a file), the findings table, the fleet
and registration tables, progress on stderr. Commands print only through here."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from qwq_ollama.checks.findings import Finding
    from qwq_ollama.checks.generation import ChatResult
    from qwq_ollama.daemon.answers import ProgressUpdate
    from qwq_ollama.daemon.fleet import FleetReport
    from qwq_ollama.daemon.registry import Registration

SCHEMA_VERSION = 1  # of every --json document; bumped only when a field changes meaning


def say(text: str = "", *, nl: bool = True) -> None:
    """stdout: the command's answer."""
    typer.echo(text, nl=nl)


def err(text: str) -> None:
    """stderr: notes, progress and errors, never mixed into an answer a script reads."""
    typer.echo(text, err=True)


def versioned_json(document: dict[str, Any]) -> str:
    """The one JSON writer of every --json: the schema version on top, text kept as written."""
    return json.dumps(
        {"schema_version": SCHEMA_VERSION, **document}, indent=1, ensure_ascii=False, default=str
    )


_printed_json = False  # whether this run's stdout already holds its JSON document


def print_json(document: dict[str, Any]) -> None:
    global _printed_json
    _printed_json = True
    say(versioned_json(document))


def print_json_error(message: str, exit_code: int) -> None:
    """With --json, a refusal is a JSON document too (unless one was printed): a script reading
    stdout always gets one object, `error` holding the stderr line's text and the exit code."""
    if not _printed_json:
        print_json({"error": {"message": message, "exit_code": exit_code}})


def write_json(path: Path, document: dict[str, Any]) -> None:
    """The same document as a file, written whole or not at all."""
    from qwq_ollama.atomic import write_text_atomic

    write_text_atomic(path, versioned_json(document) + "\n")


_SHOWN_STATUS = {"pass": "pass", "known": "known", "warn": "WARN", "fail": "FAIL", "error": "ERROR"}


def print_findings(findings: list[Finding]) -> None:
    """Every command's findings, one table: result, check, subject, message and its fix."""
    say(f"{'RESULT':<6} {'CHECK':<13} {'SUBJECT':<22} MESSAGE")
    for f in findings:
        fix = f"  (fix: {f.fix})" if f.fix and f.status not in ("pass", "known") else ""
        say(f"{_SHOWN_STATUS[f.status]:<6} {f.check:<13} {f.subject:<22} {f.message}{fix}")


def print_fleet(report: FleetReport, as_json: bool) -> int:
    """The fleet's one table, host x variant (or its JSON); exit code 1 if any host is not right."""
    if as_json:
        print_json(report.to_dict())
    else:
        say(f"{'HOST':<28} {'VARIANT':<22} STATE")
        for result in report.hosts:
            for cell in result.cells:
                say(f"{result.host:<28} {cell.variant:<22} {cell.state}")
            if result.state != "ok":
                say(f"{result.host:<28} {'-':<22} {result.state}: {result.error}")
    return 1 if report.failed else 0


def print_registrations(rows: list[Registration]) -> None:
    say(f"{'VARIANT':<16} {'WEIGHTS':<14} {'REGISTERED':<11} STATE")
    for row in rows:
        say(
            f"{row.variant:<16} {row.weights:<14} {'yes' if row.registered else 'no':<11} "
            f"{row.describe()}"
        )


def print_chat_end(result: ChatResult) -> None:
    say(
        f"\n--- done: {result.done_reason}, {result.eval_count} tokens, "
        f"{result.tokens_per_second:.1f} tokens/s ---"
    )


def answer_printer() -> Any:
    """A sink for streamed answer text that first prints the answer's heading."""
    started = False

    def show(text: str) -> None:
        nonlocal started
        if not started:
            say("\n--- answer ---")
            started = True
        say(text, nl=False)

    return show


def thinking_printer(text: str) -> None:
    say(text, nl=False)


def write_raw(text: str) -> None:
    """stdout byte for byte (a prompt, a script): no newline added."""
    sys.stdout.write(text)
    sys.stdout.flush()


def progress_lines(verb: str, quiet: bool = False) -> Callable[[str], None]:
    """A sink for one-line progress on stderr (`  checking X`); silent with --quiet."""

    def show(message: str) -> None:
        if not quiet:
            err(f"  {verb} {message}")

    return show


class Progress:
    """Progress of long work: byte bars (size, rate, time left) on a terminal; plain status
    lines when stderr is not one or NO_COLOR is set; nothing with --quiet."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.last: dict[str, str] = {}
        self.tasks: dict[tuple[str, str], Any] = {}
        self.bars: Any = None
        if not quiet and sys.stderr.isatty() and not os.environ.get("NO_COLOR"):
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress as Bars,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self.bars = Bars(
                TextColumn("  {task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )

    def __enter__(self) -> Progress:
        if self.bars is not None:
            self.bars.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.bars is not None:
            self.bars.stop()

    def __call__(self, name: str, update: ProgressUpdate) -> None:
        status, total = update.status, update.total
        if self.quiet or not status:
            return
        if self.bars is not None and total:
            key = (name, status)
            if key not in self.tasks:
                self.tasks[key] = self.bars.add_task(f"{name}: {status}", total=total)
            self.bars.update(self.tasks[key], completed=update.completed or 0)
        elif self.last.get(name) != status:
            self.last[name] = status
            err(f"  {name}: {status}")
