"""The `qwq-ollama` command: the command groups wired together, and `main()`, the one place the
program exits. Each command is in the module of its group (catalog, daemon, checks, plan,
export, tools) and makes one library call; what it prints goes through `_output`.

Heavy modules are imported inside each command so that `--help` stays fast.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
import typer.main

from qwq_ollama.cli import catalog, checks, daemon, export, plan, tools
from qwq_ollama.cli._options import FLEET_COMMANDS, HostOpt
from qwq_ollama.cli._output import err, print_json_error, say
from qwq_ollama.errors import QwqOllamaError

app = typer.Typer(
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},  # as `ollama` and `hf` take
    pretty_exceptions_enable=False,
    help="Make reasoning models such as QwQ-32B run well on Ollama.",
)

# In the order `--help` lists them.
app.command("render")(catalog.render)
app.command("catalog")(catalog.show_catalog)
app.command("create")(daemon.create)
app.command("list")(daemon.list_)
app.command("remove")(daemon.remove)
app.command("prompt")(daemon.prompt)
app.command("chat")(daemon.chat)
app.command("validate")(checks.validate)
app.command("compare")(checks.compare)
app.command("install-ollama")(tools.install_ollama)
app.command("fetch-smollm2")(tools.fetch_smollm2)
app.command("demo")(tools.demo)
app.command("fidelity-table")(checks.fidelity_table)
app.add_typer(export.export_app, name="export")


@export.export_app.callback(invoke_without_command=True)
def _group_without_subcommand(ctx: typer.Context) -> None:
    """A group named without its subcommand: its help on stdout, as written, and exit 2."""
    if ctx.invoked_subcommand is None:
        say(ctx.get_help())
        raise typer.Exit(2)


app.command("embed-template")(export.embed_template)
app.command("doctor")(daemon.doctor)
app.command("inspect")(catalog.inspect)
app.command("fix-tokenizer")(catalog.fix_tokenizer)
app.command("download")(plan.download)
app.command("plan")(plan.plan)


@app.callback(invoke_without_command=True)
def _top(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print this tool's version and, if one answers, the daemon's."
        ),
    ] = False,
    host: HostOpt = None,
) -> None:
    """Make reasoning models such as QwQ-32B run well on Ollama."""
    if version or ctx.invoked_subcommand is None:
        if version:
            _print_versions(host)
        else:
            say(ctx.get_help())
        raise typer.Exit(0)  # nothing else to run: main() turns this into the exit
    if host is not None:  # `qwq-ollama --host H list`: the command's own default becomes H
        hosts = [host] if ctx.invoked_subcommand in FLEET_COMMANDS else host
        ctx.default_map = {**(ctx.default_map or {}), ctx.invoked_subcommand: {"host": hosts}}


def _print_versions(host: str | None) -> None:
    from importlib.metadata import version

    from qwq_ollama.daemon.client import OllamaAPI
    from qwq_ollama.errors import DaemonError

    say(f"qwq-ollama {version('qwq-ollama')}")
    api = OllamaAPI(host, timeout=1.0)
    try:
        say(f"Ollama {api.version()} at {api.host}")
    except DaemonError:
        say(f"Ollama: no daemon answers at {api.host}")


def readable_help(command: Any) -> Any:
    """Help as `ollama` and `hf` write it: `--vram VRAM`, `VARIANT`, `[VARIANTS]...`, instead of
    typer's `<str>` and `<list[str]>` type labels and `{variant}`. Set once on the built command."""
    for param in command.params:
        if getattr(param, "is_flag", False) or param.metavar is not None or param.name == "help":
            continue
        param.metavar = str(param.name).upper()
        if param.param_type_name == "argument":
            param.display_type_rich = lambda ctx: ""
            shown = param.metavar if param.required else f"[{param.metavar}]"
            shown += "..." if param.nargs != 1 else ""
            param._usage_display_name = lambda shown=shown: shown
    for sub in getattr(command, "commands", {}).values():
        readable_help(sub)
    return command


def main() -> None:
    """Entry point and the only exit: a command's return code; a library error as `Error: …`
    on stderr with its code (2 bad input, 3 no daemon answers, 1 otherwise); usage errors 2."""
    try:
        command = readable_help(typer.main.get_command(app))
        code = command.main(standalone_mode=False, prog_name="qwq-ollama")
    except QwqOllamaError as exc:
        line = str(exc).replace("\r", "\\r").replace("\n", "\\n")  # one line
        err("Error: " + line)
        code = exc.exit_code
        if "--json" in sys.argv[1:]:
            print_json_error(line, code)
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        err("Aborted.")
        code = 1
    except Exception as exc:
        # Usage errors from typer's bundled click arrive here in non-standalone mode.
        code = getattr(exc, "exit_code", None)
        if not (hasattr(exc, "show") and isinstance(code, int)):
            raise
        # one line, as every other refusal: the message and where the help is
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        where = getattr(getattr(exc, "ctx", None), "command_path", None) or "qwq-ollama"
        err(f"Error: {' '.join(message.split())} (see `{where} --help`)")
    sys.exit(code if isinstance(code, int) else 0)
