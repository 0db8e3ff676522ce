"""Badge readers over real ptys, against the simulated readers: presentations, duplicates,
noise, ports that vanish and come back, and a PN532 that says nothing or garbles."""

from __future__ import annotations

import asyncio
import os
import struct
import sys
import time
import types
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, ClassVar

import msgspec
import pytest

from edge_agent.drivers.readers import BadgePresented, BadgeReader, ReaderSettings, open_reader
from edge_agent.errors import ConfigError, ProfileError, TransportError
from edge_agent.profiles import (
    ReaderProfile,
    available_profiles,
    available_reader_profiles,
    load_reader_profile,
    load_reader_profile_file,
)
from edge_agent.records import now_ms
from simulators.readers import CardReaderSimulator, Pn532Simulator, StreamProtocol

pytestmark = pytest.mark.usefixtures("no_leaks")

CARD = bytes.fromhex("62E3086CED")
OTHER = bytes.fromhex("010012D687")
UID = bytes.fromhex("DEADBEEF")
PROFILES: dict[StreamProtocol, str] = {"rdm6300": "rdm6300", "em18": "em18"}


def _fast_pn532() -> ReaderProfile:
    profile = load_reader_profile("pn532-uart")
    spec = msgspec.structs.replace(profile.reader, poll_interval_ms=20, response_timeout_ms=40)
    return msgspec.structs.replace(profile, reader=spec)


