"""Rules in a running gateway: a Modbus reading crosses a threshold, the alarm goes to the
outbox's alarms stream and a simulated relay board (Modbus TCP) latches and pulses; the
alarm and its latch survive a restart, a damaged state file does not stop the gateway, and
a dead relay board is retried until the latch holds. No hub: everything works offline."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from edge_agent.config import load_config
from edge_agent.profiles import load_profile
from edge_agent.records import Event
from edge_agent.rules.state import STATE_FILE
from edge_agent.runtime import OUTBOX_FILE, STATUS_FILE, Gateway
from edge_agent.status import gateway_report, report_view
from edge_agent.store import Outbox
from simulators.modbus import Fault, ModbusSimulator, SimulatedMeter
from simulators.modbus.relay_board import SimulatedRelayBoard
from tests.test_relay_board import wait_until

pytestmark = pytest.mark.usefixtures("no_leaks")

RULES = """
[[rules]]
name = "overvoltage"
device = "berth-meter"
quantity = "voltage"
kind = "above"
threshold = 250
clear_at = 245
severity = "critical"
on_raise = [{type = "latch", board = "relays", channel = 3},
            {type = "pulse", board = "relays", channel = 4, ms = 500}]
on_clear = [{type = "pulse", board = "relays", channel = 5, ms = 300}]
"""


def write_config(root: Path, endpoint: str, rules: str = RULES) -> Path:
    path = root / "gateway.toml"
    path.write_text(f"""
[gateway]
id = "rules-gw"
data_dir = "data"

[[buses]]
name = "field"
tcp = "{endpoint}"
timeout_ms = 200

[[devices]]
name = "relays"
bus = "field"
profile = "waveshare-relay-8ch"
unit = 1
interval_s = 5

[[devices]]
name = "berth-meter"
bus = "field"
profile = "eastron-sdm120"
unit = 2
interval_s = 0.1
quantities = ["voltage"]
{rules}""", encoding="utf-8")
    return path


@contextlib.asynccontextmanager
async def running(config: Path) -> AsyncIterator[Gateway]:
    gateway = Gateway(load_config(config))
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop))
    try:
        yield gateway
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


def alarms(data_dir: Path) -> list[Event]:
    with Outbox.open(data_dir / OUTBOX_FILE) as outbox:
        batch = outbox.next_batch(stream="alarms", limit=10_000)
    return [record for _, record in batch.records if isinstance(record, Event)] if batch else []


def status(data_dir: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads((data_dir / STATUS_FILE).read_text(encoding="utf-8"))
    return report


async def test_a_threshold_crossed_latches_and_pulses_and_survives_a_restart(tmp_path: Path
                                                                            ) -> None:
    board = SimulatedRelayBoard(1)
    meter = SimulatedMeter(2, load_profile("eastron-sdm120"), seed=1, update_interval=0)
    meter.set_value("voltage", 230)
    data_dir = tmp_path / "data"
    async with ModbusSimulator([board, meter]) as field:
        config = write_config(tmp_path, field.endpoint)
        async with running(config):
            await asyncio.sleep(0.5)
            assert not board.relay(3)
            meter.set_value("voltage", 262)
            await wait_until(lambda: board.relay(3) and bool(board.pulses(4)))
            assert [(p.channel, p.pulse_ms) for p in board.pulses()] == [(4, 500)]
            await wait_until((data_dir / STATE_FILE).exists)
        (raised,) = alarms(data_dir)
        assert (raised.kind, raised.device) == ("alarm.raised", "berth-meter")
        assert raised.attrs == {"rule": "overvoltage", "kind": "above", "severity": "critical",
                                "quantity": "voltage", "value": pytest.approx(262, abs=0.1),
                                "threshold": 250, "clear_at": 245, "for_s": 0}
        assert stat.S_IMODE(os.stat(data_dir / STATE_FILE).st_mode) == 0o600
        saved = json.loads((data_dir / STATE_FILE).read_text(encoding="utf-8"))
        assert saved["latches"] == [{"board": "relays", "channel": 3, "on": True}]

        # A power cut: the board loses its relays. The gateway starts again, switches the
        # board off (the safe state), then closes the latch again: no new alarm, no pulse.
        board.set_value("relay_state_3", False)
        start = len(board.commands)
        async with running(config) as gateway:
            await wait_until(lambda: board.relay(3))
            after = [(c.channel, c.action) for c in board.commands[start:]]
            assert after[:2] == [(0, "off"), (3, "on")]
            report = gateway.rules.report()
            assert report["rules"][0]["state"] == "raised"
            assert report["latches"] == [{"board": "relays", "channel": 3, "on": True}]
            # Back to normal: the latch is released and the clear pulse goes out.
            meter.set_value("voltage", 240)
            await wait_until(lambda: not board.relay(3) and bool(board.pulses(5)))
            await wait_until(lambda: status(data_dir)["rules"]["rules"][0]["state"] == "ok")
        assert len(board.pulses(4)) == 1
        kinds = [(event.kind, event.attrs.get("reason")) for event in alarms(data_dir)]
        assert kinds == [("alarm.raised", None), ("alarm.cleared", "recovered")]
        rules_status = status(data_dir)["rules"]
        assert rules_status["actions"]["performed"] >= 3
        assert rules_status["rules"][0]["raises"] == 1
        assert rules_status["rules"][0]["clears"] == 1


async def test_a_damaged_state_file_is_set_aside_and_the_gateway_runs(tmp_path: Path) -> None:
    board = SimulatedRelayBoard(1)
    meter = SimulatedMeter(2, load_profile("eastron-sdm120"), seed=1, update_interval=0)
    meter.set_value("voltage", 230)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / STATE_FILE).write_text('{"version": 1, "rules": {"overvoltage": [', "utf-8")
    async with ModbusSimulator([board, meter]) as field, running(
            write_config(tmp_path, field.endpoint)):
        await wait_until(lambda: (data_dir / STATUS_FILE).exists()
                         and bool(status(data_dir)["rules"]["rules"]))
        meter.set_value("voltage", 255)
        await wait_until(lambda: board.relay(3))
    assert (data_dir / (STATE_FILE + ".damaged")).exists()
    saved = json.loads((data_dir / STATE_FILE).read_text(encoding="utf-8"))
    assert saved["rules"]["overvoltage"]["raised"] is True
    # `edge-agent status` shows the raised alarm and the latch it holds.
    console = Console(record=True, width=120)
    console.print(report_view(gateway_report(data_dir)))
    shown = console.export_text()
    assert "overvoltage" in shown
    assert "raised" in shown
    assert "latches held: relays/3 on" in shown


async def test_a_silent_device_raises_on_the_gateway_s_own_clock(tmp_path: Path) -> None:
    board = SimulatedRelayBoard(1)
    meter = SimulatedMeter(2, load_profile("eastron-sdm120"), seed=1, update_interval=0)
    data_dir = tmp_path / "data"
    silence = """
