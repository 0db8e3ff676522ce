"""``edge-agent tic listen`` as an installer runs it, against the simulated Linky on a pty."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest

from edge_agent.codecs.tic import TicMode
from simulators.tic import TicSimulator
from tests.test_cli import edge_agent


@pytest.fixture(params=list(TicMode))
async def linky(request: pytest.FixtureRequest) -> AsyncIterator[TicSimulator]:
    simulator = TicSimulator(request.param, time_scale=0.2, corrupt_every=100)
    simulator.open()
    task = asyncio.create_task(simulator.run())
    yield simulator
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    simulator.close()


async def _listen(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edge_agent", "tic", "listen", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200"})
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_listen_prints_frames_then_the_counters_within_80_columns(
    linky: TicSimulator,
) -> None:
    status, out, err = await _listen("--serial", linky.path, "--count", "2", "--timeout", "25")
    assert status == 0, err
    assert f"listening on {linky.path} (auto: 1200 then 9600 baud)" in err
    lines = out.splitlines()
    assert lines[0].startswith(f"frame 1: {linky.mode.value}, ")
    assert any(line.startswith("event tic.meter mode=") for line in lines)
    assert all(len(line) <= 80 for line in lines)
    if linky.mode is TicMode.STANDARD:
        assert '  DATE      ""  [' in out
        assert '  MSG1      "PAS DE          MESSAGE         "' in out
    else:
        assert "  PTEC      HP.." in out
    counters = " ".join(out.split("\n")[-4:])
    assert f"mode {linky.mode.value} at {linky.mode.baudrate} baud: frames 2, " in counters
    assert "bad checksums" in counters
    assert "garbage bytes" in counters


async def test_listen_readings_and_json(linky: TicSimulator) -> None:
    mode = linky.mode.value
    status, out, err = await _listen("--serial", linky.path, "--mode", mode, "--count", "1",
                                     "--readings")
    assert status == 0, err
    assert "  active_energy_import      32389.9" in out
    assert "  tariff_period             2\n" in out
    status, out, err = await _listen("--serial", linky.path, "--mode", mode, "--count", "1",
                                     "--json")
    assert status == 0, err
    objects = [json.loads(line) for line in out.splitlines()]
    frame = next(obj for obj in objects if "groups" in obj)
    assert frame["mode"] == mode
    assert frame["values"]["subscribed_power"] == 6000
    assert objects[-1]["counters"]["frames"] == 1


async def test_listen_without_the_frames_asked_for_exits_1() -> None:
    silent = TicSimulator(TicMode.HISTORIC)
    silent.open()
    try:
        status, out, _ = await _listen("--serial", silent.path, "--count", "1",
                                       "--timeout", "0.5")
    finally:
        silent.close()
    assert status == 1
    assert out.startswith("mode not found at 1200 baud: frames 0, groups 0")


@pytest.mark.parametrize(("args", "message"), [
    (("--serial", "/dev/ttyNOPE7"),
     "linky: /dev/ttyNOPE7 does not exist: is the TIC adapter plugged in?"),
    (("--serial", "/dev/ttyS0", "--mode", "fast"), "use auto, historic or standard"),
])
def test_listen_errors_are_one_line_and_exit_2(args: tuple[str, ...], message: str) -> None:
    result = edge_agent("tic", "listen", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


async def test_the_simulator_command_serves_a_linky_until_sigterm() -> None:
    simulator = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simulators.tic", "--mode", "standard", "--time-scale", "0.2",
        "--overpower-every", "0.5", "--overpower-for", "5", "--tariff-every", "60",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert simulator.stdout is not None
        ready = (await asyncio.wait_for(simulator.stdout.readline(), 20)).decode().split()
        assert ready[:2] == ["READY", "standard"]
        status, out, err = await _listen("--serial", ready[2], "--mode", "standard",
                                         "--count", "4", "--timeout", "20")
        assert status == 0, err
        assert "event tic.overpower stge=" in out
    finally:
        simulator.send_signal(signal.SIGTERM)
        _, err_bytes = await asyncio.wait_for(simulator.communicate(), 20)
    assert simulator.returncode == 0, err_bytes.decode()


def test_the_simulator_command_refuses_bad_options() -> None:
    done = subprocess.run([sys.executable, "-m", "simulators.tic", "--time-scale", "0"],
                          capture_output=True, text=True, check=False, timeout=30)
    assert done.returncode == 2
    assert "--time-scale must be above 0" in done.stderr
