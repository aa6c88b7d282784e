"""Keep-it-so for CI that passes every time: no test may let a model sample without a seed.

A lint over `tests/` (the AST, not a run): every call that makes a model generate must carry a
seed (`seed=N`, an options dict with "seed", `--seed N` on the command line), or a pragma on the
call's lines (or the line above), `# unseeded: <why every sample passes>`, that says why its assertions hold for
whatever the model says (a fake server answers; only the stream's shape is asserted). A lint and
not a runtime check, because half of the generation runs in subprocesses (`qwq-ollama chat`,
`ollama run`) where no fixture can see the request. The rule is exercised on planted tests below,
so it is seen to fail.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

TESTS = Path(__file__).resolve().parent
PRAGMA = "# unseeded:"

# Methods of the engine clients that generate (OllamaAPI, LlamaServerAPI, ollama.Client,
# a ChatEngine) and the library functions that generate through them.
GENERATING_METHODS = frozenset({"chat_stream", "chat_once", "generate_raw", "openai_chat"})
CLIENT_METHODS = frozenset({"chat", "generate"})  # ollama.Client's own, when given a prompt
GENERATING_FUNCTIONS = frozenset(
    {
        "generate_watched",
        "run_chat",
        "run_budgeted_chat",
        "budgeted_watched",
        "check_generation",
        "check_code_generation",
        "check_thinking",
        "run_ab",
    }
)
# Commands that generate, and the `validate` checks that do. `compare` and `demo` are not here:
# they seed every run themselves (compare's seeds 1..N, the demo's seed 1).
GENERATING_COMMANDS = frozenset({"chat"})
GENERATING_CHECKS = frozenset({"thinking", "generation", "code"})


@dataclass(frozen=True)
class Unseeded:
    path: str
    line: int
    call: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.call} samples without a seed"


def _strings(node: ast.AST) -> list[str]:
    """The string constants directly inside a call's arguments (a command line's words)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.List, ast.Tuple)):
        return [s for element in node.elts for s in _strings(element)]
    if isinstance(node, ast.Starred):
        return _strings(node.value)
    return []


def _has_seed_key(node: ast.AST | None, assigned: dict[str, ast.AST]) -> bool:
    """Whether an options value carries "seed": a dict literal, a merge, or a name bound to one."""
    if node is None:
        return False
    if isinstance(node, ast.Dict):
        keys = [k for k in node.keys if k is not None]
        spread = [v for k, v in zip(node.keys, node.values, strict=True) if k is None]
        return any(isinstance(k, ast.Constant) and k.value == "seed" for k in keys) or any(
            _has_seed_key(v, assigned) for v in spread
        )
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _has_seed_key(node.left, assigned) or _has_seed_key(node.right, assigned)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
        return any(k.arg == "seed" for k in node.keywords) or any(
            _has_seed_key(a, assigned) for a in node.args
        )
    if isinstance(node, ast.Name) and node.id in assigned:
        return _has_seed_key(assigned[node.id], assigned)
    return False


def _seeded(call: ast.Call, assigned: dict[str, ast.AST]) -> bool:
    for keyword in call.keywords:
        if keyword.arg == "seed":
            return not (isinstance(keyword.value, ast.Constant) and keyword.value.value is None)
        if keyword.arg == "options" and _has_seed_key(keyword.value, assigned):
            return True
    return False


def _command_line(call: ast.Call) -> list[str]:
    return [s for arg in call.args for s in _strings(arg)]


def _cli_generates(words: list[str]) -> bool:
    """Whether a `qwq-ollama` command line makes a model generate."""
    if not words:
        return False
    if words[0] in GENERATING_COMMANDS:
        return True
    if words[0] != "validate":
        return False
    if "--checks" not in words[:-1]:
        return True  # the default checks include generation
    chosen = set(words[words.index("--checks") + 1].split(","))
    return bool(chosen & GENERATING_CHECKS)


def _generating(call: ast.Call) -> str | None:
    """What the call is, if it makes a model generate."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    if name in GENERATING_METHODS or name in GENERATING_FUNCTIONS:
        return name
    if name in CLIENT_METHODS and isinstance(func, ast.Attribute):
        given = {k.arg for k in call.keywords}
        if "messages" in given or ("prompt" in given and _prompt_is_not_empty(call)):
            return f"{name}()"
    if isinstance(func, ast.Name) and name == "validate" and _validate_generates(call):
        return "validate()"
    words = _command_line(call)
    if name == "run_cli" and _cli_generates(words):
        return f"run_cli({words[0]!r})"
    return None


def _validate_generates(call: ast.Call) -> bool:
    """The library's `validate(api, catalog, ..., checks=...)`: its default checks generate."""
    checks = next((k.value for k in call.keywords if k.arg == "checks"), None)
    if checks is None:
        return True
    chosen = set(_strings(checks))
    return not chosen or bool(chosen & GENERATING_CHECKS)


def _prompt_is_not_empty(call: ast.Call) -> bool:
    """`generate(prompt="")` only loads the model; any other prompt generates."""
    prompt = next(k.value for k in call.keywords if k.arg == "prompt")
    return not (isinstance(prompt, ast.Constant) and prompt.value == "")


