"""The full CLI runs with the network blocked: every socket to a non-loopback address (and every name lookup of a
non-local host) raises and is recorded, and the run still succeeds with nothing recorded."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, TINY

ARGS = (
    "--graph",
    "reflect",
    "--model",
    TINY,
    "--limit",
    "2",
    "--draft-tokens",
    "32",
    "--critique-tokens",
    "24",
    "--n-ctx",
    "2048",
)

# Imported by every Python process started with this directory first on PYTHONPATH (site.py imports sitecustomize).
GUARD = r"""
import ipaddress, os, socket

_LOG = os.environ["NET_GUARD_LOG"]


def _record(line):
    with open(_LOG, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def _local(host):
    if host is None:
        return True
    host = host.decode() if isinstance(host, (bytes, bytearray)) else str(host)
    if host in ("", "localhost"):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False  # any other host name would need a DNS lookup


def _block(what, target):
    _record(f"blocked {what} {target!r}")
    raise OSError(f"network blocked by test: {what} {target!r}")


def _guarded(method, what, addr_index):
    def guard(self, *args):
        address = args[addr_index] if len(args) > addr_index else None
        if self.family != getattr(socket, "AF_UNIX", object()) and address is not None:
            if not _local(address[0] if isinstance(address, tuple) else address):
                _block(what, address)
        return method(self, *args)
    return guard


socket.socket.connect = _guarded(socket.socket.connect, "connect", 0)
socket.socket.connect_ex = _guarded(socket.socket.connect_ex, "connect_ex", 0)
socket.socket.sendto = _guarded(socket.socket.sendto, "sendto", -1)

_getaddrinfo, _create_connection, _gethostbyname = socket.getaddrinfo, socket.create_connection, socket.gethostbyname


def getaddrinfo(host, *args, **kwargs):
    if not _local(host):
        _block("getaddrinfo", host)
    return _getaddrinfo(host, *args, **kwargs)


def create_connection(address, *args, **kwargs):
    if not _local(address[0]):
        _block("create_connection", address)
    return _create_connection(address, *args, **kwargs)


def gethostbyname(host):
    if not _local(host):
        _block("gethostbyname", host)
    return _gethostbyname(host)


socket.getaddrinfo, socket.create_connection, socket.gethostbyname = getaddrinfo, create_connection, gethostbyname
_record("guard loaded")
"""


@pytest.fixture
def guarded_env(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(GUARD, encoding="utf-8")
    log = tmp_path / "net.log"
    env = dict(
        os.environ,
        NET_GUARD_LOG=str(log),
        PYTHONPATH=os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
    )
    return env, log


def attempts(log: Path) -> list[str]:
    lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    assert "guard loaded" in lines, "the guard was not imported, so this test would prove nothing"
    return [line for line in lines if line != "guard loaded"]


def run_cli(out: Path, env: dict, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "eval.agentic", *ARGS, "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_guard_blocks_and_records(guarded_env):
    # The guard itself works: a lookup or connection to the outside raises and is recorded (nothing leaves: the
    # guard refuses before any packet is sent).
    env, log = guarded_env
    probe = (
        "import socket\n"
        "for f in (lambda: socket.create_connection(('example.com', 443), timeout=1),"
        " lambda: socket.socket().connect(('203.0.113.1', 80))):\n"
        "    try: f()\n"
        "    except OSError as e: assert 'network blocked by test' in str(e), e\n"
        "    else: raise SystemExit('not blocked')\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert len(attempts(log)) == 2


@pytest.mark.slow
def test_full_run_needs_no_network(guarded_env, tmp_path):
    env, log = guarded_env
    result = run_cli(tmp_path / "run", env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert attempts(log) == []
    assert (tmp_path / "run" / "report.md").is_file()


@pytest.mark.slow
def test_full_run_in_a_network_namespace(tmp_path):
    # A namespace with no network at all (only a loopback that is down): anything that needs the network fails.
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare(1) is not installed")
    probe = subprocess.run([unshare, "-rn", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"unshare -rn is not permitted here: {probe.stderr.strip()}")
    result = run_cli(tmp_path / "run", dict(os.environ), prefix=(unshare, "-rn"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "run" / "report.md").is_file()
