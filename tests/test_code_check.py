"""Checking the program in a model's answer: extraction, static checks, a real headless run."""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path

import pytest

from qwq_ollama.checks.code import check_code, extract_last_python_block, run_headless


def alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie waiting for init to reap it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def gone_soon(pid: int, within: float = 5.0) -> bool:
    """Dead within a moment: SIGKILL to a group lands asynchronously on a busy machine."""
    deadline = time.monotonic() + within
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


# -- extraction ------------------------------------------------------------------------------

ANSWER = """Here is a first try:

```python
print("draft")
```

Install pygame first:

```bash
pip install pygame
```

A fenced block without a language:

```
not code
```

And the final game, fixed:

~~~py
import pygame
print("final")
~~~

Run it with `python game.py`. An example of the output:

```text
final
```
"""


def test_the_last_python_block_is_extracted_whatever_follows_it() -> None:
    assert extract_last_python_block(ANSWER) == 'import pygame\nprint("final")\n'


def test_a_block_cut_off_at_the_end_of_the_answer_runs_to_the_end() -> None:
    text = "Fixed version:\n\n```python\nimport sys\nsys.exit(0)\n"
    assert extract_last_python_block(ANSWER + text) == "import sys\nsys.exit(0)\n"


@pytest.mark.parametrize(
    "text",
    [
        "No code here, just `inline` code.",
        "```js\nconsole.log(1)\n```\n",
        "````markdown\n```python\nprint('quoted inside another block')\n```\n````\n",
    ],
    ids=["prose", "other-language", "nested-in-markdown"],
)
def test_no_python_block_means_none(text: str) -> None:
    assert extract_last_python_block(text) is None


def test_an_indented_fence_keeps_the_code_unindented() -> None:
    text = "1. Save this:\n\n   ```python\n   def f():\n       return 1\n   ```\n"
    assert extract_last_python_block(text) == "def f():\n    return 1\n"


# -- static check ----------------------------------------------------------------------------


def test_a_syntax_error_is_reported_with_its_line() -> None:
    report = check_code("import random\n\ncolor = (random.randint(0, 50),\nprint(color)\n")
    assert not report.compiles and not report.ok
    assert report.syntax_error_line == 3
    assert report.syntax_error == "line 3: '(' was never closed"


GLOBAL_MIXUP = textwrap.dedent("""\
    import random

    score = 0


    def reset_game():
        global score
        score = 0
        pipes.clear()


    def passed_pipe():
        score += 1


    def main():
        pipes = [random.randint(100, 300) for _ in range(3)]
        reset_game()
        passed_pipe()
        return pipes
    """)


def test_names_the_program_never_defines_are_found_with_their_lines() -> None:
    report = check_code(GLOBAL_MIXUP)
    assert report.compiles and not report.ok
    assert report.undefined_names == ["pipes", "score"]
    assert [str(p) for p in report.problems] == [
        "line 9: undefined name 'pipes'",
        "line 13: local variable 'score' defined in enclosing scope on line 3 referenced "
        "before assignment",
    ]


def test_star_imports_are_resolved_so_undefined_names_are_still_found() -> None:
    source = "from math import *\n\nprint(sqrt(2), floor(2.5), squareroot(3))\n"
    report = check_code(source)
    assert report.undefined_names == ["squareroot"]
    assert [p.line for p in report.problems] == [3]
    unresolved = check_code(source, resolve_star_imports=False)
    assert unresolved.ok and unresolved.unverified_names == ["sqrt", "floor", "squareroot"]


def test_a_correct_program_passes_and_runs_cleanly() -> None:
    source = textwrap.dedent("""\
        import sys

        def best(scores):
            return max(scores, default=0)

        print("best score:", best([3, 9, 4]))
        sys.exit(0)
        """)
    assert check_code(source).ok
    run = run_headless(source, seconds=10)
    assert run.started and run.exited_cleanly and run.ok
    assert run.returncode == 0 and run.stdout_tail == "best score: 9"
    assert not run.uses_pygame and run.error is None


# -- headless runs ---------------------------------------------------------------------------


def test_a_program_that_never_exits_is_killed_with_its_children() -> None:
    source = textwrap.dedent("""\
        import subprocess, sys
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print(child.pid, flush=True)
        while True:
            pass
        """)
    run = run_headless(source, seconds=1.5)
    assert run.timed_out and not run.exited_cleanly and not run.ok
    assert run.returncode == -9
    assert 1.5 <= run.elapsed < 5
    assert run.pid is not None and not alive(run.pid)
    assert gone_soon(int(run.stdout_tail))  # the grandchild died with the group


def test_a_crash_reports_the_exception_and_the_line_in_the_program() -> None:
    run = run_headless("scores = [1, 2]\nprint(scores[5])\n", seconds=10)
    assert run.started and not run.exited_cleanly and not run.timed_out
    assert run.returncode == 1
    assert run.error == "line 2: IndexError: list index out of range"
    assert run.stderr_tail.startswith('Traceback (most recent call last):\n  File "main.py"')


GAME = textwrap.dedent("""\
    import random
    import sys

    import pygame

    WIDTH, HEIGHT = 400, 300


    def main():
        pygame.init()
        screen = pygame.display.set_mode((WIDTH, HEIGHT))
        pygame.display.set_caption("Bouncing bird")
        clock = pygame.time.Clock()
        sky = (random.randint(170, 220), random.randint(200, 240), 255)
        y, speed = HEIGHT // 2, 0.0
        while True:
            for event in pygame.event.get():
                if event.type == pygame.QUIT:
                    pygame.quit()
                    sys.exit()
                if event.type == pygame.KEYDOWN and event.key in (pygame.K_ESCAPE, pygame.K_q):
                    pygame.quit()
                    sys.exit()
            speed = -6 if y > HEIGHT - 20 else speed + 0.4
            y += speed
            screen.fill(sky)
            pygame.draw.circle(screen, (40, 40, 40), (WIDTH // 3, int(y)), 12)
            pygame.display.flip()
            clock.tick(60)


    main()
    """)


def test_a_pygame_game_starts_and_quits_when_asked() -> None:
    pytest.importorskip("pygame")
    run = run_headless(GAME, seconds=10, quit_after=0.5)
    assert run.uses_pygame and run.started and run.quit_sent
    assert run.exited_cleanly and run.ok and not run.timed_out
    assert run.returncode == 0 and run.error is None
    assert run.elapsed < 5


def test_a_pygame_game_that_ignores_quit_is_reported_as_not_exiting() -> None:
    pytest.importorskip("pygame")
    deaf = GAME.replace("pygame.quit()\n                sys.exit()", "pass")
    assert deaf.count("pass") == 2
    run = run_headless(deaf, seconds=2.5, quit_after=0.5)
    assert run.started and run.quit_sent
    assert run.timed_out and not run.exited_cleanly and not run.ok
    assert run.pid is not None and not alive(run.pid)


def test_a_pygame_game_that_crashes_in_its_loop_names_the_line() -> None:
    pytest.importorskip("pygame")
    broken = GAME.replace("y += speed", "y += velocity")
    assert check_code(broken).undefined_names == ["velocity"]
    run = run_headless(broken, seconds=10, quit_after=0.5)
    assert run.started and not run.exited_cleanly and not run.quit_sent
    assert run.error == "line 25: NameError: name 'velocity' is not defined"
