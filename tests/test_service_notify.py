"""systemd's notify protocol, with a real Unix datagram socket standing in for systemd.

The agent says ``READY=1`` once it runs, pings ``WATCHDOG=1`` from its event loop (so a
stalled loop goes quiet and systemd restarts it) and ``STOPPING=1`` on SIGTERM.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.notify import ServiceNotifier, keep_watchdog, watchdog_interval_s
from edge_agent.runtime import OUTBOX_FILE


class FakeSystemd:
    """A bound datagram socket recording each message with the moment it arrived."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(0.05)
        self.messages: list[tuple[float, str]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._done.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.append((time.monotonic(), data.decode("utf-8")))

    def wait_for(self, line: str, timeout_s: float = 30) -> float:
        """When a message holding ``line`` arrived; fails after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for at, message in list(self.messages):
                if line in message.splitlines():
                    return at
            time.sleep(0.02)
        raise AssertionError(f"no {line} within {timeout_s} s; got {self.messages}")

    def times_of(self, line: str) -> list[float]:
        return [at for at, message in list(self.messages) if line in message.splitlines()]

    def close(self) -> None:
        self._done.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[tuple[str, FakeSystemd]]:
    path = str(tmp_path / "notify.sock")
    fake = FakeSystemd(path)
    yield path, fake
    fake.close()


def test_the_agent_is_ready_pings_its_watchdog_and_says_it_stops(
    tmp_path: Path, systemd: tuple[str, FakeSystemd]
) -> None:
    path, fake = systemd
    config = tmp_path / "gateway.toml"
    config.write_text('[gateway]\nid = "cabinet-3"\ndata_dir = "data"\n', encoding="utf-8")
    env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"}
    agent = subprocess.Popen([sys.executable, "-m", "edge_agent", "run", "--config", str(config)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        ready = fake.wait_for("READY=1")
        assert (tmp_path / "data" / OUTBOX_FILE).exists()  # ready means the outbox is open
        deadline = time.monotonic() + 30
        while len([t for t in fake.times_of("WATCHDOG=1") if t > ready]) < 5:
            assert agent.poll() is None, agent.communicate()
            assert time.monotonic() < deadline, fake.messages
            time.sleep(0.05)
    finally:
        agent.send_signal(signal.SIGTERM)
        _, log = agent.communicate(timeout=30)
    assert agent.returncode == 0, log
    fake.wait_for("STOPPING=1", timeout_s=1)
    assert fake.messages[0][1] == "READY=1\nSTATUS=gateway cabinet-3 running"
    assert "cannot notify" not in log


def test_a_stalled_event_loop_stops_the_pings_until_it_runs_again(
    systemd: tuple[str, FakeSystemd]
) -> None:
    path, fake = systemd
    notifier = ServiceNotifier(path)

    async def stall_the_loop() -> None:
        pinger = asyncio.create_task(keep_watchdog(notifier, 0.05))
        await asyncio.sleep(0.3)
        time.sleep(1.0)  # a blocking call in a coroutine: the whole loop stands still
        await asyncio.sleep(0.3)
        pinger.cancel()

    started = time.monotonic()
    asyncio.run(stall_the_loop())
    time.sleep(0.2)  # let the receiver read the last datagrams
    pings = [at - started for at in fake.times_of("WATCHDOG=1")]
    assert len(pings) >= 6, pings
    gaps = [later - earlier for earlier, later in itertools.pairwise(pings)]
    assert max(gaps) >= 0.95, gaps  # silent for the whole stall: systemd would restart
    stall_start = next(at for at, gap in zip(pings, gaps, strict=False) if gap >= 0.95)
    assert sum(1 for at in pings if at > stall_start + 0.95) >= 2  # pings resume after it
    assert sorted(gaps)[-2] < 0.9  # and only the stall was that silent


def test_an_abstract_socket_name_is_reached(tmp_path: Path) -> None:
    name = f"@ponton-test-{os.getpid()}"
    fake = FakeSystemd("\0" + name[1:])
    try:
        assert ServiceNotifier(name).notify("READY=1", "STATUS=ok") is True
        fake.wait_for("STATUS=ok", timeout_s=5)
    finally:
        fake.close()


def test_outside_systemd_nothing_is_sent() -> None:
    notifier = ServiceNotifier.from_environment({})
    assert notifier.enabled is False
    assert notifier.notify("READY=1") is False


def test_an_unreachable_socket_is_logged_once_and_never_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = ServiceNotifier(str(tmp_path / "gone.sock"))
    with caplog.at_level(logging.WARNING, logger="edge_agent.notify"):
        assert notifier.notify("READY=1") is False
        assert notifier.notify("WATCHDOG=1") is False
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "cannot notify the service manager" in warnings[0]
    assert "gone.sock" in warnings[0]


@pytest.mark.parametrize(("environ", "expected"), [
    ({"WATCHDOG_USEC": "30000000"}, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # meant for another process
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "soon"}, None),
    ({}, None),
])
def test_the_ping_interval_is_half_the_watchdog_timeout(
    environ: dict[str, str], expected: float | None
) -> None:
    assert watchdog_interval_s(environ) == expected
