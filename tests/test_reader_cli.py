"""``edge-agent reader listen`` as an installer runs it, against simulated readers on ptys;
reader profiles in ``edge-agent profiles``."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator

import pytest

from simulators.readers import CardReaderSimulator, Pn532Simulator
from tests.test_cli import edge_agent

CARD = bytes.fromhex("62E3086CED")
OTHER = bytes.fromhex("010012D687")


class Listening:
    """``edge-agent reader listen ...`` running, with its stderr up to the listening line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def ready(self) -> None:
        """Wait until the command has the port open."""
        assert self.process.stderr is not None
        line = await asyncio.wait_for(self.process.stderr.readline(), 20)
        assert b"listening on" in line, line

    async def finish(self) -> tuple[int, str, str]:
        out, err = await asyncio.wait_for(self.process.communicate(), 20)
        assert self.process.returncode is not None
        return self.process.returncode, out.decode(), err.decode()


@pytest.fixture
async def rdm6300() -> AsyncIterator[CardReaderSimulator]:
    simulator = CardReaderSimulator("rdm6300", repeat_interval_s=0.05)
    simulator.open()
    yield simulator
    simulator.close()


async def _listen(*args: str) -> Listening:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edge_agent", "reader", "listen", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200"})
    return Listening(process)


async def test_listen_prints_every_form_of_each_badge_then_the_counters(
    rdm6300: CardReaderSimulator,
) -> None:
    listening = await _listen("--profile", "rdm6300", "--serial", rdm6300.path,
                              "--count", "2", "--timeout", "20")
    await listening.ready()
    rdm6300.send(b"\xff\xfe")
    rdm6300.send_bad_checksum(CARD)
    await rdm6300.present(CARD, repeats=3)
    await rdm6300.present(OTHER)
    status, out, err = await listening.finish()
    assert status == 0, err
    first, second, counters = out.splitlines()
    assert first == ("62E3086CED  em4100  hex 62E3086CED  8H10D 3808980205  6H8D 00552173  "
                     "3+5 008,27885  dec 424715775213")
    assert second.startswith("010012D687  em4100  hex 010012D687  8H10D 0001234567")
    assert counters == ("frames 4, badges 2, duplicates 2, garbage bytes 2, bad checksums 1, "
                        "partial frames 0, timeouts 0, port errors 0")


async def test_listen_reads_a_pn532_card() -> None:
    simulator = Pn532Simulator()
    simulator.open()
    try:
        listening = await _listen("--profile", "pn532-uart", "--port", simulator.path,
                                  "--count", "1", "--timeout", "20")
        await listening.ready()
        simulator.card = bytes.fromhex("DEADBEEF")
        status, out, err = await listening.finish()
    finally:
        simulator.close()
    assert status == 0, err
    assert out.splitlines()[0].startswith("DEADBEEF  iso14443a  hex DEADBEEF  8H10D 3735928559")


async def test_listen_without_the_badges_asked_for_exits_1(rdm6300: CardReaderSimulator) -> None:
    listening = await _listen("--profile", "rdm6300", "--serial", rdm6300.path,
                              "--count", "1", "--timeout", "0.3")
    await listening.ready()
    rdm6300.send_partial(CARD)
    status, out, _ = await listening.finish()
    assert status == 1
    assert out.splitlines() == ["frames 0, badges 0, duplicates 0, garbage bytes 0, "
                                "bad checksums 0, partial frames 1, timeouts 0, port errors 0"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--profile", "rdm630", "--serial", "/dev/ttyS0"),
         "no badge reader profile 'rdm630'"),
        (("--profile", "rdm630", "--serial", "/dev/ttyS0"), "did you mean 'rdm6300'?"),
        (("--profile", "eastron-sdm120", "--serial", "/dev/ttyS0"),
         "'eastron-sdm120' is not a badge reader profile"),
        (("--profile", "em18", "--serial", "/dev/ttyNOPE7"),
         "em18: /dev/ttyNOPE7 does not exist: is the reader plugged in?"),
    ],
)
def test_listen_errors_are_one_line_and_exit_2(args: tuple[str, ...], message: str) -> None:
    result = edge_agent("reader", "listen", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_profiles_list_and_show_include_reader_profiles() -> None:
    listed = edge_agent("profiles", "list")
    assert listed.returncode == 0, listed.stderr
    for profile_id in ("rdm6300", "em18", "pn532-uart", "usb-keyboard-wedge"):
        assert profile_id in listed.stdout
    shown = edge_agent("profiles", "show", "pn532-uart")
    assert shown.returncode == 0, shown.stderr
    assert "serial: 115200 baud 8N1" in shown.stdout
    assert "'protocol': 'pn532'" in shown.stdout


def test_a_reader_profile_is_not_a_modbus_device() -> None:
    result = edge_agent("devices", "read", "--profile", "rdm6300", "--unit", "1",
                        "--serial", "/dev/ttyS0")
    assert result.returncode == 2
    assert "'rdm6300' is a badge reader, not a Modbus device" in result.stderr