[[rules]]
name = "meter-silent"
device = "berth-meter"
kind = "stale"
after_s = 1
on_raise = [{type = "latch", board = "relays", channel = 8}]
"""
    async with ModbusSimulator([board, meter]) as field, running(
            write_config(tmp_path, field.endpoint, silence)) as gateway:
        await asyncio.sleep(1.5)
        assert gateway.rules.report()["rules"][0]["state"] == "ok"
        meter.set_fault(Fault.no_reply())
        await wait_until(lambda: board.relay(8), within_s=5)
        meter.clear_fault()
        await wait_until(lambda: not board.relay(8), within_s=5)
    raised, cleared = alarms(data_dir)
    assert (raised.kind, raised.attrs["quantity"], raised.attrs["threshold"]) == (
        "alarm.raised", None, 1)
    assert raised.attrs["silence_s"] >= 1
    assert cleared.attrs["silence_s"] >= raised.attrs["silence_s"]


async def test_a_dead_relay_board_is_reported_and_retried_until_the_latch_holds(
        tmp_path: Path) -> None:
    board = SimulatedRelayBoard(1)
    meter = SimulatedMeter(2, load_profile("eastron-sdm120"), seed=1, update_interval=0)
    meter.set_value("voltage", 230)
    data_dir = tmp_path / "data"
    async with ModbusSimulator([board, meter]) as field:
        async with running(write_config(tmp_path, field.endpoint)) as gateway:
            await asyncio.sleep(0.3)
            board.set_fault(Fault.no_reply())
            meter.set_value("voltage", 258)
            await wait_until(lambda: gateway.rules.executor.stats.failures >= 2)
            assert not board.relay(3)
            board.clear_fault()
            await wait_until(lambda: board.relay(3), within_s=15)
            stats = gateway.rules.executor.stats
            assert stats.retries >= 2
        failed = [event for event in alarms(data_dir) if event.kind == "alarm.action_failed"]
        assert {event.attrs["action"] for event in failed} >= {"set relays/3 on"}
        assert all(event.device == "relays" for event in failed)


async def test_a_relay_board_that_restarted_gets_its_latch_back(tmp_path: Path) -> None:
    board = SimulatedRelayBoard(1)
    meter = SimulatedMeter(2, load_profile("eastron-sdm120"), seed=1, update_interval=0)
    meter.set_value("voltage", 255)
    async with ModbusSimulator([board, meter]) as field, running(
            write_config(tmp_path, field.endpoint)) as gateway:
        gateway.rules.reassert_s = 0.5
        await wait_until(lambda: board.relay(3))
        board.set_value("relay_state_3", False)  # the board lost power: every relay off
        await wait_until(lambda: board.relay(3), within_s=5)
        assert gateway.rules.executor.stats.reasserted >= 1
        assert len(board.pulses(4)) == 1  # pulses are never repeated
