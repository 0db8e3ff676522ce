"""A TIC line over real ptys, against the simulated Linky: both modes, auto-detection of the
speed, sampling, overpower and tariff events, corrupted and interrupted frames, and a port
that vanishes and comes back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from edge_agent.codecs.tic import TicFrame, TicMode, encode_frame, encode_group
from edge_agent.drivers.tic import ModeSetting, SamplingPolicy, TicLine, TicSettings
from edge_agent.errors import TransportError
from edge_agent.records import Reading
from simulators.tic import TicSimulator
from tests.test_modbus_bus import CollectingSink

pytestmark = pytest.mark.usefixtures("no_leaks")

#: Ten times line pace: a historic frame in about 0.15 s.
FAST = 0.1


class Sink(CollectingSink):
    """What the runtime's RecordBuffer would receive."""

    def quantity(self, name: str) -> list[Reading]:
        return [reading for reading in self.readings if reading.quantity == name]


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


class Running:
    """A simulated meter and a line reading it, both in tasks."""

    def __init__(self, simulator: TicSimulator, line: TicLine, sink: Sink,
                 frames: list[TicFrame]) -> None:
        self.simulator, self.line, self.sink, self.frames = simulator, line, sink, frames
        self.tasks = [asyncio.create_task(simulator.run()), asyncio.create_task(line.run())]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.simulator.close()


Start = Callable[..., Running]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    started: list[Running] = []

    def run(mode: TicMode, *, setting: ModeSetting = "auto", policy: SamplingPolicy | None = None,
            detect_s: float = 0.6, **faults: int) -> Running:
        simulator = TicSimulator(mode, time_scale=FAST, **faults)
        simulator.open()
        sink = Sink()
        frames: list[TicFrame] = []
        line = TicLine(TicSettings("linky", simulator.path, setting,
                                   policy or SamplingPolicy(), detect_s), sink,
                       on_frame=frames.append)
        started.append(Running(simulator, line, sink, frames))
        return started[-1]

    yield run
    for running in started:
        await running.stop()


@pytest.mark.parametrize("mode", list(TicMode))
async def test_fixed_mode_reads_frames_into_readings_and_the_meter_event(
    start: Start, mode: TicMode
) -> None:
    run = start(mode, setting=mode.value)
    await _until(lambda: len(run.frames) >= 3)
    health = run.line.health
    assert (health.mode, health.baudrate, health.speed_switches) == (mode, mode.baudrate, 0)
    (meter,) = run.sink.events
    assert meter.kind == "tic.meter"
    assert meter.attrs["serial"] == "041876097465"
    assert meter.attrs["mode"] == mode.value
    assert "PRM" not in {r.quantity for r in run.sink.readings}
    (index,) = run.sink.quantity("active_energy_import")  # once a minute, not per frame
    assert index.device == "linky"
    assert index.value == pytest.approx(32_389.922, abs=1)
    assert run.sink.quantity("tariff_period")[0].value == 2
    report = run.line.report()
    assert report["frames"] == len(run.frames)
    assert (report["mode"], report["online"]) == (mode.value, True)


@pytest.mark.parametrize("mode", list(TicMode))
async def test_auto_mode_finds_the_meters_speed(start: Start, mode: TicMode) -> None:
    run = start(mode)
    await _until(lambda: len(run.frames) >= 2)
    health = run.line.health
    assert (health.mode, health.baudrate) == (mode, mode.baudrate)
    # Historic is tried first (the factory setting): a standard meter costs one switch.
    assert health.speed_switches == (1 if mode is TicMode.STANDARD else 0)
    if mode is TicMode.STANDARD:
        assert run.simulator.sent.garbled_bytes > 0
        assert health.decoder.garbage_bytes > 0


async def test_indexes_every_interval_and_power_on_its_deadband(start: Start) -> None:
    policy = SamplingPolicy(index_interval_s=0.5, max_interval_s=1000, deadband_pct=0,
                            deadband_va=1e9, deadband_a=1e9)
    run = start(TicMode.STANDARD, setting="standard", policy=policy)
    await _until(lambda: len(run.frames) >= 20)
    frames = len(run.frames)
    indexes = run.sink.quantity("active_energy_import")
    assert 2 <= len(indexes) <= frames / 3  # about one per 0.5 s, frames come every 0.1 s
    assert [r.value for r in indexes] == sorted(r.value for r in indexes)
    assert len(run.sink.quantity("apparent_power")) == 1  # never moved past its deadband


async def test_overpower_raises_and_clears_one_event_each(start: Start) -> None:
    for mode in TicMode:
        run = start(mode, setting=mode.value)
        await _until(lambda run=run: len(run.frames) >= 2)  # type: ignore[misc]
        run.simulator.start_overpower()
        await _until(lambda run=run: "tic.overpower" in run.sink.kinds("linky"))  # type: ignore[misc]
        seen = len(run.frames)
        await _until(lambda run=run, seen=seen: len(run.frames) >= seen + 2)  # type: ignore[misc]
        run.simulator.end_overpower()
        await _until(lambda run=run: "tic.overpower_cleared" in run.sink.kinds("linky"))  # type: ignore[misc]
        assert run.sink.kinds("linky") == ["tic.meter", "tic.overpower", "tic.overpower_cleared"]
        raised = run.sink.events[1]
        assert raised.attrs["apparent_power"] > raised.attrs["subscribed_power"] == 6000
        assert ("adps" if mode is TicMode.HISTORIC else "stge") in raised.attrs
        assert run.line.report()["overpower"] is False


