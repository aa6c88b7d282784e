"""A remote daemon as people run one: behind nginx, which serves TLS with a private CA and asks
for HTTP Basic auth (or a bearer token, or a token in the query string), in front of a private
Ollama daemon. `create`, `list`, `validate` and a two-host fleet go through it with the right
credentials, a wrong password and a missing CA; the secrets appear in no output, report or file
the tool writes.

nginx is Debian's (`make test` installs nginx-light when run as root; without it these skip).
The proxy path is the same on every Ollama release, so these run on the current one.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from qwq_ollama.engines.install import CURRENT, ensure_ollama
from qwq_ollama.engines.private_daemon import OllamaDaemon, free_port

from .conftest import run_cli

PASSWORD = "s3cret-Pa55"  # noqa: S105 - the secret the tests hunt for
TOKEN = "T0KEN-4711"  # noqa: S105
SMALL = "smollm2-135m"


@dataclass
class Proxy:
    basic_port: int  # TLS + Basic auth (alice / PASSWORD)
    token_port: int  # TLS + a bearer token or ?token=
    ca_file: Path

    def basic(self, password: str = PASSWORD, host: str = "127.0.0.1") -> str:
        return f"https://alice:{password}@{host}:{self.basic_port}"


NGINX_CONF = """
{user}
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  map $http_authorization$arg_token $token_ok {{
    "Bearer {token}" 1;
    "{token}" 1;
    default 0;
  }}
  server {{
    listen 127.0.0.1:{basic_port} ssl;
    ssl_certificate {tmp}/server.pem;
    ssl_certificate_key {tmp}/server.pem;
    location / {{
      auth_basic "ollama";
      auth_basic_user_file {tmp}/htpasswd;
      include {tmp}/upstream.conf;
    }}
  }}
  server {{
    listen 127.0.0.1:{token_port} ssl;
    ssl_certificate {tmp}/server.pem;
    ssl_certificate_key {tmp}/server.pem;
    location / {{
      if ($token_ok = 0) {{ return 401; }}
      include {tmp}/upstream.conf;
    }}
  }}
}}
"""
# What the README's nginx example says: stream both ways, no size limit, Ollama's own Host.
UPSTREAM = """
proxy_pass http://127.0.0.1:{daemon_port};
proxy_set_header Host 127.0.0.1:{daemon_port};
proxy_http_version 1.1;
proxy_buffering off;
proxy_request_buffering off;
client_max_body_size 0;
proxy_read_timeout 600s;
"""


def _wait_for(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and process.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nginx did not start: {log.read_text(errors='replace')[-500:]}")


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OllamaDaemon]:
    """A private daemon of the current release (live: conftest.LIVE_FIXTURES names this)."""
    binary = ensure_ollama(CURRENT)
    with OllamaDaemon(binary.path, tmp_path_factory.mktemp("proxied-models")) as daemon:
        yield daemon


@pytest.fixture(scope="module")
def proxy(upstream: OllamaDaemon, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if nginx is None:
        pytest.skip("no nginx: `make test` installs it (apt-get install nginx-light, as root)")
    tmp = tmp_path_factory.mktemp("nginx")
    ca = trustme.CA()
    ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(
        str(tmp / "server.pem")
    )
    ca.cert_pem.write_to_path(str(tmp / "ca.pem"))
    (tmp / "htpasswd").write_text(f"alice:{{PLAIN}}{PASSWORD}\n")
    (tmp / "upstream.conf").write_text(UPSTREAM.format(daemon_port=upstream.port))
    proxy = Proxy(free_port(), free_port(), tmp / "ca.pem")
    conf = tmp / "nginx.conf"
    # As root, nginx's workers would drop to `nobody`, who cannot read pytest's 0700 folders.
    user = "user root;" if os.geteuid() == 0 else ""
    conf.write_text(
        NGINX_CONF.format(
            tmp=tmp,
            token=TOKEN,
            basic_port=proxy.basic_port,
            token_port=proxy.token_port,
            user=user,
        )
    )
    process = subprocess.Popen(
        [nginx, "-c", str(conf), "-p", str(tmp), "-e", str(tmp / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for(proxy.basic_port, process, tmp / "error.log")
        yield proxy
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture()
def written(tmp_path: Path) -> Path:
    """Where the tool may write (its cache, reports): searched for secrets afterwards."""
    return tmp_path / "written"


def env_for(proxy: Proxy, written: Path, **extra: str) -> dict[str, str]:
    return {
        "SSL_CERT_FILE": str(proxy.ca_file),
        "QWQ_OLLAMA_CACHE": str(written / "cache"),
        **extra,
    }


def assert_no_secret(written: Path, *outputs: subprocess.CompletedProcess[str]) -> None:
    for secret in (PASSWORD, TOKEN):
        for out in outputs:
            assert secret not in out.stdout + out.stderr
        for path in written.rglob("*") if written.exists() else []:
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path


def test_create_list_and_validate_through_a_basic_auth_tls_proxy(
    proxy: Proxy, written: Path
) -> None:
    env = env_for(proxy, written, OLLAMA_HOST=proxy.basic())
    created = run_cli("create", "qwq-noprefill", "--weights", SMALL, env=env)
    assert created.returncode == 0, created.stderr
    assert "created qwq-noprefill" in created.stdout
    again = run_cli("create", "qwq-noprefill", "--weights", SMALL, env=env)
    assert again.returncode == 0 and "qwq-noprefill" in again.stdout  # up to date
    listed = run_cli("list", "--weights", SMALL, "--json", "--host", proxy.basic(), env=env)
    assert listed.returncode == 0, listed.stderr
    rows = {r["variant"]: r for r in json.loads(listed.stdout)["variants"]}
    assert rows["qwq-noprefill"]["up_to_date"] is True
    report = written / "report.html"
    checked = run_cli(
        "validate",
        "qwq-noprefill",
        "--weights",
        SMALL,
        "--checks",
        "fidelity,registration",
        "--report",
        str(report),
        "--json-file",
        str(written / "v.json"),
        "--host",
        proxy.basic(),
        env=env,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "pass   registration  qwq-noprefill" in checked.stdout and report.exists()
    assert_no_secret(written, created, again, listed, checked)


def test_a_two_host_fleet_file_through_the_proxy(
    proxy: Proxy, written: Path, tmp_path: Path
) -> None:
    fleet = tmp_path / "hosts.yaml"
    fleet.write_text(
        f"hosts:\n  - {proxy.basic()}\n  - https://127.0.0.1:{proxy.token_port}/?token={TOKEN}\n"
    )
    env = env_for(proxy, written)
    listed = run_cli("list", "--weights", SMALL, "--fleet", str(fleet), "--json", env=env)
    hosts = json.loads(listed.stdout)["hosts"]
    assert [h["state"] for h in hosts] == ["ok", "ok"], listed.stdout + listed.stderr
    assert [h["host"] for h in hosts] == [
        f"https://alice:***@127.0.0.1:{proxy.basic_port}",
        f"https://127.0.0.1:{proxy.token_port}?token=***",
    ]
    assert_no_secret(written, listed)


def test_a_bearer_token_comes_from_ollama_api_key(proxy: Proxy, written: Path) -> None:
    host = f"https://127.0.0.1:{proxy.token_port}"
    without = run_cli("list", "--weights", SMALL, "--host", host, env=env_for(proxy, written))
    assert without.returncode == 2
    assert f"{host} refused the credentials (HTTP 401" in without.stderr
    env = env_for(proxy, written, OLLAMA_API_KEY=TOKEN)
    listed = run_cli("list", "--weights", SMALL, "--host", host, env=env)
    assert listed.returncode == 0, listed.stderr
    assert_no_secret(written, without, listed)


def test_a_wrong_password_is_one_line_without_the_password(proxy: Proxy, written: Path) -> None:
    wrong = "n0t-" + PASSWORD
    for args in (
        ["list", "--weights", SMALL],
        ["create", "qwq-fixed", "--weights", SMALL],
        ["validate", "qwq-fixed", "--weights", SMALL],  # unseeded: refused credentials
    ):
        result = run_cli(*args, "--host", proxy.basic(wrong), env=env_for(proxy, written))
        assert result.returncode == 2, result.stdout + result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "refused the credentials (HTTP 401" in lines[0], lines
        assert "Traceback" not in result.stderr and "start it" not in result.stderr
        assert wrong not in result.stdout + result.stderr and "alice:***@" in lines[0]
    assert_no_secret(written)


def test_a_missing_ca_is_one_line_naming_the_host(proxy: Proxy, written: Path) -> None:
    env = {"QWQ_OLLAMA_CACHE": str(written / "cache"), "SSL_CERT_FILE": "", "SSL_CERT_DIR": ""}
    result = run_cli("list", "--weights", SMALL, "--host", proxy.basic(), env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert f"TLS with https://alice:***@127.0.0.1:{proxy.basic_port} failed" in lines[0]
    assert "certificate verify failed" in lines[0] and "SSL_CERT_FILE" in lines[0]
    assert_no_secret(written, result)


def test_an_unreachable_host_never_prints_its_token(tmp_path: Path) -> None:
    result = run_cli(
        "list",
        "--host",
        "http://127.0.0.1:9/?token=abc123",
        env={"QWQ_OLLAMA_CACHE": str(tmp_path)},
    )
    assert result.returncode == 3
    assert "cannot reach Ollama at http://127.0.0.1:9?token=***" in result.stderr
    assert "abc123" not in result.stdout + result.stderr


def test_a_fleet_with_one_wrong_password_fails_that_host_alone(
    proxy: Proxy, written: Path, tmp_path: Path
) -> None:
    wrong = "n0t-" + PASSWORD
    fleet = tmp_path / "hosts.yaml"
    fleet.write_text(f"hosts:\n  - {proxy.basic()}\n  - {proxy.basic(wrong, 'localhost')}\n")
    listed = run_cli(
        "list", "--weights", SMALL, "--fleet", str(fleet), "--json", env=env_for(proxy, written)
    )
    assert listed.returncode != 0
    good, bad = json.loads(listed.stdout)["hosts"]
    assert (good["state"], bad["state"]) == ("ok", "unreachable"), listed.stdout
    assert bad["host"] == f"https://alice:***@localhost:{proxy.basic_port}"
    assert "refused the credentials (HTTP 401" in bad["error"]
    assert wrong not in listed.stdout + listed.stderr
    assert_no_secret(written, listed)
