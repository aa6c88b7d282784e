"""`.ci/run` cannot pass with the nginx or Chromium suite skipped: under CI (QWQ_OLLAMA_NO_SKIP=1,
which .ci/run exports, or CI=true) a skip in those suites is a failure (tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .conftest import REQUIRED_SUITES, ROOT

# A browser test that needs no daemon: it skips wherever Chromium is not on PATH.
BROWSER_TEST = "tests/test_report_browser.py::test_the_console_check_sees_a_page_error"


def _run(**env: str) -> subprocess.CompletedProcess[str]:
    """That test where no Chromium can be found (PATH holds only the interpreter's folder)."""
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", "QWQ_OLLAMA_NO_SKIP")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:randomly",
            "-p",
            "no:cacheprovider",
            BROWSER_TEST,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        env={**clean, "PATH": str(Path(sys.executable).parent), **env},
    )


def test_ci_runs_with_skips_as_failures() -> None:
    text = (ROOT / ".ci" / "run").read_text()
    assert text.index("export QWQ_OLLAMA_NO_SKIP=1") < text.rindex("\nmake test")
    assert {"test_remote_proxy.py", "test_report_browser.py"} <= REQUIRED_SUITES


def test_a_skipped_browser_suite_fails_under_ci_and_only_there() -> None:
    assert _run().returncode == 0  # a developer's machine without Chromium: skipped
    for env in ({"QWQ_OLLAMA_NO_SKIP": "1"}, {"CI": "true"}):
        result = _run(**env)
        assert result.returncode == 1, result.stdout[-2000:]
        assert "a suite CI depends on was skipped" in result.stdout
