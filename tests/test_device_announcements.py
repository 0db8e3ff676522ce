"""Every ``device.offline`` is followed by its ``device.online``, across agent restarts.

A real meter simulator over Modbus TCP goes down, the agent announces it offline and is then
killed with SIGKILL; the meter comes back on the same port and the restarted agent must
announce it back, or the hub would show it offline for good. LoRa sensors are marked the
same way (tests/test_lora_gateway.py covers their silence and return).
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edge_agent.device_state import STATE_FILE, OfflineDevices
from edge_agent.records import Event
from edge_agent.runtime import OUTBOX_FILE
from tests.test_runtime import drain, edge_agent, waiting_records

#: Starts a meter on a port (0: a free one); the process and its port.
Meter = Callable[[int], tuple[subprocess.Popen[str], int]]


@pytest.fixture
def meter() -> Iterator[Meter]:
    """SDM630 simulators over Modbus TCP, stopped at the end."""
    started: list[subprocess.Popen[str]] = []

    def start(port: int) -> tuple[subprocess.Popen[str], int]:
        process = subprocess.Popen(
            [sys.executable, "-m", "simulators.modbus", "--profile", "eastron-sdm630",
             "--tcp", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started.append(process)
        assert process.stdout is not None
        ready = process.stdout.readline().split()
        assert ready[:1] == ["READY"], process.communicate()[1]
        return process, int(ready[2].rsplit(":", 1)[1])

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def gateway(tmp_path: Path, port: int) -> Path:
    """A gateway polling one meter over TCP, five times a second, not provisioned."""
    path = tmp_path / "gateway.toml"
    path.write_text(f'[gateway]\nid = "gw"\ndata_dir = "data"\n\n'
                    f'[[buses]]\nname = "lan"\ntcp = "127.0.0.1:{port}"\ntimeout_ms = 200\n\n'
                    '[[devices]]\nname = "feeder"\nbus = "lan"\nprofile = "eastron-sdm630"\n'
                    "unit = 1\ninterval_s = 0.2\n", encoding="utf-8")
    return path


#: The events that announce a device; a loaded machine may add ``poll.late`` among them.
ANNOUNCEMENTS = ("device.offline", "device.online")


def wait_for_events(outbox: Path, count: int, agent: subprocess.Popen[str]) -> None:
    """Until the outbox holds ``count`` device announcements."""
    deadline = time.monotonic() + 30
    while _announced(outbox) < count:
        assert agent.poll() is None, agent.communicate()[1]
        assert time.monotonic() < deadline, f"{count} announcement(s) never reached the outbox"
        time.sleep(0.1)


def _announced(outbox: Path) -> int:
    """Announcements written so far, read beside the running agent (WAL lets it)."""
    if not outbox.exists():
        return 0
    conn = sqlite3.connect(f"{outbox.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return int(conn.execute(
            "SELECT count(*) FROM events WHERE kind IN (?, ?)", ANNOUNCEMENTS).fetchone()[0])
    except sqlite3.OperationalError:  # being created: no events table yet
        return 0
    finally:
        conn.close()


def announcements(outbox: Path) -> list[tuple[str, str]]:
    """The device announcements in the outbox, oldest first, as (kind, device)."""
    return [(e.kind, e.device) for e in drain(outbox)[1]
            if isinstance(e, Event) and e.kind in ANNOUNCEMENTS]


def test_a_meter_offline_when_the_agent_was_killed_is_announced_back_after_restart(
    tmp_path: Path, meter: Meter
) -> None:
    first, port = meter(0)
    config = gateway(tmp_path, port)
    outbox = tmp_path / "data" / OUTBOX_FILE
    agent = edge_agent("run", "--config", str(config))
    try:
        deadline = time.monotonic() + 30
        while not waiting_records(outbox):
            assert time.monotonic() < deadline, "no reading reached the outbox"
            time.sleep(0.1)
        first.kill()  # the meter goes down ...
        wait_for_events(outbox, 1, agent)  # ... is announced offline ...
    finally:
        agent.send_signal(signal.SIGKILL)  # ... and the agent dies with it unannounced back
        agent.communicate(timeout=20)
    assert announcements(outbox) == [("device.offline", "feeder")]
    assert set(OfflineDevices(tmp_path / "data" / STATE_FILE, {"feeder"}).since_ms) == {
        "feeder"}

    meter(port)  # the meter is back on its port
    agent = edge_agent("run", "--config", str(config))
    try:
        wait_for_events(outbox, 2, agent)
    finally:
        agent.send_signal(signal.SIGTERM)
        _, log = agent.communicate(timeout=20)
    assert agent.returncode == 0, log
    assert announcements(outbox) == [("device.offline", "feeder"), ("device.online", "feeder")]
    assert OfflineDevices(tmp_path / "data" / STATE_FILE, {"feeder"}).since_ms == {}
