"""Faults during sync, repeated with bounded loops: after recovery the hub holds exactly the
records the gateway wrote, per stream: none lost, none duplicated, none altered.

- the agent killed with SIGKILL at random moments while it drains its outbox;
- a hub process killed with SIGKILL and restarted while the agent pushes;
- connections cut mid-request, answers lost and links gone dark, by a TCP proxy between
  agent and hub.

Each runs against the SQLite hub and, wherever PostgreSQL is reachable, the PostgreSQL hub.
Random moments come from a seeded generator, so a failure can be replayed.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simulators.hub_process import spawn_hub, stop_process
from tests.helpers.gateway import GatewayDir, agent, make_gateway, missing_or_wrong
from tests.helpers.hub import HubProcess
from tests.helpers.tcp_proxy import TcpProxy

pytestmark = pytest.mark.slow

KILLS = 8
CLEAN: dict[str, list[int]] = {"missing": [], "extra": [], "wrong": []}


def _exact(hub: HubProcess, territory: str, gw: GatewayDir) -> None:
    report = missing_or_wrong(hub, territory, gw)
    assert report == dict.fromkeys(gw.written, CLEAN)


def _held(hub: HubProcess, territory: str, gw: GatewayDir) -> int:
    from tests.helpers.gateway import hub_content

    return sum(len(records) for records in hub_content(hub, territory, gw.name).values())


def _wait_until_drained(hub: HubProcess, territory: str, gw: GatewayDir, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    total = sum(gw.written.values())
    while _held(hub, territory, gw) < total and time.monotonic() < deadline:
        time.sleep(0.25)


def _wait_for_progress(hub: HubProcess, gw: GatewayDir, process: subprocess.Popen[str],
                       beyond: int) -> None:
    """Wait until the hub holds more than ``beyond`` records or the drain ends.

    A kill timed from the start would land before the first push on a loaded machine, where
    the agent's start-up alone can take seconds.
    """
    deadline = time.monotonic() + 60
    while (_held(hub, "faults", gw) <= beyond and process.poll() is None
           and time.monotonic() < deadline):
        time.sleep(0.05)


def _start_agent(gw: GatewayDir) -> subprocess.Popen[str]:
    """``edge-agent run`` in the background, its output in ``agent.log`` beside its config.

    Not a pipe: nobody reads it while the faults go on, and the agent's retry warnings
    (tens of KB on a slow machine) would fill it and freeze the agent mid-drain.
    """
    with _log_path(gw).open("a", encoding="utf-8") as log:
        return subprocess.Popen([sys.executable, "-m", "edge_agent", "run", "--config",
                                 str(gw.config)], stdout=log, stderr=log, text=True)


def _log_path(gw: GatewayDir) -> Path:
    return gw.config.parent / "agent.log"


def test_agent_killed_at_random_moments_during_sync(hub: HubProcess, tmp_path: Path) -> None:
    rng = random.Random(20261125)
    # Small batches: a drain must take several seconds for kills to land in its middle.
    gw = make_gateway(tmp_path, hub, "faults", "agent-kill",
                      sync_settings="batch_limit = 20\ntimeout_s = 5\n")
    total = sum(gw.written.values())
    held_at_kills: list[int] = []
    for _ in range(KILLS):
        with subprocess.Popen(
            [sys.executable, "-m", "edge_agent", "sync", "--once", "--config", str(gw.config)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
        ) as process:
            try:
                _wait_for_progress(hub, gw, process,
                                   beyond=held_at_kills[-1] if held_at_kills else 0)
                time.sleep(rng.uniform(0.0, 0.6))
            finally:
                process.send_signal(signal.SIGKILL)
        held_at_kills.append(_held(hub, "faults", gw))
        if held_at_kills[-1] == total:
            break
    assert any(0 < held < total for held in held_at_kills), (
        f"no kill landed in the middle of the drain: {held_at_kills}")
    done = agent("sync", "--once", "--config", str(gw.config))
    assert "outbox empty" in done.stdout
    _exact(hub, "faults", gw)
    again = agent("sync", "--once", "--config", str(gw.config))
    assert "0 records sent" in again.stdout


def test_hub_killed_and_restarted_while_the_agent_pushes(hub: HubProcess, tmp_path: Path) -> None:
    rng = random.Random(7)
    url, victim = spawn_hub(hub.data_dir, hub.database_url)
    port = int(url.rsplit(":", 1)[1])
    gw = make_gateway(tmp_path, hub, "faults", "hub-kill", hub_url=url,
                      sync_settings="batch_limit = 50\ninterval_s = 0.2\n"
                                    "max_backoff_s = 0.5\ntimeout_s = 5\n")
    total = sum(gw.written.values())
    running = _start_agent(gw)
    held_at_kills: list[int] = []
    try:
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.3, 1.2))
            stop_process(victim, signal.SIGKILL)
            held_at_kills.append(_held(hub, "faults", gw))
            time.sleep(rng.uniform(0.0, 1.0))
            _, victim = spawn_hub(hub.data_dir, hub.database_url, port=port)
        _wait_until_drained(hub, "faults", gw, timeout_s=90)
    finally:
        stop_process(running)
        stop_process(victim)
    assert running.returncode == 0, _log_path(gw).read_text(encoding="utf-8")
    assert any(0 < held < total for held in held_at_kills), held_at_kills
    _exact(hub, "faults", gw)


def test_connections_cut_mid_request_by_a_proxy(hub: HubProcess, tmp_path: Path) -> None:
    rng = random.Random(11)
    with TcpProxy("127.0.0.1", int(hub.url.rsplit(":", 1)[1])) as proxy:
        gw = make_gateway(tmp_path, hub, "faults", "cut-links", hub_url=proxy.url,
                          sync_settings="batch_limit = 50\ninterval_s = 0.2\n"
                                        "max_backoff_s = 0.5\ntimeout_s = 2\n")
        running = _start_agent(gw)
        try:
            for round_ in range(KILLS):
                proxy.random_cuts(seed=round_, probability=0.5, max_offset=8_000)
                time.sleep(rng.uniform(0.5, 1.5))
                proxy.cut_after(0, "downstream", every=True)  # the hub stores, the answer dies
                time.sleep(rng.uniform(0.2, 0.8))
                proxy.blackhole()
                time.sleep(rng.uniform(0.5, 2.5))
                proxy.drop_connections()
            proxy.pass_through()
            _wait_until_drained(hub, "faults", gw, timeout_s=90)
        finally:
            stop_process(running)
        stats = proxy.stats
    assert running.returncode == 0, _log_path(gw).read_text(encoding="utf-8")
    assert stats.cuts >= KILLS, stats
    _exact(hub, "faults", gw)