async def test_a_tariff_change_is_an_event_with_the_new_label(start: Start) -> None:
    run = start(TicMode.STANDARD, setting="standard")
    await _until(lambda: len(run.frames) >= 2)
    run.simulator.meter.switch_tariff()
    await _until(lambda: "tic.tariff" in run.sink.kinds("linky"))
    tariff = run.sink.events[-1]
    assert tariff.attrs == {"label": "HEURE  CREUSE", "previous": "HEURE  PLEINE", "period": 1}
    assert run.sink.quantity("tariff_period")[-1].value == 1


async def test_corrupted_and_interrupted_frames_are_counted_never_stored(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    run = start(TicMode.HISTORIC, setting="historic", corrupt_every=25, interrupt_every=4)
    await _until(lambda: run.simulator.sent.corrupted_groups >= 4
                 and run.simulator.sent.interrupted_frames >= 3, timeout=20)
    run.tasks[0].cancel()  # the meter stops; what it sent is all read
    await asyncio.sleep(0.3)
    stats = run.line.health.decoder
    sent = run.simulator.sent
    assert stats.bad_checksums >= sent.corrupted_groups - 1  # the first may precede the open
    # Every frame sent is handed over, rejected or counted as interrupted (but the one the
    # line opened in the middle of, which is garbage), and no other.
    accounted = stats.frames + stats.rejected_frames + stats.interrupted_frames
    assert sent.frames + sent.interrupted_frames - 1 <= accounted
    assert accounted <= sent.frames + sent.interrupted_frames
    assert stats.frames < sent.frames
    labels = [frame.as_dict().keys() for frame in run.frames]
    assert labels == [labels[0]] * len(labels)  # a corrupted label never got through
    (warning,) = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert "tic linky at 1200 baud dropped " in warning  # once a minute at most
    assert "groups with a bad checksum" in warning


async def test_a_vanished_port_is_reopened_when_it_comes_back(tmp_path: Path) -> None:
    first = TicSimulator(TicMode.HISTORIC, time_scale=FAST)
    first.open()
    link = tmp_path / "ttyTIC"  # as /dev/serial/by-id/ names follow a replugged adapter
    link.symlink_to(first.path)
    sink = Sink()
    line = TicLine(TicSettings("linky", str(link), "historic"), sink)
    tasks = [asyncio.create_task(line.run()), asyncio.create_task(first.run())]
    second = TicSimulator(TicMode.HISTORIC, time_scale=FAST)
    try:
        await _until(lambda: line.health.decoder.frames >= 1)
        tasks.pop().cancel()
        first.close()
        link.unlink()
        await _until(lambda: line.health.port_errors >= 2)  # lost, then not there
        assert not line.health.online
        assert "does not exist: is the TIC adapter plugged in?" in line.health.last_error
        second.open()
        link.symlink_to(second.path)
        tasks.append(asyncio.create_task(second.run()))
        frames = line.health.decoder.frames
        await _until(lambda: line.health.decoder.frames > frames)
        assert line.health.online
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        first.close()
        second.close()


def test_check_explains_a_missing_port() -> None:
    line = TicLine(TicSettings("linky", "/dev/ttyNOPE9"), sink=Sink())
    with pytest.raises(TransportError, match="does not exist: is the TIC adapter plugged in"):
        line.check()


async def test_a_three_phase_overcurrent_cycle_is_one_episode(start: Start) -> None:
    """Short frames name the phase (ADIRn); the long frame every 21 does not: no flapping."""
    run = start(TicMode.HISTORIC, setting="historic")
    run.tasks.pop(0).cancel()  # the frames are written by hand here
    await _until(lambda: run.line.health.online)

    def frame(*groups: tuple[str, str]) -> bytes:
        return encode_frame(encode_group(label, value, TicMode.HISTORIC)
                            for label, value in groups)

    short = frame(("ADIR2", "062"), ("ADCO", "041876097465"), ("IINST1", "001"),
                  ("IINST2", "062"), ("IINST3", "000"))
    long = frame(("ADCO", "041876097465"), ("IINST1", "001"), ("IINST2", "030"),
                 ("IINST3", "000"), ("PAPP", "07000"))
    for data in (long, short, short, long, short, short, long, long, long):
        run.simulator.port.write(data)
        await asyncio.sleep(0.02)
    await _until(lambda: run.line.health.decoder.frames == 9)
    assert run.sink.kinds("linky") == ["tic.meter", "tic.overpower", "tic.overpower_cleared"]
    assert run.sink.events[1].attrs["adir2"] == "062"
