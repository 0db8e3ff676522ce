"""The hub in production: N workers on one port, and behind a reverse proxy.

Every test runs ``sync-server serve`` as a real process and talks HTTP to it.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from tests.helpers.hub import hub_cli_ok

ENROLL_FAILURES = 2


@contextmanager
def serving(data_dir: Path, *args: str, settings: tuple[str, ...] = (),
            env: dict[str, str] | None = None) -> Iterator[tuple[int, psutil.Process]]:
    """``sync-server [settings] serve`` on a free port (schema upgraded at start): its port
    and process."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PONTON_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "sync_server", "--data-dir", str(data_dir), "--demo",
         "--enroll-max-failures", str(ENROLL_FAILURES), *settings, "serve", "--port", "0",
         "--upgrade-db", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**environ, **(env or {})})
    assert process.stdout is not None
    line = process.stdout.readline().split()
    try:
        assert line[:1] == ["READY"], process.communicate(timeout=30)
        yield int(line[1].rsplit(":", 1)[1]), psutil.Process(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        _, log = process.communicate(timeout=30)
    # uvicorn re-raises the SIGTERM it handled once it has shut down cleanly
    assert process.returncode in (0, -signal.SIGTERM), log
    assert "Traceback" not in log


def _request(port: int, method: str, path: str, body: bytes = b"",
             headers: dict[str, str] | None = None,
             ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    """One request on a new connection, left open: the caller can see who holds it."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(method, path, body=body, headers={"Content-Type": "application/json",
                                                   **(headers or {})})
    return conn, conn.getresponse()


def _workers(hub: psutil.Process) -> list[psutil.Process]:
    """The hub's uvicorn workers (multiprocessing's spawned children, not its helpers)."""
    return [child for child in hub.children()
            if any("spawn_main" in part for part in _cmdline(child))]


def _cmdline(process: psutil.Process) -> list[str]:
    """Its command line; empty once it is gone (a child may end between listing and asking)."""
    try:
        return process.cmdline()
    except psutil.NoSuchProcess:
        return []


def test_two_workers_serve_one_port_with_the_settings_of_the_command(tmp_path: Path) -> None:
    # --max-request-mb is a hub setting: every worker must refuse a 4 KiB body.
    with serving(tmp_path / "hub", "--workers", "2",
                 settings=("--max-request-mb", "0.002")) as (port, hub):
        deadline = time.monotonic() + 60
        while len(_workers(hub)) < 2:
            assert time.monotonic() < deadline, hub.children()
            time.sleep(0.1)
        workers = {worker.pid: worker for worker in _workers(hub)}
        assert len(workers) == 2
        # the supervisor checked the database once and let go of it: only workers hold it
        assert not [f.path for f in hub.open_files() if f.path.endswith("hub.db")]
        served_by: dict[int, int] = {}
        # New connections until both workers answered some: bounded in time, not in count,
        # since on a loaded machine one worker may take seconds more to accept than the other.
        deadline = time.monotonic() + 60
        while len(served_by) < 2:
            assert time.monotonic() < deadline, served_by
            conn, response = _request(port, "POST", "/v1/enroll", b"x" * 4096)
            assert response.status == 413
            assert json.loads(response.read())["error"] == "too_large"
            local_port = conn.sock.getsockname()[1]
            (pid,) = [pid for pid, worker in workers.items()
                      if any(c.raddr and c.raddr.port == local_port
                             for c in worker.net_connections(kind="tcp"))]
            conn.close()
            served_by[pid] = served_by.get(pid, 0) + 1
        assert set(served_by) == set(workers), served_by
        conn, health = _request(port, "GET", "/v1/health")
        assert (health.status, json.loads(health.read())) == (200, {"status": "ok"})
        conn.close()
    assert not any(worker.is_running() and worker.status() != psutil.STATUS_ZOMBIE
                   for worker in workers.values())  # SIGTERM stopped them all


def _failed_enrollment(port: int, client: str) -> tuple[int, dict[str, str]]:
    """A wrong code, sent through a proxy that says it came from ``client``."""
    conn, response = _request(port, "POST", "/v1/enroll", b'{"code": "WRONG-CODE"}',
                              {"X-Forwarded-For": client})
    answer = response.status, json.loads(response.read())
    conn.close()
    return answer


def test_behind_a_trusted_proxy_the_hub_counts_the_forwarded_client(tmp_path: Path) -> None:
    with serving(tmp_path / "hub", "--forwarded-allow-ips", "127.0.0.1") as (port, _):
        for _ in range(ENROLL_FAILURES):
            assert _failed_enrollment(port, "203.0.113.7")[0] == 401
        status, error = _failed_enrollment(port, "203.0.113.7")
        assert (status, error["error"]) == (429, "too_many_attempts")
        assert "from 203.0.113.7;" in error["detail"]
        # another client behind the same proxy is not punished for the first one
        assert _failed_enrollment(port, "203.0.113.8")[0] == 401

        conn, redirect = _request(port, "GET", "/v1/health/", headers={
            "Host": "hub.example.org", "X-Forwarded-Proto": "https"})
        conn.close()
        assert redirect.status == 307
        assert redirect.getheader("location") == "https://hub.example.org/v1/health"


@pytest.mark.parametrize("trusted", [None, "10.0.0.1"], ids=["no proxy", "another proxy"])
def test_forwarded_headers_from_an_untrusted_peer_are_ignored(
    tmp_path: Path, trusted: str | None
) -> None:
    env = {} if trusted is None else {"PONTON_HUB_FORWARDED_ALLOW_IPS": trusted}
    with serving(tmp_path / "hub", env=env) as (port, _):
        for n in range(ENROLL_FAILURES):
            assert _failed_enrollment(port, f"198.51.100.{n}")[0] == 401
        status, error = _failed_enrollment(port, "198.51.100.99")
        assert status == 429  # every attempt counted against the real peer
        assert "from 127.0.0.1;" in error["detail"]
        conn, redirect = _request(port, "GET", "/v1/health/", headers={
            "Host": "hub.example.org", "X-Forwarded-Proto": "https"})
        conn.close()
        assert redirect.getheader("location") == "http://hub.example.org/v1/health"



def _healthz_served_by(port: int, hub: psutil.Process) -> set[int]:
    """The worker that answered one /healthz on a new connection."""
    conn, response = _request(port, "GET", "/healthz")
    assert response.status == 200
    local_port = conn.sock.getsockname()[1]
    pids = {worker.pid for worker in _workers(hub)
            if any(c.raddr and c.raddr.port == local_port
                   for c in worker.net_connections(kind="tcp"))}
    conn.close()
    return pids


def test_two_workers_share_their_metrics_and_log_json_lines(tmp_path: Path) -> None:
    """Whichever worker answers a scrape counts the requests both workers served; every log
    line is one JSON object."""
    data_dir = tmp_path / "hub"
    log_path = tmp_path / "hub.log"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PONTON_")}
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "sync_server", "--data-dir", str(data_dir), "--demo",
             "serve", "--port", "0", "--upgrade-db", "--workers", "2", "--log-format", "json"],
            stdout=subprocess.PIPE, stderr=log, text=True, env=environ)
    assert process.stdout is not None
    try:
        port = int(process.stdout.readline().split()[1].rsplit(":", 1)[1])
        hub = psutil.Process(process.pid)
        token = hub_cli_ok(data_dir, "token", "add", "--admin").strip()
        deadline = time.monotonic() + 60
        while len(_workers(hub)) < 2:
            assert time.monotonic() < deadline, hub.children()
            time.sleep(0.1)
        served_by: set[int] = set()
        answered = 0
        deadline = time.monotonic() + 60  # one worker may accept seconds after the other
        while len(served_by) < 2:
            assert time.monotonic() < deadline, served_by
            served_by |= _healthz_served_by(port, hub)
            answered += 1
        for _ in range(4):  # each scrape, from either worker, sees every healthz
            conn, scrape = _request(port, "GET", "/metrics",
                                    headers={"Authorization": f"Bearer {token}"})
            text = scrape.read().decode()
            conn.close()
            assert scrape.status == 200, text
            counted = re.search(r'ponton_hub_requests_total\{method="GET",route="/healthz",'
                                r'status="200"\} (\S+)', text)
            assert counted is not None, text
            assert float(counted.group(1)) == answered
        # a client leaving mid-body: one INFO line from a worker
        with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
            raw.sendall(b"POST /v1/enroll HTTP/1.1\r\nHost: hub\r\nContent-Type: "
                        b"application/json\r\nContent-Length: 1000\r\n\r\n{\"code\"")
        deadline = time.monotonic() + 30
        while "went away" not in log_path.read_text():
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert lines
    assert all(set(line) >= {"ts", "level", "logger", "message"} for line in lines)
    assert any(line["level"] == "INFO" and "went away mid-body" in line["message"]
               for line in lines)
