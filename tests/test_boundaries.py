"""One owner per concept, checked from the imports: only `qwq_ollama/daemon/` and
`qwq_ollama/engines/` talk HTTP (httpx, the ollama client), nothing but the CLI package imports
typer, and the layers hold: catalog < artifacts < daemon < engines < checks < cli, nested imports
included, no two modules importing each other."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "qwq_ollama"


def _imported_roots(source: Path) -> set[str]:
    """Top-level names of every module the file imports, at any depth of the code."""
    roots = set()
    for node in ast.walk(ast.parse(source.read_text(), str(source))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            roots.add(node.module.split(".")[0])
    return roots


def _modules() -> list[Path]:
    found = sorted(PACKAGE.rglob("*.py"))
    assert len(found) > 30, "the package was not found"
    return found


def test_only_the_daemon_and_engine_packages_talk_http() -> None:
    talking = [
        str(p.relative_to(PACKAGE))
        for p in _modules()
        if {"httpx", "ollama"} & _imported_roots(p) and p.parent.name not in ("daemon", "engines")
    ]
    assert talking == []


def test_only_the_cli_imports_typer() -> None:
    users = {p.relative_to(PACKAGE).parts[0] for p in _modules() if "typer" in _imported_roots(p)}
    assert users == {"cli"}


def test_the_cli_stays_thin() -> None:
    """Each command group's module fits in a reading: the decisions live in the library."""
    sizes = {p.name: len(p.read_text().splitlines()) for p in (PACKAGE / "cli").glob("*.py")}
    assert len(sizes) > 5, "the CLI package was not found"
    assert {name: n for name, n in sizes.items() if n > 400} == {}


def test_only_main_ends_the_program() -> None:
    """Commands return their exit code; main() alone exits, so every code is decided once."""
    exiting = []
    for path in (PACKAGE / "cli").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("exit", "Exit"):
                exiting.append(f"{path.name}:{node.lineno}")
    assert all(place.startswith("__init__.py:") for place in exiting), exiting


# The package's layers, lowest first: a module may import its own layer and those below it.
# The top-level helpers (facts, errors, paths, atomic, pypi, weights_file) are below them all;
# the CLI and what only it runs (console_script, __main__, demo) above them all.
LAYERS = {"catalog": 1, "artifacts": 2, "daemon": 3, "engines": 4, "checks": 5}
TOP = {"cli", "console_script", "__main__", "demo"}


def _layer(module: str) -> int:
    first = module.split(".")[0]
    return LAYERS.get(first, 6 if first in TOP else 0)


def _package_imports(source: Path) -> set[str]:
    """The modules of the package `source` imports, at any depth (inside functions too)."""
    found = set()
    for node in ast.walk(ast.parse(source.read_text(), str(source))):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if node.module == "qwq_ollama":
                found |= {alias.name for alias in node.names}
            elif node.module.startswith("qwq_ollama."):
                package = node.module.removeprefix("qwq_ollama.")
                # `from qwq_ollama.artifacts import export`: the module artifacts.export
                found |= {package} | {f"{package}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {
                a.name.removeprefix("qwq_ollama.")
                for a in node.names
                if a.name.startswith("qwq_ollama.")
            }
    return found


def package_imports(package: Path) -> dict[str, set[str]]:
    """Module -> the package's other modules it imports (`from m import f`: m, not m.f, unless
    m.f is a module; a package's `__init__` importing its own modules does not import itself)."""
    imports = {}
    for path in sorted(package.rglob("*.py")):
        name = ".".join(path.relative_to(package).with_suffix("").parts)
        imports[name.removesuffix(".__init__")] = _package_imports(path)
    return {
        module: {t for t in targets if (t in imports or "." not in t) and t != module}
        for module, targets in imports.items()
    }


def import_circles(imports: dict[str, set[str]]) -> list[list[str]]:
    """Every circle of imports, of any length: graphlib's topological sort names one circle at a
    time; one of its imports is set aside and the sort runs again until the graph has none.
    Each circle starts at its smallest module name and ends where it began."""
    remaining = {module: set(targets) for module, targets in imports.items()}
    circles: list[list[str]] = []
    while True:
        try:
            graphlib.TopologicalSorter(remaining).prepare()
            return sorted(circles)
        except graphlib.CycleError as error:
            found = list(reversed(error.args[1]))[:-1]  # graphlib lists imported before importer
        start = found.index(min(found))
        circle = found[start:] + found[:start]
        circles.append([*circle, circle[0]])
        remaining[circle[0]].discard(circle[1 % len(circle)])


def layering_problems(package: Path) -> list[str]:
    """Every import that runs up the layers, and every circle of imports."""
    imports = package_imports(package)
    problems = [
        f"{module} imports {target}, a higher layer"
        for module, targets in imports.items()
        for target in sorted(targets)
        if _layer(target) > _layer(module)
    ]
    problems += ["import circle: " + " -> ".join(circle) for circle in import_circles(imports)]
    return problems


def test_the_layers_hold_nested_imports_included() -> None:
    assert layering_problems(PACKAGE) == []


def test_the_layering_check_sees_a_bad_import(tmp_path: Path) -> None:
    """The check itself, on a package of its own with one upward import inside a function, one
    pair of modules importing each other and a circle of three, one link of it nested."""
    for name, text in {
        "catalog/schema.py": "def f():\n    from qwq_ollama.checks.doctor import diagnose\n",
        "checks/doctor.py": "from qwq_ollama.catalog import load\n",
        "artifacts/a.py": "import qwq_ollama.artifacts.b\n",
        "artifacts/b.py": "from qwq_ollama.artifacts import a\n",
        "engines/install.py": "from qwq_ollama.engines.smoke_check import smoke_check\n",
        "engines/smoke_check.py": "from qwq_ollama.engines import llama_server\n",
        "engines/llama_server.py": "def f():\n    from qwq_ollama.engines.install import x\n",
        "engines/variant_server.py": "from qwq_ollama.engines import install, llama_server\n",
    }.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert layering_problems(tmp_path) == [
        "catalog.schema imports checks.doctor, a higher layer",
        "import circle: artifacts.a -> artifacts.b -> artifacts.a",
        "import circle: engines.install -> engines.smoke_check -> engines.llama_server"
        " -> engines.install",
    ]


def test_engines_reach_the_daemon_package_through_its_client_only() -> None:
    """Building and running our own engines needs two things of the daemon-talking package: the
    client, to ask a private daemon, and the one bounded HTTP door (transport), through which the
    llama-server client talks. Nothing else of it, so the two jobs stay apart."""
    used = {
        target
        for module, targets in package_imports(PACKAGE).items()
        if module.startswith("engines.")
        for target in targets
        if target.startswith("daemon.")
    }
    assert used == {"daemon.client", "daemon.transport"}
