"""The running gateway: simulators → agent → outbox, in-process and as a real process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from edge_agent.buffer import RecordBuffer
from edge_agent.config import load_config
from edge_agent.errors import StoreError
from edge_agent.profiles import load_profile
from edge_agent.records import Event, Reading
from edge_agent.runtime import OUTBOX_FILE, STATUS_FILE, Gateway
from edge_agent.store import Outbox, read_stats
from simulators.modbus import ModbusSimulator, SimulatedMeter
from tests.conftest import SimulatorStarter


def gateway_toml(tmp_path: Path, tcp: str, serial: str, *, interval_s: float = 0.2) -> Path:
    """A gateway with a TCP feeder meter and an RS-485 line of two meters plus a dead one."""
    path = tmp_path / "gateway.toml"
    path.write_text(f"""
[gateway]
id = "test-gw"
data_dir = "data"

[[buses]]
name = "lan"
tcp = "{tcp}"
timeout_ms = 200

[[buses]]
name = "pontoon"
serial = "{serial}"
timeout_ms = 200

[[devices]]
name = "feeder"
bus = "lan"
profile = "eastron-sdm630"
unit = 1
interval_s = {interval_s}

[[devices]]
name = "berth-1"
bus = "pontoon"
profile = "eastron-sdm120"
unit = 1
interval_s = {interval_s}
min_silence_ms = 0

[[devices]]
name = "water"
bus = "pontoon"
profile = "isma-sfar-4di"
unit = 2
interval_s = {interval_s}

