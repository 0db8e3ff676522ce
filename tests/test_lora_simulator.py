"""The ChirpStack simulator: its payloads agree with the shipped profiles, its command runs."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from edge_agent.config import load_config
from edge_agent.profiles import load_lora_profile
from edge_agent.runtime import Gateway
from simulators.lora.payloads import BUILDERS, build_payload
from simulators.lora.scenarios import SENSORS, flood_distance
from tests.helpers.mqtt import Broker, mqtt_broker
from tests.test_lora_gateway import running, stored, until

__all__ = ["mqtt_broker"]

#: Values each builder carries, in canonical units, as the profile must decode them.
SAMPLES: dict[str, dict[str, float]] = {
    "dragino-ldds75": {"distance": 1.234, "battery_voltage": 3.338},
    "milesight-em500-udl": {"distance": 0.321, "battery": 92},
    "milesight-em310-udl": {"distance": 2.5, "battery": 80},
    "milesight-am307": {"co2": 936, "temperature": 23.8, "humidity": 62, "pressure": 1008.6,
                        "battery": 77},
    "milesight-am319": {"co2": 700, "temperature": -4.5, "humidity": 40.5, "pressure": 990.1,
                        "pm2_5": 32, "pm10": 48},
    "elsys-ers-co2": {"co2": 776, "temperature": 22.6, "humidity": 41},
    "bosch-tps110": {"spot_occupied": 1},
    "nwave-nps405": {"spot_occupied": 1, "previous_state_duration": 74 * 60},
    "milesight-em300-di": {"pulse_count": 123456, "battery": 92},
    "milesight-ws301": {"door_open": 1, "tamper": 1, "battery": 100},
    "dragino-lds02": {"door_open": 1, "open_count": 17, "last_open_duration": 120,
                      "battery_voltage": 3.012},
}


@pytest.mark.parametrize("profile_id", sorted(BUILDERS))
def test_simulated_payloads_decode_to_what_they_carry(profile_id: str) -> None:
    values = SAMPLES[profile_id]
    f_port, payload = build_payload(profile_id, values)
    decoded = {v.quantity: v.value for v in load_lora_profile(profile_id).decode(f_port, payload)}
    for quantity, value in values.items():
        assert decoded[quantity] == pytest.approx(value, abs=0.01), quantity


def test_the_flood_rises_past_any_threshold_and_recedes() -> None:
    levels = [flood_distance(step) for step in range(41)]
    assert levels[0] == levels[40] == 2.0
    assert min(levels) == pytest.approx(0.6)
    assert levels.index(min(levels)) == 20


def test_print_config_gives_a_valid_gateway_file(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "simulators.lora", "--print-config"],
                          capture_output=True, text=True, timeout=30, check=True)
    config = tmp_path / "gateway.toml"
    config.write_text('[gateway]\nid = "sim"\ndata_dir = "data"\n\n' + done.stdout,
                      encoding="utf-8")
    names = {s.name for source in load_config(config).lora for s in source.devices}
    assert names == set(SENSORS)


async def test_every_scenario_including_hostile_traffic_reaches_a_gateway_unharmed(
    tmp_path: Path, mqtt_broker: Broker
) -> None:
    app = str(uuid.uuid4())
    section = subprocess.run(
        [sys.executable, "-m", "simulators.lora", "--print-config", "--broker", mqtt_broker.url,
         "--application", app], capture_output=True, text=True, timeout=30, check=True).stdout
    protocol = "3.1.1" if mqtt_broker.kind == "embedded" else "auto"
    section = section.replace("[[lora]]\n", f'[[lora]]\nprotocol = "{protocol}"\n', 1)
    config = tmp_path / "gateway.toml"
    config.write_text('[gateway]\nid = "sim"\ndata_dir = "data"\n\n' + section, encoding="utf-8")
    gateway = Gateway(load_config(config))
    async with running(gateway):
        done = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "simulators.lora", "--broker",
                             mqtt_broker.url, "--application", app, "--scenario", "all",
                             "--count", "40", "--every", "0"],
            capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        source = gateway.lora[0]
        await until(lambda: source.counters.messages >= 40 and not gateway.buffer.on_durable)
        report = source.report()
    readings, _ = stored(tmp_path / "data")
    devices = {r.device for r in readings}
    assert {"level-d982", "air-school"} <= devices
    assert report["malformed"] >= 2
    assert report["unknown_devices"] >= 1
    assert report["decode_errors"] >= 2
