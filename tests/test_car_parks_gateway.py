"""Car parks in a running gateway: a simulated SFAR-4DI (Modbus TCP) counts entries and exits,
a loop detector on a relay board's input counts too, the "COMPLET" sign is a relay latched
on that board while full and lit again after a restart, occupancy survives the restart (with
the pulses counted while the gateway was down), changes are coalesced on a virtual clock, and
a damaged state file never stops the gateway."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from rich.console import Console

from edge_agent.config import load_config
from edge_agent.parking.model import CarPark
from edge_agent.parking.state import STATE_FILE
from edge_agent.profiles import load_profile
from edge_agent.records import Event, Reading, now_ms
from edge_agent.runtime import Gateway
from edge_agent.status import gateway_report, report_view
from simulators.modbus import LoopDetector, ModbusSimulator, SimulatedMeter
from simulators.modbus.relay_board import SimulatedRelayBoard
from tests.test_lora_gateway import stored
from tests.test_relay_board import wait_until

pytestmark = pytest.mark.usefixtures("no_leaks")

PARK = """
[[car_parks]]
name = "P-gare"
capacity = 5
full_at = 5
available_below = 4
entries = [{device = "sfar", quantity = "pulse_count_1"},
           {device = "relays", quantity = "input_state_1"}]
exits = [{device = "sfar", quantity = "pulse_count_2"}]
sign = {board = "relays", channel = 2}
"""


def write_config(root: Path, endpoint: str, parks: str = PARK) -> Path:
    path = root / "gateway.toml"
    path.write_text(f"""
[gateway]
id = "parking-gw"
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
interval_s = 0.05
quantities = ["input_state_1"]

[[devices]]
name = "sfar"
bus = "field"
profile = "isma-sfar-4di"
unit = 2
interval_s = 0.1
quantities = ["pulse_count_1", "pulse_count_2"]
{parks}""", encoding="utf-8")
    return path


class VirtualClock:
    """The car parks' wall clock, moved by the test."""

    def __init__(self) -> None:
        self.ms = now_ms()

    def __call__(self) -> int:
        return self.ms


@contextlib.asynccontextmanager
async def running(config: Path, clock: VirtualClock) -> AsyncIterator[Gateway]:
    gateway = Gateway(load_config(config))
    gateway.car_parks.clock = clock
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop))
    try:
        await wait_until(lambda: bool(gateway.car_parks.parks))
        yield gateway
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


def sfar() -> SimulatedMeter:
    """A pulse counter that counts only what the test sets (no refresh of its own)."""
    meter = SimulatedMeter(2, load_profile("isma-sfar-4di"), update_interval=1e9)
    meter.set_value("pulse_count_1", 1000)
    meter.set_value("pulse_count_2", 800)
    return meter


def park_of(gateway: Gateway) -> CarPark:
    (park,) = gateway.car_parks.parks
    return park


async def counted(park: CarPark, entries: int) -> None:
    await wait_until(lambda: park.state.entries == entries)


def occupancy(readings: list[Reading]) -> list[float]:
    return [r.value for r in readings if r.quantity == "parking_occupancy"]


def park_events(events: list[Event]) -> list[tuple[str, int]]:
    return [(e.kind, e.attrs["occupancy"]) for e in events if e.device == "P-gare"]


async def test_counting_the_sign_and_a_restart(tmp_path: Path) -> None:
    board, meter, clock = SimulatedRelayBoard(1), sfar(), VirtualClock()
    data_dir = tmp_path / "data"
    async with ModbusSimulator([board, meter]) as field:
        config = write_config(tmp_path, field.endpoint)
        loop = LoopDetector(board, 1)
        async with running(config, clock) as gateway:
            park = park_of(gateway)
            await wait_until(lambda: len(park.state.lanes) == 3)  # every lane has a baseline
            clock.ms += 20_000
            meter.set_value("pulse_count_1", 1003)
            await wait_until(lambda: park.state.occupancy == 3)
            clock.ms += 20_000
            loop.arrive()  # a car on the loop of the second entry lane
            await wait_until(lambda: park.state.entries == 4)
            loop.leave()
            await asyncio.sleep(0.2)
            assert not board.relay(2)
            clock.ms += 20_000
            meter.set_value("pulse_count_1", 1004)
            await wait_until(lambda: board.relay(2))  # full: the sign is on
            await wait_until(lambda: json.loads((data_dir / STATE_FILE).read_text(
                encoding="utf-8"))["car_parks"]["P-gare"]["full"])
        assert stat.S_IMODE(os.stat(data_dir / STATE_FILE).st_mode) == 0o600
        readings, events = stored(data_dir)
        assert occupancy(readings) == [0, 3, 4, 5]
        assert [r.value for r in readings if r.quantity == "parking_capacity"] == [5]
        assert park_events(events) == [("car_park.full", 5)]

        # A power cut: the board comes back with every relay off; two cars leave meanwhile,
        # counted by the SFAR on its own. The gateway lights the sign again at start, then
        # counts the two exits at its first reading.
        board.set_value("relay_state_2", False)
        start = len(board.commands)
        async with running(config, clock) as gateway:
            park = park_of(gateway)
            assert park.state.occupancy == 5
            await wait_until(lambda: board.relay(2))
            after = [(c.channel, c.action) for c in board.commands[start:]]
            assert after[:2] == [(0, "off"), (2, "on")]
            await asyncio.sleep(0.3)
            clock.ms += 20_000
            meter.set_value("pulse_count_2", 802)
            await wait_until(lambda: not board.relay(2))  # available: the sign goes off
            assert gateway.car_parks.report()[0] | {"next_reset_ms": None} == {
                "name": "P-gare", "occupancy": 3, "capacity": 5, "free": 2, "full": False,
                "entries": 5, "exits": 2, "clamps": 0, "resets": 0, "counter_resets": 0,
                "spots": 0, "spots_known": 0, "spots_occupied": 0, "from_spots": False,
                "next_reset_ms": None}
            await wait_until(lambda: gateway_report(data_dir)["car_parks"][0]["occupancy"] == 3,
                             within_s=5)
            console = Console(record=True, width=80)
            console.print(report_view(gateway_report(data_dir)))
            shown = console.export_text()
    readings, events = stored(data_dir)
    assert occupancy(readings) == [5, 3]  # the first run's were read and acknowledged
    assert park_events(events) == [("car_park.available", 3)]
    assert "P-gare" in shown
    assert "3/5" in shown
    assert max(map(len, shown.splitlines())) <= 80


