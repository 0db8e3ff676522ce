"""The action executor against a simulated relay board over Modbus TCP and a stand-in for
the LoRa source (built elsewhere; only its ``send_downlink`` signature matters here):
failures are counted, reported once, retried with backoff, given up for pulses and
downlinks, and a latch that a newer command replaced stops being retried."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from edge_agent.drivers.modbus.relay import RelayBoard
from edge_agent.errors import HubUnreachable
from edge_agent.records import Event
from edge_agent.rules.executor import ActionExecutor, SendDownlink
from edge_agent.rules.intents import Downlink, RelayPulse, RelaySet
from simulators.modbus import Fault, ModbusSimulator, SimulatedRelayBoard
from tests.test_relay_board import link_to, relay_board, wait_until

pytestmark = pytest.mark.usefixtures("no_leaks")


@contextlib.asynccontextmanager
async def executing(boards: dict[str, RelayBoard], events: list[Event],
                    send_downlink: SendDownlink | None = None) -> AsyncIterator[ActionExecutor]:
    executor = ActionExecutor(boards, send_downlink, events.append, first_delay_s=0.05,
                              max_delay_s=0.1)
    task = asyncio.create_task(executor.run(dict, []))
    try:
        yield executor
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
async def served() -> AsyncIterator[tuple[SimulatedRelayBoard, RelayBoard]]:
    sim_board = SimulatedRelayBoard(1)
    async with ModbusSimulator([sim_board]) as sim, relay_board(
            link_to(sim, timeout_s=0.1)) as board:
        yield sim_board, board


async def test_a_downlink_without_a_lora_source_is_counted_not_retried() -> None:
    events: list[Event] = []
    async with executing({}, events) as executor:
        executor.submit([Downlink("siren", "siren-1", 10, b"\x01", True)])
        await wait_until(lambda: executor.stats.no_lora_source == 1)
        await asyncio.sleep(0.1)
    assert executor.stats.failures == 0
    assert events == []


async def test_a_failing_downlink_is_retried_until_the_source_takes_it() -> None:
    sent: list[tuple[str, int, bytes, bool]] = []

    async def send_downlink(device: str, fport: int, data: bytes, confirmed: bool) -> None:
        if len(sent) < 2:
            sent.append(("refused", fport, data, confirmed))
            raise HubUnreachable("broker unreachable")  # any EdgeError of the LoRa source
        sent.append((device, fport, data, confirmed))

    events: list[Event] = []
    async with executing({}, events, send_downlink) as executor:
        executor.submit([Downlink("siren", "siren-1", 10, b"\x01\xff", True)])
        await wait_until(lambda: executor.stats.performed == 1)
    assert sent[-1] == ("siren-1", 10, b"\x01\xff", True)
    assert (executor.stats.failures, executor.stats.retries) == (2, 2)
    (failed,) = events  # reported once, not at every try
    assert (failed.kind, failed.device) == ("alarm.action_failed", "siren-1")
    assert failed.attrs == {"rule": "siren", "action": "downlink siren-1 fport 10 01ff confirmed",
                            "error": "broker unreachable"}


async def test_a_downlink_source_s_bug_is_logged_and_never_escapes() -> None:
    async def broken(device: str, fport: int, data: bytes, confirmed: bool) -> None:
        raise KeyError(device)

    events: list[Event] = []
    async with executing({}, events, broken) as executor:
        executor.submit([Downlink("siren", "siren-1", 10, b"\x01", False)])
        await wait_until(lambda: executor.stats.gave_up == 1)
    assert executor.stats.failures == 6
    assert "KeyError" in events[0].attrs["error"]


async def test_a_pulse_on_a_dead_board_gives_up_after_its_tries(
        served: tuple[SimulatedRelayBoard, RelayBoard]) -> None:
    sim_board, board = served
    sim_board.set_fault(Fault.no_reply())
    events: list[Event] = []
    async with executing({"relays": board}, events) as executor:
        executor.submit([RelayPulse("gate", "relays", 2, 700)])
        await wait_until(lambda: executor.stats.gave_up == 1, within_s=10)
    assert executor.stats.failures == 6
    assert [event.kind for event in events] == ["alarm.action_failed"]
    assert not sim_board.pulses()


async def test_a_latch_replaced_by_a_newer_command_stops_being_retried(
        served: tuple[SimulatedRelayBoard, RelayBoard]) -> None:
    sim_board, board = served
    sim_board.set_fault(Fault.no_reply())
    events: list[Event] = []
    async with executing({"relays": board}, events) as executor:
        executor.submit([RelaySet("flood", "relays", 3, True)])
        await wait_until(lambda: executor.stats.failures >= 2, within_s=5)
        executor.submit([RelaySet("flood", "relays", 3, False)])
        sim_board.clear_fault()
        await wait_until(lambda: executor.stats.performed == 1 and executor.stats.superseded == 1,
                         within_s=5)
    assert not sim_board.relay(3)
    assert [c.action for c in sim_board.commands] == ["off"]


async def test_a_channel_the_board_does_not_have_is_given_up_at_once(
        served: tuple[SimulatedRelayBoard, RelayBoard]) -> None:
    _, board = served
    events: list[Event] = []
    async with executing({"relays": board}, events) as executor:
        executor.submit([RelaySet("flood", "relays", 12, True), RelaySet("x", "nowhere", 1, True)])
        await wait_until(lambda: executor.stats.gave_up == 1 and executor.stats.failures >= 2)
    assert "channel must be 1..8" in events[0].attrs["error"]
    assert "not a relay board of this gateway" in events[1].attrs["error"]


async def test_nothing_is_commanded_once_the_gateway_is_stopping(
        served: tuple[SimulatedRelayBoard, RelayBoard]) -> None:
    sim_board, board = served
    events: list[Event] = []
    async with executing({"relays": board}, events) as executor:
        await wait_until(executor.started.is_set)
    assert executor.closed
    executor.submit([RelaySet("flood", "relays", 3, True)])
    await asyncio.sleep(0.1)
    assert sim_board.commands == []
    assert executor.report()["in_flight"] == 0
