"""Check the program a model wrote: extract it, compile it, find undefined names, run it headless.

This is the guide's end-to-end test made mechanical: the answer's last ```python block must
compile, must not use names it never defined (the NameErrors the guide saw), and, for a pygame
game, must start and then quit when the user closes the window or presses Escape.
POSIX only: the program runs in its own process group, which is killed afterwards.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from pyflakes import checker, messages

PYGAME_MISSING = "pygame not installed (pip install 'qwq-ollama[game]')"
FILENAME = "<answer>"
TAIL_LINES = 15
OUTPUT_LIMIT_BYTES = 16 * 1024 * 1024  # a program that writes more is stopped (SIGXFSZ)
_PYTHON_TAGS = frozenset({"python", "py", "python3", "py3"})
_FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")
_PYGAME_IMPORT = re.compile(r"^\s*(?:import|from)\s+pygame\b", re.MULTILINE)
_FRAME = re.compile(r'^\s*File "(.*)", line (\d+)')
_HEADLESS_ENV = {
    "SDL_VIDEODRIVER": "dummy",
    "SDL_AUDIODRIVER": "dummy",
    "PYGAME_HIDE_SUPPORT_PROMPT": "1",
}


# -- extraction --------------------------------------------------------------------------------


def extract_last_python_block(markdown: str) -> str | None:
    """The content of the last fenced block tagged python/py, or None if there is none.

    Fences follow CommonMark: ``` or ~~~ (three or more), closed by the same character at least
    as long with nothing after it. A block still open at the end of the text runs to the end
    (CommonMark's rule), which also keeps an answer that was cut off mid-block checkable.
    Pass only the answer, not the thinking: blocks in the reasoning are drafts.
    """
    found: str | None = None
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        i += 1
        if not opening:
            continue
        indent, fence, info = len(opening[1]), opening[2], opening[3].strip()
        if fence[0] == "`" and "`" in info:
            continue  # not a fence: an inline code span
        body: list[str] = []
        while i < len(lines) and not _closes(lines[i], fence):
            body.append(_dedent(lines[i], indent))
            i += 1
        i += 1
        tag = info.split()[0].lower() if info else ""
        if tag in _PYTHON_TAGS:
            found = "\n".join(body) + "\n" if body else ""
    return found


def _closes(line: str, fence: str) -> bool:
    match = _FENCE.match(line)
    return bool(
        match and match[2][0] == fence[0] and len(match[2]) >= len(fence) and not match[3].strip()
    )


def _dedent(line: str, indent: int) -> str:
    """Remove up to the opening fence's indentation, as CommonMark does."""
    spaces = len(line) - len(line.lstrip(" "))
    return line[min(spaces, indent) :]


# -- static check ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CodeProblem:
    """One undefined name, where the user's editor would show it."""

    line: int
    col: int
    name: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(frozen=True)
class CodeReport:
    """Does the program compile, and does it use only names it defines or imports."""

    compiles: bool
    syntax_error: str | None  # "line 3: '(' was never closed"
    syntax_error_line: int | None
    undefined_names: list[str]  # each name once, in order of first use
    problems: list[CodeProblem]  # every use of an undefined name, with its line
    # Names that may come from a `from m import *` we could not import to verify.
    unverified_names: list[str] = field(default_factory=list)
    ok: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ok", self.compiles and not self.problems)


def check_code(source: str, *, resolve_star_imports: bool = True) -> CodeReport:
    """Compile the program, then let pyflakes find undefined names and unbound locals.

    `from m import *` hides undefined names from pyflakes; with `resolve_star_imports`, the
    star-imported modules are imported in a subprocess (never here) to learn what they define.
    """
    try:
        compile(source, FILENAME, "exec")
    except SyntaxError as exc:
        where = f"line {exc.lineno}: " if exc.lineno else ""
        return CodeReport(False, f"{where}{exc.msg}", exc.lineno, [], [])
    except (ValueError, RecursionError, MemoryError) as exc:  # NUL bytes, absurd nesting
        return CodeReport(False, str(exc) or type(exc).__name__, None, [], [])
    found = checker.Checker(ast.parse(source, FILENAME), filename=FILENAME).messages
    found = sorted(found, key=lambda m: (m.lineno, m.col))
    problems = [
        CodeProblem(m.lineno, m.col, str(m.message_args[0]), m.message % m.message_args)
        for m in found
        if isinstance(m, (messages.UndefinedName, messages.UndefinedLocal))
    ]
    unverified: list[str] = []
    star_uses = [m for m in found if isinstance(m, messages.ImportStarUsage)]
    if star_uses:
        modules = [m.message_args[0] for m in found if isinstance(m, messages.ImportStarUsed)]
        known = _star_exports(modules) if resolve_star_imports else {}
        for use in star_uses:
            name = str(use.message_args[0])
            if any(name in (known.get(mod) or ()) for mod in modules):
                continue
            if all(known.get(mod) is not None for mod in modules):
                problems.append(CodeProblem(use.lineno, use.col, name, f"undefined name {name!r}"))
            elif name not in unverified:
                unverified.append(name)
        problems.sort(key=lambda p: (p.line, p.col))
    names = list(dict.fromkeys(p.name for p in problems))
    return CodeReport(True, None, None, names, problems, unverified)


_STAR_EXPORTS = r"""
import importlib, json, sys
out = {}
for name in sys.argv[1:]:
    try:
        module = importlib.import_module(name)
    except BaseException:
        out[name] = None
        continue
    public = getattr(module, "__all__", None)
    if public is None:
        public = [n for n in vars(module) if not n.startswith("_")]
    out[name] = [str(n) for n in public]
sys.stdout.write("\n" + json.dumps(out) + "\n")
"""


def _star_exports(modules: list[str]) -> dict[str, list[str] | None]:
    """What each module gives `import *`; None where it cannot be imported (or is relative)."""
    absolute = [m for m in dict.fromkeys(modules) if not m.startswith(".")]
    result: dict[str, list[str] | None] = {m: None for m in modules}
    if not absolute:
        return result
    with tempfile.TemporaryDirectory(prefix="qwq-star-") as tmp:
        try:
            done = subprocess.run(
                [sys.executable, "-I", "-c", _STAR_EXPORTS, *absolute],
                cwd=tmp,
                env={**os.environ, **_HEADLESS_ENV},
                timeout=30,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
            )
            result.update(json.loads(done.stdout.rstrip().rsplit("\n", 1)[-1]))
        except (subprocess.TimeoutExpired, OSError, ValueError, IndexError):
            pass
    return result


# -- headless run ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunReport:
    """How the program behaved when started headless and asked to quit."""

    started: bool  # the code began running and, for a pygame program, opened a window
    exited_cleanly: bool  # exit status 0 (sys.exit(0) included) before the time ran out
    timed_out: bool  # still running after `seconds`: its process group was killed
    returncode: int | None  # negative: killed by that signal; None when skipped
    error: str | None  # "line 12: NameError: name 'pipes' is not defined"
    stderr_tail: str
    stdout_tail: str = ""
    uses_pygame: bool = False
    quit_sent: bool = False  # the QUIT and Escape events were posted
    skipped: str | None = None  # why the program was not run
    pid: int | None = None
    elapsed: float = 0.0
    ok: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ok", self.started and self.exited_cleanly)


# Runs inside the child: caps core files and output size, records milestones, and once a window
# has been open for `quit_after` seconds posts QUIT and Escape from a thread (SDL's queue is
# thread-safe), a few times in case the program drains its queue without looking: the program
# is asked to quit the way a user asks it.
_RUNNER = r"""
import os, resource, runpy, sys, threading, time

main_path, status_path, quit_after, hook, output_limit = sys.argv[1:6]
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
resource.setrlimit(resource.RLIMIT_FSIZE, (int(output_limit), int(output_limit)))
window_opened = []


def mark(word):
    with open(status_path, "a") as status:
        status.write(word + "\n")


def post_quit(pygame, delay):
    while not window_opened:
        time.sleep(0.02)
    time.sleep(max(0.0, window_opened[0] + delay - time.monotonic()))
    for _ in range(8):
        try:
            if pygame.display.get_init():
                pygame.event.post(pygame.event.Event(pygame.QUIT))
                for kind in (pygame.KEYDOWN, pygame.KEYUP):
                    pygame.event.post(pygame.event.Event(
                        kind, key=pygame.K_ESCAPE, mod=0, unicode="\x1b",
                        scancode=pygame.KSCAN_ESCAPE))
                mark("quit-sent")
        except Exception:
            pass
        time.sleep(0.4)


if hook == "1":
    import pygame
    set_mode = pygame.display.set_mode

    def set_mode_and_mark(*args, **kwargs):
        surface = set_mode(*args, **kwargs)
        if not window_opened:
            window_opened.append(time.monotonic())
            mark("window")
        return surface

    pygame.display.set_mode = set_mode_and_mark
    if quit_after:
        threading.Thread(target=post_quit, args=(pygame, float(quit_after)), daemon=True).start()

with open(main_path, "rb") as source:
    compile(source.read(), main_path, "exec")  # a syntax error stops here, before "run"
sys.argv = [main_path]
sys.path.insert(0, os.path.dirname(main_path))
mark("run")
runpy.run_path(main_path, run_name="__main__")
"""


def run_headless(source: str, *, seconds: float = 3.0, quit_after: float | None = 1.5) -> RunReport:
    """Run the program with no display, sound or stdin; ask it to quit; kill it if it won't.

    `quit_after` counts from the moment a pygame window opens; None never asks. Programs that
    do not use pygame just run until they end or `seconds` run out.
    """
    uses_pygame = imports_pygame(source)
    if uses_pygame and importlib.util.find_spec("pygame") is None:
        return RunReport(
            False, False, False, None, None, "", uses_pygame=True, skipped=PYGAME_MISSING
        )
    with tempfile.TemporaryDirectory(prefix="qwq-run-") as tmp:
        work = Path(tmp)
        main, runner, status = work / "main.py", work / "_qwq_runner.py", work / "status"
        main.write_text(source, encoding="utf-8")
        runner.write_text(_RUNNER, encoding="utf-8")
        status.touch()
        argv = [
            sys.executable,
            "-I",
            "-u",
            "-B",
            str(runner),
            str(main),
            str(status),
            "" if quit_after is None else repr(quit_after),
            "1" if uses_pygame else "0",
            str(OUTPUT_LIMIT_BYTES),
        ]
        began = time.monotonic()
        returncode, timed_out, pid = _run(argv, work, seconds)
        elapsed = time.monotonic() - began
        marks = status.read_text(encoding="utf-8").split()
        stderr = (work / "stderr").read_text(encoding="utf-8", errors="replace")
        stdout = (work / "stdout").read_text(encoding="utf-8", errors="replace")
    started = ("window" if uses_pygame else "run") in marks
    stderr = _without_runner(stderr, work)
    return RunReport(
        started=started,
        exited_cleanly=not timed_out and returncode == 0,
        timed_out=timed_out,
        returncode=returncode,
        error=_error_of(stderr, main.name, returncode, timed_out),
        stderr_tail=_tail(stderr),
        stdout_tail=_tail(stdout),
        uses_pygame=uses_pygame,
        quit_sent="quit-sent" in marks,
        pid=pid,
        elapsed=round(elapsed, 3),
    )


def imports_pygame(source: str) -> bool:
    """Whether the program imports pygame (by a regex when it does not parse)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return bool(_PYGAME_IMPORT.search(source))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            if any(alias.name.split(".")[0] == "pygame" for alias in node.names):
                return True
        elif isinstance(node, ast.ImportFrom) and not node.level:
            if (node.module or "").split(".")[0] == "pygame":
                return True
    return False


def _run(argv: list[str], work: Path, seconds: float) -> tuple[int, bool, int]:
    """Start the child in its own session; wait; kill the whole group in every case."""
    env = {**os.environ, **_HEADLESS_ENV}
    with open(work / "stdout", "wb") as out, open(work / "stderr", "wb") as err:
        proc = subprocess.Popen(
            argv,
            cwd=work,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        timed_out = False
        try:
            proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            _kill_group(proc.pid)
            returncode = proc.wait()
    return returncode, timed_out, proc.pid


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _without_runner(stderr: str, work: Path) -> str:
    """Tracebacks as if the user had run `python main.py`: no runner or runpy frames."""
    kept: list[str] = []
    skip_source = False
    for line in stderr.replace(f"{work}{os.sep}", "").splitlines():
        frame = _FRAME.match(line)
        if frame and frame[1] in ("_qwq_runner.py", "<frozen runpy>"):
            skip_source = frame[1] == "_qwq_runner.py"
            continue
        if skip_source and line.startswith("    "):
            continue
        skip_source = False
        kept.append(line)
    return "\n".join(kept)


def _error_of(stderr: str, main_path: str, returncode: int, timed_out: bool) -> str | None:
    """The exception line of the last traceback, with the program's line; or the signal."""
    lines = stderr.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent")]
    if starts:
        block = lines[starts[-1] + 1 :]
        raised = [line for line in block if line.strip() and not line[0].isspace()]
        frames = [int(m[2]) for m in map(_FRAME.match, block) if m and m[1] == main_path]
        if raised:
            return f"line {frames[-1]}: {raised[-1]}" if frames else raised[-1]
    if returncode < 0 and not timed_out:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return None


def _tail(text: str) -> str:
    return "\n".join(text.rstrip().splitlines()[-TAIL_LINES:])
