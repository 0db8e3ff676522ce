"""LoRa sensors through a real broker into a running gateway's outbox.

The simulated ChirpStack publishes uplinks on Mosquitto (where it runs) or the embedded
broker; the gateway decodes them with the shipped profiles, stores them, and only then
acknowledges them to the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Literal

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from rich.console import Console

from edge_agent.config import load_config
from edge_agent.drivers.lora.mqtt import parse_broker_url
from edge_agent.records import Event, Reading
from edge_agent.runtime import OUTBOX_FILE, Gateway
from edge_agent.status import gateway_report, report_view
from edge_agent.store import Outbox
from simulators.lora.chirpstack import ChirpstackPublisher, SimulatedSensor
from simulators.lora.fleet import make_session
from tests.helpers.mqtt import Broker, PrivateMosquitto, mqtt_broker, private_mosquitto

__all__ = ["mqtt_broker", "private_mosquitto"]

FLOOD = SimulatedSensor("flood-1", "a84041000181c061", "dragino-ldds75")
SPOT = SimulatedSensor("spot-12", "70b3d5e75e003a1b", "bosch-tps110")
AIR = SimulatedSensor("air-1", "24e124707c481005", "milesight-am307")
UNKNOWN = SimulatedSensor("stranger", "0000000000000bad", "bosch-tps110")


def gateway_toml(tmp: Path, broker: Broker, app: str, *, fmt: str = "json",
                 client_id: str | None = None) -> Path:
    protocol = "3.1.1" if broker.kind == "embedded" else "auto"
    devices = "".join(
        f'[[lora.devices]]\nname = "{s.name}"\ndev_eui = "{s.dev_eui}"\nprofile = "{s.profile}"\n'
        for s in (FLOOD, SPOT, AIR))
    path = tmp / "gateway.toml"
    path.write_text(
        f'[gateway]\nid = "lora-test"\ndata_dir = "data"\n\n'
        f'[[lora]]\nbroker = "{broker.url}"\napplication_ids = ["{app}"]\n'
        f'format = "{fmt}"\nprotocol = "{protocol}"\nsession_expiry_s = 300\n'
        f'client_id = "{client_id or "ponton-" + uuid.uuid4().hex[:10]}"\n\n{devices}',
        encoding="utf-8")
    return path


def stored(data_dir: Path) -> tuple[list[Reading], list[Event]]:
    readings: list[Reading] = []
    events: list[Event] = []
    with Outbox.open(data_dir / OUTBOX_FILE) as outbox:
        while (batch := outbox.next_batch(limit=10_000)) is not None:
            for _seq, record in batch.records:
                if isinstance(record, Reading):
                    readings.append(record)
                else:
                    events.append(record)
            outbox.ack(batch.stream, batch.last_seq)
    return readings, events


@contextlib.asynccontextmanager
async def running(gateway: Gateway) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop))
    async with asyncio.timeout(15):
        while not (gateway.lora and gateway.lora[0].session.subscribed.is_set()):
            await asyncio.sleep(0.02)
    yield stop
    stop.set()
    await asyncio.wait_for(task, 15)


async def until(condition: Callable[[], bool], timeout: float = 15) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("fmt", ["json", "protobuf"])
async def test_uplinks_become_readings_unknown_and_garbage_are_counted(
    tmp_path: Path, mqtt_broker: Broker, fmt: Literal["json", "protobuf"]
) -> None:
    app = str(uuid.uuid4())
    gateway = Gateway(load_config(gateway_toml(tmp_path, mqtt_broker, app, fmt=fmt)))
    async with running(gateway):
        publisher = await asyncio.to_thread(ChirpstackPublisher, mqtt_broker.url, app, fmt)
        await asyncio.to_thread(publisher.uplink, FLOOD, {"distance": 1.234, "temperature": 8.5,
                                                          "battery_voltage": 3.338})
        await asyncio.to_thread(publisher.uplink, SPOT, {"spot_occupied": 1})
        await asyncio.to_thread(publisher.uplink, AIR, {"co2": 936, "temperature": 23.8,
                                                        "humidity": 62})
        await asyncio.to_thread(publisher.uplink, UNKNOWN, {"spot_occupied": 0})
        await asyncio.to_thread(publisher.uplink_bytes, SPOT, 1, b"")  # truncated payload
        await asyncio.to_thread(publisher.raw, f"application/{app}/device/{SPOT.dev_eui}"
                                "/event/up", b"\x00garbage{")
        await asyncio.to_thread(publisher.status, AIR, battery=87, margin=9)
        await asyncio.to_thread(publisher.join, FLOOD)
        await asyncio.to_thread(publisher.close)
        source = gateway.lora[0]
        await until(lambda: source.counters.messages >= 8 and not gateway.buffer.on_durable)
        report = source.report()
    readings, events = stored(tmp_path / "data")
    values = {(r.device, r.quantity): r.value for r in readings}
    assert values[("flood-1", "distance")] == pytest.approx(1.234)
    assert values[("flood-1", "battery_voltage")] == pytest.approx(3.338)
    assert values[("spot-12", "spot_occupied")] == 1
    assert values[("air-1", "co2")] == 936
    assert values[("air-1", "battery")] == 87
    assert values[("air-1", "link_margin")] == 9
    assert ("flood-1", "rssi") in values
    assert not any(r.device == "stranger" for r in readings)
    assert [e.kind for e in events if e.device == "flood-1"] == ["lora.join"]
    assert report["unknown_devices"] == 1
    assert report["malformed"] == 1
    assert report["decode_errors"] == 1


async def test_a_sensor_silent_past_its_allowance_goes_offline_then_online(
    tmp_path: Path, mqtt_broker: Broker
) -> None:
    app = str(uuid.uuid4())
    gateway = Gateway(load_config(gateway_toml(tmp_path, mqtt_broker, app)))
    async with running(gateway):
        source = gateway.lora[0]
        sensor = source.sensors[SPOT.dev_eui]
        silence_ms = int(sensor.profile.uplink_interval_s * 2.5 * 1000) + 1000
        source.check_silence(sensor.last_seen_ms + silence_ms)
        assert not sensor.online
        publisher = await asyncio.to_thread(ChirpstackPublisher, mqtt_broker.url, app)
        await asyncio.to_thread(publisher.uplink, SPOT, {"spot_occupied": 0})
        await asyncio.to_thread(publisher.close)

        def heard_again() -> bool:
            return sensor.online and not gateway.buffer.on_durable

        await until(heard_again)
    _, events = stored(tmp_path / "data")
    kinds = [e.kind for e in events if e.device == "spot-12"]
    assert kinds == ["device.offline", "device.online"]


async def test_a_sensor_offline_before_a_restart_is_announced_back_by_its_next_uplink(
    tmp_path: Path, mqtt_broker: Broker
) -> None:
    app = str(uuid.uuid4())
    config = load_config(gateway_toml(tmp_path, mqtt_broker, app))
    gateway = Gateway(config)
    async with running(gateway):
        source = gateway.lora[0]
        sensor = source.sensors[SPOT.dev_eui]
        silence_ms = int(sensor.profile.uplink_interval_s * 2.5 * 1000) + 1000
        source.check_silence(sensor.last_seen_ms + silence_ms)
    restarted = Gateway(config)  # its memory of the sensor is gone, not the announcement
    async with running(restarted):
        sensor = restarted.lora[0].sensors[SPOT.dev_eui]
        assert not sensor.online
        publisher = await asyncio.to_thread(ChirpstackPublisher, mqtt_broker.url, app)
        await asyncio.to_thread(publisher.uplink, SPOT, {"spot_occupied": 0})
        await asyncio.to_thread(publisher.close)
        await until(lambda: sensor.online and not restarted.buffer.on_durable)
    _, events = stored(tmp_path / "data")
    assert [e.kind for e in events if e.device == "spot-12"] == ["device.offline",
                                                                 "device.online"]


async def test_a_battery_at_its_low_level_raises_one_event(
    tmp_path: Path, mqtt_broker: Broker
) -> None:
    app = str(uuid.uuid4())
    gateway = Gateway(load_config(gateway_toml(tmp_path, mqtt_broker, app)))
    async with running(gateway):
        low = gateway.lora[0].sensors[AIR.dev_eui].profile.battery_low
        assert low is not None
        publisher = await asyncio.to_thread(ChirpstackPublisher, mqtt_broker.url, app)
        for level in (80, low.level - 1, low.level - 2, 90):
            await asyncio.to_thread(publisher.status, AIR, battery=level)
        await asyncio.to_thread(publisher.close)
        source = gateway.lora[0]
        await until(lambda: source.counters.messages >= 4 and not gateway.buffer.on_durable)
    _, events = stored(tmp_path / "data")
    kinds = [e.kind for e in events if e.device == "air-1"]
    assert kinds == ["device.battery_low", "device.battery_ok"]


def _pulse_readings(outbox: Path) -> int:
    """Pulse counts stored so far, read beside the running agent (WAL lets it)."""
    if not outbox.exists():
        return 0
    conn = sqlite3.connect(f"{outbox.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return int(conn.execute(
            "SELECT count(*) FROM readings JOIN series ON series.id = readings.series_id"
            " WHERE series.quantity LIKE 'pulse_count%'").fetchone()[0])
    except sqlite3.OperationalError:  # being created: no tables yet
        return 0
    finally:
        conn.close()


def _agent(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "edge_agent", "run", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.slow
async def test_every_uplink_is_stored_exactly_once_through_sigkills_and_a_broker_restart(
    tmp_path: Path, private_mosquitto: PrivateMosquitto
) -> None:
    broker = Broker(private_mosquitto.url, "mosquitto", redelivers=True)
    app = str(uuid.uuid4())
    config = gateway_toml(tmp_path, broker, app, client_id="ponton-exactly-once")
    # The pulse count each uplink carries is its frame counter: every (sensor, fCnt) is
    # checked for exactly one stored reading.
    sensors = [SimulatedSensor(f"s{i}", f"{i:016x}", "milesight-em300-di") for i in range(1, 4)]
    text = config.read_text(encoding="utf-8") + "".join(
        f'[[lora.devices]]\nname = "{s.name}"\ndev_eui = "{s.dev_eui}"\n'
        f'profile = "milesight-em300-di"\n' for s in sensors)
    config.write_text(text, encoding="utf-8")
    # The agent's session exists before the first uplink, whenever its process gets going:
    # the broker queues for it what comes before it connects.
    await asyncio.to_thread(make_session, broker.url, "ponton-exactly-once", app)
    publisher = await asyncio.to_thread(ChirpstackPublisher, broker.url, app)
    agent = _agent(config)
    published: Counter[tuple[str, int]] = Counter()
    try:
        for round_ in range(6):
            for _ in range(40):
                for sensor in sensors:
                    await asyncio.to_thread(publisher.uplink, sensor,
                                            {"pulse_count": sensor.f_cnt + 1})
                    published[(sensor.name, sensor.f_cnt)] += 1
            if round_ == 3:
                await asyncio.to_thread(publisher.close)
                private_mosquitto.stop()
                private_mosquitto.start()
                publisher = await asyncio.to_thread(ChirpstackPublisher, broker.url, app)
            else:
                agent.send_signal(signal.SIGKILL)
                agent.wait(10)
                agent = _agent(config)
        await asyncio.sleep(2)
        agent.send_signal(signal.SIGTERM)
        agent.wait(20)
        agent = _agent(config)  # drains what the broker still holds for us
        expected = sum(published.values())
        async with asyncio.timeout(120):  # a loaded machine starts Python in seconds
            while _pulse_readings(tmp_path / "data" / OUTBOX_FILE) < expected:
                await asyncio.sleep(0.2)
    finally:
        await asyncio.to_thread(publisher.close)
        agent.send_signal(signal.SIGTERM)
        agent.wait(20)
    readings, _ = stored(tmp_path / "data")
    stored_once = Counter((r.device, int(r.value)) for r in readings
                          if r.quantity.startswith("pulse_count"))
    assert stored_once == published


async def test_a_rule_on_a_lora_reading_sends_a_downlink_through_chirpstack(
    tmp_path: Path, mqtt_broker: Broker
) -> None:
    app = str(uuid.uuid4())
    config = gateway_toml(tmp_path, mqtt_broker, app)
    config.write_text(config.read_text(encoding="utf-8") + (
        '\n[[rules]]\nname = "spot-taken"\ndevice = "spot-12"\nquantity = "spot_occupied"\n'
        'kind = "above"\nthreshold = 0.5\n'
        'on_raise = [{type = "downlink", device = "flood-1", fport = 10, payload = "01",'
        ' confirmed = true}]\n'), encoding="utf-8")
    host, port, _ = parse_broker_url(mqtt_broker.url)
    commands: list[bytes] = []
    subscribed = threading.Event()
    watcher = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"cs-{uuid.uuid4().hex[:8]}")
    watcher.on_message = lambda _c, _u, message: commands.append(bytes(message.payload))
    watcher.on_subscribe = lambda *_: subscribed.set()
    watcher.connect(host, port)
    watcher.subscribe(f"application/{app}/device/+/command/down", 1)
    watcher.loop_start()
    gateway = Gateway(load_config(config))
    try:
        assert await asyncio.to_thread(subscribed.wait, 10), "no SUBACK for the watcher"
        async with running(gateway):
            publisher = await asyncio.to_thread(ChirpstackPublisher, mqtt_broker.url, app)
            await asyncio.to_thread(publisher.uplink, SPOT, {"spot_occupied": 1})
            await asyncio.to_thread(publisher.close)
            await until(lambda: bool(commands))
            ident = json.loads(commands[0])["id"]
            publisher = await asyncio.to_thread(ChirpstackPublisher, mqtt_broker.url, app)
            await asyncio.to_thread(publisher.downlink_delivered, FLOOD, ident)
            await asyncio.to_thread(publisher.close)
            source = gateway.lora[0]
            await until(lambda: source.downlinks.get(ident) == "acknowledged"
                        and not gateway.buffer.on_durable)
            assert source.report()["downlinks"] == {"acknowledged": 1}
            view = report_view(gateway_report(tmp_path / "data"))
    finally:
        watcher.disconnect()
        watcher.loop_stop()
    command = json.loads(commands[0])
    assert (command["devEui"], command["fPort"], command["data"]) == (FLOOD.dev_eui, 10, "AQ==")
    _, events = stored(tmp_path / "data")
    confirmations = [(e.kind, e.attrs["id"]) for e in events if e.kind.startswith("lora.down")]
    assert confirmations == [("lora.downlink_sent", ident), ("lora.downlink_acked", ident)]
    assert command["confirmed"] is True
    console = Console(width=80, record=True)
    console.print(view)
    screen = console.export_text()
    assert "LoRa chirpstack" in screen
    assert "spot-12" in screen
