"""The `qwq-ollama` console script: a `create` with nothing to do is answered before the CLI loads.

Loading the full CLI (typer, pydantic, the ollama client) takes about 0.3 s; an unchanged
re-run of `create` needs a fraction of that (see create_stamp). Everything else goes to `cli`.
"""

from __future__ import annotations

import sys


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["create"]:
        from .create_stamp import answer

        names = answer(args)
        if names is not None:
            sys.stdout.write("".join(f"{name} is up to date\n" for name in names))
            sys.exit(0)
    from .cli import main as cli_main

    cli_main()
