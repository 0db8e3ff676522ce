"""MQTT brokers for the tests: Mosquitto where it runs, the embedded amqtt broker anywhere.

Tests that take the ``mqtt_broker`` fixture run once per broker; the Mosquitto run is
skipped, saying why, where nothing answers on 127.0.0.1:1883 (CI always has it).
``private_mosquitto`` starts a broker process of the test's own, which the test may kill
and restart (persistence on, in a temporary directory).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from simulators.mqtt_broker import EmbeddedBroker, PrivateMosquitto, broker_answers

__all__ = ["Broker", "PrivateMosquitto", "mqtt_broker", "private_mosquitto"]

MOSQUITTO_MISSING = ("no MQTT broker answers on 127.0.0.1:1883 (start Mosquitto: "
                     "mosquitto -d -c /etc/mosquitto/mosquitto.conf); CI always runs these")


@dataclass(frozen=True, slots=True)
class Broker:
    """A broker's URL and what it can do."""

    url: str
    kind: str
    #: Mosquitto delivers again what a client left unacknowledged; amqtt does not.
    redelivers: bool


@pytest.fixture(params=["embedded", "mosquitto"])
async def mqtt_broker(request: pytest.FixtureRequest) -> AsyncIterator[Broker]:
    """Each broker in turn."""
    if request.param == "mosquitto":
        if not broker_answers():
            pytest.skip(MOSQUITTO_MISSING)
        yield Broker("mqtt://127.0.0.1:1883", "mosquitto", redelivers=True)
        return
    async with EmbeddedBroker() as broker:
        yield Broker(broker.url, "embedded", redelivers=False)


@pytest.fixture
def private_mosquitto(tmp_path: Path) -> Iterator[PrivateMosquitto]:
    """A Mosquitto of this test's own; skipped where the binary is not installed."""
    binary = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin")
    if binary is None:
        pytest.skip("the mosquitto binary is not installed (apt install mosquitto); the "
                    "embedded broker cannot be restarted with its sessions")
    broker = PrivateMosquitto(binary, tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):
            broker.stop()