[[devices]]
name = "berth-9"
bus = "pontoon"
profile = "eastron-sdm120"
unit = 9
interval_s = {interval_s}
""", encoding="utf-8")
    return path


def drain(path: Path) -> tuple[list[Reading], list[Event]]:
    """Everything in an outbox, by reading batches without acknowledging them."""
    readings: list[Reading] = []
    events: list[Event] = []
    with Outbox.open(path) as outbox:
        for stream in ("readings", "events"):
            batch = outbox.next_batch(stream=stream, limit=1_000_000)
            for _seq, record in batch.records if batch else []:
                if isinstance(record, Reading):
                    readings.append(record)
                else:
                    events.append(record)
    return readings, events


@pytest.mark.usefixtures("no_leaks")
async def test_gateway_stores_every_device_and_reports_the_dead_one(tmp_path: Path) -> None:
    async with (
        ModbusSimulator([SimulatedMeter(1, load_profile("eastron-sdm630"))]) as lan,
        ModbusSimulator([SimulatedMeter(1, load_profile("eastron-sdm120")),
                         SimulatedMeter(2, load_profile("isma-sfar-4di"))],
                        transport="rtu") as pontoon,
    ):
        config = load_config(gateway_toml(tmp_path, lan.endpoint, pontoon.device_path))
        gateway = Gateway(config)
        stop = asyncio.Event()
        task = asyncio.create_task(gateway.run(stop))
        dead = next(d for bus in gateway.buses for d in bus.devices if d.name == "berth-9")
        feeder = next(d for bus in gateway.buses for d in bus.devices if d.name == "feeder")
        async with asyncio.timeout(20):
            while dead.health.online is not False or feeder.health.polls < 5:
                await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 10)
        polls = {d.name: d.health.polls - d.health.failed_polls
                 for bus in gateway.buses for d in bus.devices}

    data_dir = tmp_path / "data"
    readings, events = drain(data_dir / OUTBOX_FILE)
    per_device = {name: sum(1 for r in readings if r.device == name) for name in polls}
    # Every successful poll is in the outbox after the stop, none more: nothing lost on the way.
    assert per_device["feeder"] == polls["feeder"] * 80
    assert per_device["berth-1"] == polls["berth-1"] * 13
    assert per_device["water"] == polls["water"] * 4
    assert per_device["berth-9"] == 0
    # The dead meter's timeouts make the others on its line miss slots: reported as lateness.
    assert [(e.kind, e.device) for e in events if e.kind != "poll.late"] == [
        ("device.offline", "berth-9")]
    status = json.loads((data_dir / STATUS_FILE).read_text(encoding="utf-8"))
    by_name = {d["name"]: d for d in status["devices"]}
    assert by_name["berth-9"]["online"] is False
    assert by_name["berth-9"]["timeouts"] >= 3
    assert by_name["feeder"]["online"] is True


def edge_agent(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "edge_agent", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "COLUMNS": "200"},
    )


def waiting_records(path: Path) -> int:
    """Records in the outbox; 0 while the agent is still creating or upgrading it."""
    try:
        return sum(s.depth for s in read_stats(path)) if path.exists() else 0
    except StoreError:
        return 0


def status_report(config: Path) -> dict[str, Any]:
    """``edge-agent status --json``, parsed."""
    status = subprocess.run(
        [sys.executable, "-m", "edge_agent", "status", "--config", str(config), "--json"],
        capture_output=True, text=True, timeout=60, check=True,
    )
    report: dict[str, Any] = json.loads(status.stdout)
    return report


def test_agent_process_flushes_on_sigterm_and_refuses_a_second_instance(
    tmp_path: Path, simulator_process: SimulatorStarter
) -> None:
    tcp = simulator_process("--profile", "eastron-sdm630", "--tcp", "0")
    serial = simulator_process("--profile", "eastron-sdm120", "--pty", "--baud", "9600",
                               "--unit", "1")
    config = gateway_toml(tmp_path, tcp, serial)
    outbox_path = tmp_path / "data" / OUTBOX_FILE
    agent = edge_agent("run", "--config", str(config))
    try:
        deadline = time.monotonic() + 30
        while waiting_records(outbox_path) <= 200:
            assert agent.poll() is None, agent.communicate()[1]
            assert time.monotonic() < deadline, "no readings reached the outbox"
            time.sleep(0.1)
        live = status_report(config)
        while not any(d["online"] for d in live["devices"]):
            assert time.monotonic() < deadline, f"no device online in {live}"
            time.sleep(0.2)
            live = status_report(config)
        assert live["agent_running"] is True
        second = edge_agent("run", "--config", str(config))
        _, err = second.communicate(timeout=30)
        assert second.returncode == 2
        assert "already running" in err
        assert "Traceback" not in err
    finally:
        agent.send_signal(signal.SIGTERM)
        _, log = agent.communicate(timeout=20)
    assert agent.returncode == 0, log
    assert "stopped; outbox closed" in log
    with sqlite3.connect(outbox_path) as conn:
        assert conn.execute("PRAGMA quick_check").fetchone() == ("ok",)
    readings, _events = drain(outbox_path)
    assert {r.device for r in readings} >= {"feeder", "berth-1"}

    report = status_report(config)
    assert report["agent_running"] is False
    depth = {s["name"]: s["depth"] for s in report["streams"]}
    assert depth["readings"] == len(readings)
    assert {d["name"] for d in report["devices"]} == {"feeder", "berth-1", "water", "berth-9"}


def test_buffer_keeps_events_and_drops_the_oldest_readings_beyond_its_bound() -> None:
    buffer = RecordBuffer(max_readings=5)
    buffer.put_event(Event("device.offline", "m", 1))
    buffer.put_readings([Reading("m", "voltage", ts, 230.0) for ts in range(1, 9)])
    assert [r.ts_ms for r in buffer.readings] == [4, 5, 6, 7, 8]
    gap = buffer.events[-1]
    assert gap.kind == "gap"
    assert gap.attrs == {"reason": "outbox not writable, memory buffer full",
                         "stream": "readings", "count": 3, "from_ts_ms": 1, "to_ts_ms": 3}
    buffer.written_events(2)
    buffer.written_readings(5)
    assert len(buffer) == 0
    assert not buffer.ready.is_set()


@pytest.mark.usefixtures("no_leaks")
async def test_failed_outbox_writes_are_retried_without_losing_a_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failures = {"left": 2}
    append = Outbox.append_many

    def flaky_append(self: Outbox, parts: Any, **kwargs: Any) -> Any:
        if failures["left"]:
            failures["left"] -= 1
            raise StoreError("disk I/O error (injected)")
        return append(self, parts, **kwargs)

    monkeypatch.setattr(Outbox, "append_many", flaky_append)
    async with (
        ModbusSimulator([SimulatedMeter(1, load_profile("eastron-sdm630"))]) as lan,
        ModbusSimulator([SimulatedMeter(1, load_profile("eastron-sdm120")),
                         SimulatedMeter(2, load_profile("isma-sfar-4di"))],
                        transport="rtu") as pontoon,
    ):
        gateway = Gateway(load_config(gateway_toml(tmp_path, lan.endpoint, pontoon.device_path)))
        stop = asyncio.Event()
        task = asyncio.create_task(gateway.run(stop))
        async with asyncio.timeout(20):
            while failures["left"] or gateway.buffer.readings:
                await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 10)
        polls = {d.name: d.health.polls - d.health.failed_polls
                 for bus in gateway.buses for d in bus.devices}
    readings, _ = drain(tmp_path / "data" / OUTBOX_FILE)
    assert sum(1 for r in readings if r.device == "feeder") == polls["feeder"] * 80
    assert sum(1 for r in readings if r.device == "water") == polls["water"] * 4