async def _until(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    """Wait for ``condition``, polling the loop; fails the test after ``timeout``."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


class Running:
    """A reader running in a task, with the badges it handed over."""

    def __init__(self, reader: BadgeReader) -> None:
        self.reader = reader
        self.badges: list[BadgePresented] = []
        self.task = asyncio.create_task(reader.run(self.badges.append))

    async def stop(self) -> None:
        self.reader.stop()
        await asyncio.wait_for(self.task, 2)


@pytest.fixture
async def running() -> AsyncIterator[Callable[[ReaderSettings], Running]]:
    started: list[Running] = []

    def start(settings: ReaderSettings) -> Running:
        started.append(Running(open_reader(settings)))
        return started[-1]

    yield start
    for run in started:
        await run.stop()


@pytest.fixture(params=["rdm6300", "em18"])
async def line(request: pytest.FixtureRequest) -> AsyncIterator[CardReaderSimulator]:
    simulator = CardReaderSimulator(request.param, repeat_interval_s=0.03)
    simulator.open()
    yield simulator
    simulator.close()


def _settings(simulator: CardReaderSimulator, window: float = 1.5) -> ReaderSettings:
    return ReaderSettings("gate-a", load_reader_profile(PROFILES[simulator.protocol]),
                          simulator.path, duplicate_window_s=window)


async def test_card_held_in_the_field_is_one_presentation(
    line: CardReaderSimulator, running: Callable[[ReaderSettings], Running]
) -> None:
    run = running(_settings(line))
    await _until(lambda: run.reader.health.online)
    before_ms, before_ns = now_ms(), time.monotonic_ns()
    await line.present(CARD, repeats=4)
    await _until(lambda: run.reader.health.frames == 4)
    (badge,) = run.badges
    assert (badge.reader, badge.raw, badge.technology) == ("gate-a", CARD, "em4100")
    assert before_ms <= badge.ts_ms <= now_ms()
    assert before_ns <= badge.received_ns <= time.monotonic_ns()
    health = run.reader.health
    assert (health.badges, health.duplicates) == (1, 3)
    assert health.as_dict()["duplicates"] == 3


async def test_window_restarts_while_frames_keep_coming_then_expires(
    line: CardReaderSimulator, running: Callable[[ReaderSettings], Running]
) -> None:
    run = running(_settings(line, window=0.1))
    await _until(lambda: run.reader.health.online)
    await line.present(CARD, repeats=8)  # 0.21 s of frames 30 ms apart: longer than the window
    await _until(lambda: run.reader.health.frames == 8)
    assert len(run.badges) == 1
    await asyncio.sleep(0.15)
    await line.present(CARD)
    await line.present(OTHER)
    await _until(lambda: len(run.badges) == 3)
    assert [badge.raw for badge in run.badges] == [CARD, CARD, OTHER]


async def test_noise_bad_checksums_and_cut_frames_are_counted_never_presented(
    line: CardReaderSimulator, running: Callable[[ReaderSettings], Running]
) -> None:
    run = running(_settings(line))
    health = run.reader.health
    await _until(lambda: health.online)
    line.send(b"\xff\x00\x13\r\n")
    await _until(lambda: health.garbage_bytes >= 5)
    line.send_bad_checksum(CARD)
    await _until(lambda: health.bad_checksums == 1)
    await asyncio.sleep(0.15)  # the rest of a bad EM-18 frame is dropped after the silence
    line.send_partial(CARD)
    await _until(lambda: health.partial_frames == 1)
    assert run.badges == []
    await line.present(CARD)
    await _until(lambda: len(run.badges) == 1)
    assert (health.bad_checksums, health.partial_frames) == (1, 1)


async def test_a_vanished_port_is_reopened_when_it_comes_back(
    tmp_path: Path, running: Callable[[ReaderSettings], Running]
) -> None:
    first = CardReaderSimulator("rdm6300")
    first.open()
    link = tmp_path / "ttyUSB-reader"  # as /dev/serial/by-id/ names follow a replugged adapter
    link.symlink_to(first.path)
    run = running(ReaderSettings("gate-a", load_reader_profile("rdm6300"), str(link)))
    health = run.reader.health
    await _until(lambda: health.online)
    await first.present(CARD)
    await _until(lambda: len(run.badges) == 1)

    first.close()
    link.unlink()
    await _until(lambda: not health.online)
    await _until(lambda: health.port_errors >= 2)  # lost, then not there on the first retry
    assert "does not exist" in health.last_error

    second = CardReaderSimulator("rdm6300")
    second.open()
    try:
        link.symlink_to(second.path)
        await _until(lambda: health.online)
        await second.present(OTHER)
        await _until(lambda: len(run.badges) == 2)
        assert run.badges[1].raw == OTHER
    finally:
        await run.stop()
        second.close()


async def test_a_failing_callback_does_not_stop_the_reader(line: CardReaderSimulator) -> None:
    reader = open_reader(_settings(line, window=0))
    seen: list[bytes] = []

    def on_badge(badge: BadgePresented) -> None:
        seen.append(badge.raw)
        raise RuntimeError("consumer bug")

    task = asyncio.create_task(reader.run(on_badge))
    await _until(lambda: reader.health.online)
    await line.present(CARD, repeats=2)
    await _until(lambda: len(seen) == 2)
    reader.stop()
    await task


async def test_cancelling_run_closes_the_port(line: CardReaderSimulator) -> None:
    reader = open_reader(_settings(line))
    task = asyncio.create_task(reader.run(lambda badge: None))
    await _until(lambda: reader.health.online)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not reader.health.online


def test_check_explains_a_missing_port() -> None:
    reader = open_reader(ReaderSettings("gate-a", load_reader_profile("em18"), "/dev/ttyNOPE9"))
    with pytest.raises(TransportError, match=r"/dev/ttyNOPE9 does not exist: is the reader"):
        reader.check()


async def test_check_explains_a_busy_port(line: CardReaderSimulator,
                                          running: Callable[[ReaderSettings], Running]) -> None:
    run = running(_settings(line))
    await _until(lambda: run.reader.health.online)
    with pytest.raises(TransportError, match="in use by another program"):
        open_reader(_settings(line)).check()


# --- PN532 ----------------------------------------------------------------------------------


@pytest.fixture
async def pn532() -> AsyncIterator[Pn532Simulator]:
    simulator = Pn532Simulator()
    simulator.open()
    yield simulator
    simulator.close()


def _pn532_settings(simulator: Pn532Simulator) -> ReaderSettings:
    return ReaderSettings("pedestal-3", _fast_pn532(), simulator.path)


async def test_pn532_is_woken_configured_then_polled(
    pn532: Pn532Simulator, running: Callable[[ReaderSettings], Running]
) -> None:
    run = running(_pn532_settings(pn532))
    await _until(lambda: pn532.commands.count(0x4A) >= 3)
    assert pn532.commands[:2] == [0x14, 0x32]
    assert run.badges == []  # no card in the field
    assert run.reader.health.timeouts == 0

    pn532.card = UID
    await _until(lambda: run.reader.health.duplicates >= 2)  # held: read at every poll
    pn532.card = None
    (badge,) = run.badges
    assert (badge.reader, badge.raw, badge.technology) == ("pedestal-3", UID, "iso14443a")


async def test_pn532_garbled_answers_are_counted_and_polling_goes_on(
    pn532: Pn532Simulator, running: Callable[[ReaderSettings], Running]
) -> None:
    run = running(_pn532_settings(pn532))
    health = run.reader.health
    await _until(lambda: 0x4A in pn532.commands)
    pn532.card = bytes.fromhex("04112233445566")
    pn532.garble = 2
    await _until(lambda: len(run.badges) == 1)
    assert run.badges[0].raw == bytes.fromhex("04112233445566")
    assert health.bad_checksums == 2
    assert health.timeouts == 2
    assert health.port_errors == 0


async def test_pn532_that_stops_answering_is_reopened_and_configured_again(
    pn532: Pn532Simulator, running: Callable[[ReaderSettings], Running]
) -> None:
    run = running(_pn532_settings(pn532))
    health = run.reader.health
    await _until(lambda: 0x4A in pn532.commands)
    pn532.silent = True
    await _until(lambda: health.port_errors >= 1)
    assert "does not answer" in health.last_error
    assert health.timeouts >= 3
    pn532.commands.clear()
    pn532.silent = False
    pn532.card = UID
    await _until(lambda: len(run.badges) == 1)
    assert pn532.commands[:2] == [0x14, 0x32]
    assert health.online


# --- keyboard wedge -------------------------------------------------------------------------

_EVENT = struct.Struct("llHHi")  # struct input_event on 64-bit Linux


class _FakeInputDevice:
    """Stands in for evdev.InputDevice over a FIFO carrying raw input_event records.

    python-evdev needs a real /dev/input device; what is under test is the driver's use of
    it (grab, key-down filtering, decoding), which this keeps real.
    """

    grabbed: ClassVar[list[str]] = []

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)

    def grab(self) -> None:
        self.grabbed.append(self.path)

    def ungrab(self) -> None:
        self.grabbed.remove(self.path)

    def read(self) -> list[types.SimpleNamespace]:
        data = os.read(self.fd, 4096)
        if not data:
            raise OSError(19, "No such device")
        return [types.SimpleNamespace(type=kind, code=code, value=value)
                for _, _, kind, code, value in _EVENT.iter_unpack(data)]

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture
def fake_evdev(monkeypatch: pytest.MonkeyPatch) -> None:
    module: Any = types.ModuleType("evdev")
    module.InputDevice = _FakeInputDevice
    monkeypatch.setitem(sys.modules, "evdev", module)


def _keys(text: str, *, shift: bool = False) -> bytes:
    codes = {**{str(n): n + 1 for n in range(1, 10)}, "0": 11, "\n": 28}
    events = b""
    for char in text:
        if shift:
            events += _EVENT.pack(0, 0, 1, 42, 1)
        events += _EVENT.pack(0, 0, 1, codes[char], 1) + _EVENT.pack(0, 0, 1, codes[char], 0)
        events += _EVENT.pack(0, 0, 0, 0, 0)  # EV_SYN
    return events


@pytest.mark.usefixtures("fake_evdev")
async def test_keyboard_wedge_number_becomes_a_badge(
    tmp_path: Path, running: Callable[[ReaderSettings], Running]
) -> None:
    fifo = tmp_path / "event7"
    os.mkfifo(fifo)
    writer = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # keeps the FIFO open while reopened
    try:
        run = running(ReaderSettings("kiosk", load_reader_profile("usb-keyboard-wedge"),
                                     str(fifo)))
        await _until(lambda: run.reader.health.online)
        assert _FakeInputDevice.grabbed == [str(fifo)]
        os.write(writer, _keys("0040856634\n", shift=True))
        await _until(lambda: len(run.badges) == 1)
        assert run.badges[0].raw == bytes.fromhex("026F6C3A")
        assert run.badges[0].technology == "em4100"
        os.write(writer, _keys("12\n"))  # too short a number is no card
        await _until(lambda: run.reader.health.bad_checksums == 1)
        await run.stop()
        assert _FakeInputDevice.grabbed == []
    finally:
        os.close(writer)


def test_keyboard_wedge_without_evdev_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "evdev", None)
    settings = ReaderSettings("kiosk", load_reader_profile("usb-keyboard-wedge"),
                              "/dev/input/event3")
    with pytest.raises(ConfigError, match=r"pip install 'ponton\[wedge\]'"):
        open_reader(settings)


# --- reader profiles ------------------------------------------------------------------------


def test_every_shipped_reader_profile_loads_with_its_protocol() -> None:
    protocols = {profile_id: load_reader_profile(profile_id).reader.protocol
                 for profile_id in available_reader_profiles()}
    assert protocols == {"rdm6300": "rdm6300", "em18": "em18", "pn532-uart": "pn532",
                         "usb-keyboard-wedge": "keyboard_wedge"}
    assert not set(protocols) & set(available_profiles())


@pytest.mark.parametrize(
    ("reader", "says"),
    [
        ("{protocol: rdm6300, technology: iso14443a}",
         ("x.yaml:5", "reader", "a rdm6300 reader reads em4100 cards, not iso14443a")),
        ("{protocol: em18, technology: em4100, poll_interval_ms: 50}",
         ("x.yaml:5", "poll_interval_ms and response_timeout_ms are for pn532 readers")),
        ("{protocol: keyboard_wedge, technology: em4100}",
         ("x.yaml:5", "a keyboard_wedge needs number_format")),
        ("{protocol: keyboard_wedge, technology: em4100, number_format: dec}",
         ("number_format dec needs card_bytes",)),
        ("{protocol: pn532, technology: iso14443a, baudrate: 115200}",
         ("x.yaml:5", "reader.baudrate", "unknown field")),
        ("{protocol: rdm6301, technology: em4100}", ("reader.protocol", "rdm6300")),
    ],
)
def test_broken_reader_profile_names_file_line_field_and_fix(
    tmp_path: Path, reader: str, says: tuple[str, ...]
) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(f"id: x\nmanufacturer: m\nmodel: m\ncategory: badge_reader\n"
                    f"reader: {reader}\n", encoding="utf-8")
    with pytest.raises(ProfileError) as caught:
        load_reader_profile_file(path)
    for fragment in says:
        assert fragment in str(caught.value)


def test_a_site_reader_profile_is_found_before_the_shipped_ones(tmp_path: Path) -> None:
    (tmp_path / "rdm6300.yaml").write_text(
        "id: rdm6300\nmanufacturer: site\nmodel: slow clone\ncategory: badge_reader\n"
        "serial: {baudrate: 4800}\nreader: {protocol: rdm6300, technology: em4100}\n",
        encoding="utf-8")
    profile = load_reader_profile("rdm6300", extra_dirs=[tmp_path])
    assert (profile.manufacturer, profile.line.baudrate) == ("site", 4800)
    wedge = tmp_path / "wedge.yaml"
    wedge.write_text("id: wedge\nmanufacturer: m\nmodel: m\ncategory: badge_reader\n"
                     "serial: {baudrate: 9600}\nreader: {protocol: keyboard_wedge, "
                     "technology: em4100, number_format: hex, card_bytes: 5}\n",
                     encoding="utf-8")
    with pytest.raises(ProfileError, match="a keyboard wedge is an input device"):
        load_reader_profile_file(wedge)
