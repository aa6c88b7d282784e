"""The `qwq-ollama` console script: a `create` with nothing to do is answered before the CLI loads.

Loading the full CLI (typer, pydantic, the ollama client) takes about 0.3 s; an unchanged
re-run of `create` needs a tenth of that (see daemon/quick_create.py). Everything else goes to
`cli`.
"""

from __future__ import annotations

import gc
import sys


def main() -> None:
    # A command is one short process, and nearly every object it makes at start-up (modules,
    # pydantic schemas, compiled templates) lives until exit. At the default threshold (700
    # new objects) the collector re-walks them hundreds of times while the imports run: about
    # 40 ms of a cold `create`. Cyclic garbage still gets collected, just in larger batches.
    gc.set_threshold(100_000, *gc.get_threshold()[1:])
    try:
        _run(sys.argv[1:])
    finally:
        # Everything dies with the process: sparing the collector its last walk over every
        # object takes about 60 ms off a full run's exit, and a tenth off the quick answer.
        gc.freeze()


def _run(args: list[str]) -> None:
    if args[:1] == ["create"]:
        from qwq_ollama.daemon.quick_create import answer

        names = answer(args)
        if names is not None:
            sys.stdout.write("".join(f"{name} is up to date\n" for name in names))
            sys.exit(0)
    from qwq_ollama.cli import main as cli_main

    cli_main()