def _ollama_run(call: ast.Call) -> bool:
    """A subprocess started as `[ollama, "run", model, ...]`: ollama run, which takes no seed."""
    return any(
        isinstance(arg, (ast.List, ast.Tuple))
        and len(arg.elts) >= 2
        and isinstance(arg.elts[1], ast.Constant)
        and arg.elts[1].value == "run"
        for arg in call.args
    )


def _command_list(node: ast.AST) -> bool:
    """A list or tuple that starts with a word: a command line, if the word is a command."""
    return (
        isinstance(node, (ast.List, ast.Tuple))
        and bool(node.elts)
        and isinstance(node.elts[0], ast.Constant)
        and isinstance(node.elts[0].value, str)
    )


def _bindings(tree: ast.AST) -> dict[str, ast.AST]:
    """Every `NAME = value` in a module (constants and locals alike: a lint, not a resolver)."""
    assigned: dict[str, ast.AST] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    assigned[target.id] = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
            assigned[node.target.id] = node.value
    return assigned


def unseeded_calls(source: str, path: str) -> Iterator[Unseeded]:
    tree = ast.parse(source)
    lines = source.splitlines()
    assigned = _bindings(tree)
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Call, ast.List, ast.Tuple)):
            continue
        if _command_list(node):
            # a command line kept for later (`run_cli(*args)`), written as a list
            words = _strings(node)
            what = f"the command line {words[0]!r}" if _cli_generates(words) else None
            seeded = "--seed" in words
        elif isinstance(node, ast.Call):
            what = "ollama run" if _ollama_run(node) else _generating(node)
            seeded = "--seed" in _command_line(node) or _seeded(node, assigned)
        else:
            continue  # a list of other words
        if what is None:
            continue
        if what == "ollama run":
            seeded = False  # `ollama run` takes no seed: only a pragma can say why it is safe
        end = node.end_lineno or node.lineno
        # the pragma stands on one of the call's lines, or alone on the line above it
        if seeded or any(PRAGMA in line for line in lines[max(0, node.lineno - 2) : end]):
            continue
        yield Unseeded(path, node.lineno, what)


def test_no_test_lets_a_model_sample_without_a_seed() -> None:
    found = [
        str(u)
        for path in sorted(TESTS.glob("*.py"))
        for u in unseeded_calls(path.read_text(), path.name)
    ]
    assert not found, "\n".join(found)


# The rule on planted tests: each unseeded shape is caught, each seeded one passes.
PLANTED_UNSEEDED = {
    "a native chat": "api.chat_stream('qwq-fixed', messages)",
    "options without a seed": "api.chat_once('m', messages, options={'num_predict': 8})",
    "a raw continuation": "api.generate_raw('m', 'text', options=OPTIONS)",
    "/v1": "api.openai_chat('m', messages, max_tokens=8)",
    "a command line for later": "args = ['chat', 'qwq-fixed', 'hi']\nrun_cli(*args)",
    "the ollama package": "client.chat(model='m', messages=[{'role': 'user', 'content': 'x'}])",
    "a watched generation": "generate_watched(api, 'm', 'Say hi', options={})",
    "the chat command": "run_cli('chat', 'qwq-fixed', 'hi')",
    "validate's default checks": "run_cli('validate', 'qwq-fixed')",
    "validate's generation": "run_cli('validate', '--checks', 'fidelity,generation')",
    "ollama run": "subprocess.Popen([str(ollama), 'run', 'qwq-fixed', 'hi'])",
    "a seed of None": "check_generation(api, variant, seed=None)",
    "the library's validate": "validate(api, catalog, ['qwq-fixed'], checks=('generation',))",
}
PLANTED_SEEDED = {
    "a seed keyword": "check_generation(api, variant, num_predict=8, seed=1)",
    "options with a seed": "api.chat_stream('m', messages, options={'seed': 1})",
    "options bound to a name": "OPTIONS = {'seed': 3, 'num_predict': 8}\n"
    "api.generate_raw('m', 'text', options=OPTIONS)",
    "a merged options dict": "api.chat_once('m', messages, options=OPTIONS | {'num_ctx': 8})\n"
    "OPTIONS = {'seed': 3}",
    "--seed": "run_cli('chat', 'qwq-fixed', 'hi', '--seed', '1')",
    "no generating check": "run_cli('validate', '--checks', 'fidelity,registration')",
    "a seeded command line for later": "args = ('validate', 'qwq-fixed', '--seed', '1')",
    "a model load": "client.generate(model='m', prompt='', keep_alive='10m')",
    "validate without generation": "validate(api, catalog, checks=('fidelity', 'registration'))",
    "jsonschema's validate": "jsonschema.validate(instance, SCHEMA)",
    "a pragma": "subprocess.Popen([ollama, 'run', 'm', 'hi'])  # unseeded: only the start",
}


def test_the_rule_flags_every_planted_unseeded_generation() -> None:
    for label, code in PLANTED_UNSEEDED.items():
        planted = f"def test_planted():\n{textwrap.indent(code, '    ')}\n"
        assert list(unseeded_calls(planted, "planted.py")), label


def test_the_rule_passes_seeded_calls_and_declared_exceptions() -> None:
    for label, code in PLANTED_SEEDED.items():
        planted = f"def test_planted():\n{textwrap.indent(code, '    ')}\n"
        assert not list(unseeded_calls(planted, "planted.py")), label