async def test_changes_are_coalesced_on_the_clock_and_the_last_one_goes_out_at_stop(
        tmp_path: Path) -> None:
    board, meter, clock = SimulatedRelayBoard(1), sfar(), VirtualClock()
    async with ModbusSimulator([board, meter]) as field, running(
            write_config(tmp_path, field.endpoint), clock) as gateway:
        park = park_of(gateway)
        await wait_until(lambda: len(park.state.lanes) == 3)
        clock.ms += 20_000
        for cars in (1, 2, 3):  # three cars within the same 10 s window
            meter.set_value("pulse_count_1", 1000 + cars)
            await counted(park, cars)
            clock.ms += 1000
        buffered = [r.value for r in gateway.buffer.readings if r.quantity ==
                    "parking_occupancy"]
        clock.ms += 10_000  # the window closes: the tick task sends the held value
        await wait_until(lambda: not park.holding)
        meter.set_value("pulse_count_1", 1004)
        await wait_until(lambda: park.state.entries == 4)
    readings, _ = stored(tmp_path / "data")
    assert buffered[-1] == 1  # 2 was held, then replaced by 3
    assert occupancy(readings) == [0, 1, 3, 4]  # 4 was held in its window: sent at stop


async def test_a_damaged_state_file_a_counter_reset_and_a_clamp(tmp_path: Path) -> None:
    board, meter, clock = SimulatedRelayBoard(1), sfar(), VirtualClock()
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / STATE_FILE).write_text('{"version": 1, "car_parks": {"P-gare": ', "utf-8")
    async with ModbusSimulator([board, meter]) as field, running(
            write_config(tmp_path, field.endpoint), clock) as gateway:
        park = park_of(gateway)
        await wait_until(lambda: len(park.state.lanes) == 3)
        meter.set_value("pulse_count_1", 1002)
        await wait_until(lambda: park.state.occupancy == 2)
        meter.set_value("pulse_count_1", 1)  # the SFAR lost power and counted one since
        await wait_until(lambda: park.state.counter_resets == 1)
        assert park.state.occupancy == 3
        meter.set_value("pulse_count_2", 805)
        await wait_until(lambda: park.state.exits == 5)
    assert park.state.occupancy == 0
    assert park.state.clamps == 1  # five out of three: two entries were missed
    assert (data_dir / (STATE_FILE + ".damaged")).exists()
    saved = json.loads((data_dir / STATE_FILE).read_text(encoding="utf-8"))
    assert saved["car_parks"]["P-gare"]["occupancy"] == 0
    assert saved["car_parks"]["P-gare"]["lanes"]["sfar/pulse_count_1"] == 1


async def test_a_rule_watches_a_car_park_like_any_device(tmp_path: Path) -> None:
    board, meter, clock = SimulatedRelayBoard(1), sfar(), VirtualClock()
    rule = """
[[rules]]
name = "p-gare-nearly-full"
device = "P-gare"
quantity = "parking_occupancy"
kind = "above"
threshold = 3
on_raise = [{type = "latch", board = "relays", channel = 5}]
"""
    async with ModbusSimulator([board, meter]) as field, running(
            write_config(tmp_path, field.endpoint, PARK + rule), clock) as gateway:
        park = park_of(gateway)
        await wait_until(lambda: len(park.state.lanes) == 3)
        clock.ms += 20_000
        meter.set_value("pulse_count_1", 1004)
        await wait_until(lambda: board.relay(5))
        assert not board.relay(2)  # 4 of 5: not full, the sign stays off
    _, events = stored(tmp_path / "data")
    (raised,) = [e for e in events if e.kind == "alarm.raised"]
    assert (raised.device, raised.attrs["value"]) == ("P-gare", 4)
