"""The README's front page run as a new user runs it: in one shell with only a user's own
environment (a fresh HOME from /etc/skel, a system PATH plus the user's ~/.local/bin and the
folder of their own `ollama`, no project venv, no Go), the commands exactly as printed. The CLI
must be where the README says `make models` puts it; nothing the README does not set up may be
needed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from qwq_ollama.engines.install import OllamaBinary

from .conftest import ROOT

README = (ROOT / "README.md").read_text()
VENV_CLI = ROOT / ".venv" / "bin" / "qwq-ollama"
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
SMALL = "smollm2-135m"


def _fresh_home(tmp_path: Path) -> Path:
    """A new user's HOME, as `useradd -m` makes it."""
    home = tmp_path / "home"
    if Path("/etc/skel").is_dir():
        shutil.copytree("/etc/skel", home, symlinks=True)
    home.mkdir(exist_ok=True)
    return home


def _users_env(home: Path, path: str, **extra: str) -> dict[str, str]:
    """Only what a user's login gives: no VIRTUAL_ENV, no project folder on PATH."""
    env = {"HOME": str(home), "PATH": path, "LANG": "C.UTF-8", "USER": "newcomer", **extra}
    assert str(ROOT) not in env["PATH"]
    return env


def _shell(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "--norc", "--noprofile", "-e", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def _front_page_block() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", README, re.S)
    block = next(b for b in blocks if "make models" in b)
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_the_readme_says_where_make_puts_the_cli() -> None:
    assert "`~/.local/bin`" in README and "`.venv/bin/qwq-ollama`" in README
    assert "Prerequisites:" in README


def test_make_cli_links_into_the_users_local_bin_found_by_a_clean_shell(tmp_path: Path) -> None:
    home = _fresh_home(tmp_path)
    env = _users_env(home, f"{home}/.local/bin:{SYSTEM_PATH}")
    done = _shell("make -s cli && command -v qwq-ollama && qwq-ollama --help", env)
    assert done.returncode == 0, done.stdout + done.stderr
    link = home / ".local" / "bin" / "qwq-ollama"
    assert f"qwq-ollama: linked at {link} (on your PATH)" in done.stdout
    assert f"\n{link}\n" in done.stdout
    assert "Usage: qwq-ollama" in done.stdout


def test_without_a_home_folder_on_path_make_prints_the_command_that_works(
    tmp_path: Path,
) -> None:
    home = _fresh_home(tmp_path)
    env = _users_env(home, SYSTEM_PATH)
    done = _shell("make -s cli", env)
    assert done.returncode == 0, done.stdout + done.stderr
    said = re.search(r"^qwq-ollama: run it as (\S+) ", done.stdout, re.M)
    assert said, done.stdout
    assert Path(said.group(1)) == VENV_CLI
    assert _shell(f"{said.group(1)} --help", env).returncode == 0
    assert not (home / ".local" / "bin" / "qwq-ollama").exists()


def test_another_programs_qwq_ollama_is_left_alone(tmp_path: Path) -> None:
    home = _fresh_home(tmp_path)
    theirs = home / ".local" / "bin" / "qwq-ollama"
    theirs.parent.mkdir(parents=True)
    theirs.write_text("#!/bin/sh\necho theirs\n")
    env = _users_env(home, f"{home}/.local/bin:{SYSTEM_PATH}")
    done = _shell("make -s cli", env)
    assert done.returncode == 0 and "is another program, left alone" in done.stdout
    assert theirs.read_text() == "#!/bin/sh\necho theirs\n"


def test_the_front_page_in_a_clean_shell_on_the_users_daemon(
    ollama_binary: OllamaBinary, small_gguf: Path, tmp_path: Path
) -> None:
    from qwq_ollama.engines.private_daemon import OllamaDaemon

    assert small_gguf.exists()
    assert _front_page_block() == ["make models", "ollama run qwq-fixed", "qwq-ollama validate"]
    home = _fresh_home(tmp_path)
    users_bin = tmp_path / "usr-local-bin"  # where the user's own Ollama is installed
    users_bin.mkdir()
    (users_bin / "ollama").symlink_to(ollama_binary.path)
    no_tools = tmp_path / "tools"  # where a build would land: it must stay absent
    # The commands as printed; only the small weights stand in for QwQ's 20 GB (the same flag
    # on each), and `ollama run` is resolved, not run: its generation is
    # tests/test_user_daemon_path.py's, under the sampling rule. validate generates nothing here.
    stand_in = {
        "make models": f"make models WEIGHTS={SMALL}",
        "ollama run qwq-fixed": "command -v ollama",
        "qwq-ollama validate": "command -v qwq-ollama; "
        f"qwq-ollama validate --weights {SMALL} --checks fidelity,registration --seed 1",
    }
    script = "\n".join(stand_in[c] for c in _front_page_block())
    with OllamaDaemon(ollama_binary.path, tmp_path / "models") as users:
        env = _users_env(
            home,
            f"{home}/.local/bin:{users_bin}:{SYSTEM_PATH}",
            OLLAMA_HOST=users.host,
            QWQ_OLLAMA_TOOLS=str(no_tools),
        )
        ran = _shell(script, env)
    out = ran.stdout + ran.stderr
    assert ran.returncode == 0, out
    link = home / ".local" / "bin" / "qwq-ollama"
    assert f"qwq-ollama: linked at {link} (on your PATH)" in ran.stdout, out
    assert f"\n{link}\n" in ran.stdout, out  # the shell found the CLI where the README says
    assert re.search(r"^pass\s+registration\s+qwq-fixed\s", ran.stdout, re.M), out
    assert not no_tools.exists()
    assert os.path.realpath(link) == str(VENV_CLI.resolve())
