"""Optional extras (`pip install 'qwq-ollama[plot]'`), found missing before any work starts.

A long `compare` that dies at its last step for want of matplotlib loses every run it made;
checking first costs a module lookup, not an import.
"""

from __future__ import annotations

import importlib.util

from qwq_ollama.errors import EnvironmentProblem

EXTRAS = {"plot": "matplotlib", "game": "pygame"}  # extra -> the module it brings


def installed(module: str) -> bool:
    """Whether `module` can be imported, without importing it (pygame prints a banner)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: present in sys.modules as None (blocked)
        return False


def require_extra(extra: str, needed_by: str) -> None:
    """Refuse, in one line naming the pip command, a run that would need a missing extra."""
    module = EXTRAS[extra]
    if not installed(module):
        raise EnvironmentProblem(
            f"{needed_by} needs {module}, which is not installed: pip install 'qwq-ollama[{extra}]'"
        )
