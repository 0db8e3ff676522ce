"""``[[tic]]`` in a gateway file: validated like the rest, and run by the real Gateway against
the simulated Linky on a pty, its readings and events landing in the outbox."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from edge_agent.codecs.tic import TicMode
from edge_agent.config import load_config
from edge_agent.errors import ConfigError
from edge_agent.runtime import OUTBOX_FILE, STATUS_FILE, Gateway
from simulators.tic import TicSimulator
from tests.test_runtime import drain


def _gateway_toml(tmp_path: Path, serial: str, extra: str = "") -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(f"""
[gateway]
id = "lisieux-mairie"
data_dir = "data"

[sync]
enabled = false

[[tic]]
name = "linky-mairie"
serial = "{serial}"
index_interval_s = 0.5
max_interval_s = 600
{extra}""", encoding="utf-8")
    return path


@pytest.mark.usefixtures("no_leaks")
async def test_the_gateway_stores_a_linky_s_sampled_readings_and_events(tmp_path: Path) -> None:
    simulator = TicSimulator(TicMode.STANDARD, time_scale=0.1)
    simulator.open()
    feeding = asyncio.create_task(simulator.run())
    try:
        gateway = Gateway(load_config(_gateway_toml(tmp_path, simulator.path)))
        stop = asyncio.Event()
        running = asyncio.create_task(gateway.run(stop))
        (line,) = gateway.tic_lines
        async with asyncio.timeout(20):  # auto mode: 1200 baud first, then 9600
            while line.health.decoder.frames < 3:
                await asyncio.sleep(0.05)
            simulator.start_overpower()
            while line.health.decoder.frames < 8:
                await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(running, 10)
        status = json.loads((tmp_path / "data" / STATUS_FILE).read_text(encoding="utf-8"))
    finally:
        feeding.cancel()
        await asyncio.gather(feeding, return_exceptions=True)
        simulator.close()

    readings, events = drain(tmp_path / "data" / OUTBOX_FILE)
    assert {r.device for r in readings} == {"linky-mairie"}
    frames = line.health.decoder.frames
    indexes = [r for r in readings if r.quantity == "active_energy_import"]
    assert 1 <= len(indexes) < frames  # sampled, not one per frame
    assert indexes[0].value == pytest.approx(32_389.9, abs=1)
    assert len(readings) == line.health.readings  # every reading reached the outbox
    kinds = [(e.kind, e.device) for e in events]
    assert kinds == [("tic.meter", "linky-mairie"), ("tic.overpower", "linky-mairie")]
    assert events[0].attrs["prm"] == "09312300926695"
    (report,) = status["tic"]
    assert (report["name"], report["mode"], report["baudrate"]) == (
        "linky-mairie", "standard", 9600)
    assert report["frames"] == frames
    assert report["speed_switches"] == 1


@pytest.mark.parametrize(("extra", "expected"), [
    ('\n[[tic]]\nname = "linky-mairie"\nserial = "/dev/ttyAMA1"\n',
     "device name 'linky-mairie' is used twice"),
    ('\n[[buses]]\nname = "rs485"\nserial = "/dev/ttyAMA0"\n',
     "bus rs485 and TIC linky-mairie both use /dev/ttyAMA0"),
    ('mode = "fast"\n', "tic[linky-mairie].mode"),
    ("deadband_pct = -1\n", "tic[linky-mairie].deadband_pct"),
    ("index_interval = 60\n", "tic[linky-mairie].index_interval: unknown field; did you mean "
                               "'index_interval_s'?"),
])
def test_tic_mistakes_are_named(tmp_path: Path, extra: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_config(_gateway_toml(tmp_path, "/dev/ttyAMA0", extra))


def test_tic_settings_carry_the_sampling(tmp_path: Path) -> None:
    config = load_config(_gateway_toml(tmp_path, "/dev/ttyAMA0", 'mode = "historic"\n'
                                       "deadband_va = 20\n"))
    settings = config.tic[0].settings()
    assert (settings.name, settings.port, settings.mode) == (
        "linky-mairie", "/dev/ttyAMA0", "historic")
    assert settings.sampling.index_interval_s == 0.5
    assert (settings.sampling.deadband_va, settings.sampling.deadband_pct) == (20, 5)
