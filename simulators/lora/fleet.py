"""A LoRa fleet for benchmarks: its sensors, their ChirpStack traffic, a broker to carry it.

The fleet mixes the shipped profiles in the shares a territory has them (parking spots
first, then water levels, air, pulse meters and doors); its uplinks are built ahead of time
by the ChirpStack simulator, so publishing them costs only the MQTT work.
"""

from __future__ import annotations

import random
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.drivers.lora.mqtt import parse_broker_url
from simulators.lora.chirpstack import ChirpstackPublisher, SimulatedSensor
from simulators.lora.payloads import build_payload
from simulators.mqtt_broker import PrivateMosquitto

__all__ = ["BROKER", "MIX", "NO_BROKER", "BareSubscriber", "Message", "fleet", "lora_toml",
           "make_session", "private_broker", "publish_all", "uplinks"]

BROKER = "mqtt://127.0.0.1:1883"
NO_BROKER = ("no MQTT broker answers on 127.0.0.1:1883: start Mosquitto "
             "(mosquitto -d -c /etc/mosquitto/mosquitto.conf); nothing measured")

#: (profile, share of the fleet, the values of one uplink). The AM319, an indoor model
#: on mains power, is not in a territory's outdoor fleet.
MIX: list[tuple[str, float, Callable[[random.Random], dict[str, float]]]] = [
    ("bosch-tps110", 0.20, lambda r: {"spot_occupied": r.randint(0, 1)}),
    ("nwave-nps405", 0.15, lambda r: {"spot_occupied": r.randint(0, 1),
                                      "previous_state_duration": r.randint(0, 5000)}),
    ("dragino-ldds75", 0.10, lambda r: {"distance": r.uniform(0.3, 4.0),
                                        "temperature": r.uniform(2, 20)}),
    ("milesight-em500-udl", 0.05, lambda r: {"distance": r.uniform(0.3, 4.0)}),
    ("milesight-em310-udl", 0.05, lambda r: {"distance": r.uniform(0.3, 4.0)}),
    ("milesight-am307", 0.13, lambda r: {"co2": r.randint(400, 1500),
                                         "temperature": r.uniform(15, 28)}),
    ("elsys-ers-co2", 0.07, lambda r: {"co2": r.randint(400, 1500)}),
    ("milesight-em300-di", 0.15, lambda r: {"pulse_count": r.randint(0, 100_000)}),
    ("milesight-ws301", 0.05, lambda r: {"door_open": r.randint(0, 1)}),
    ("dragino-lds02", 0.05, lambda r: {"door_open": r.randint(0, 1), "open_count": 12}),
]

Message = tuple[str, bytes]


def fleet(count: int) -> list[SimulatedSensor]:
    """``count`` sensors in the shares of :data:`MIX`, with distinct DevEUIs."""
    profiles = [profile for profile, share, _ in MIX for _ in range(round(share * 1000))]
    return [SimulatedSensor(f"lora-{i:05d}", f"a8{i:014x}", profiles[i * 997 % len(profiles)])
            for i in range(count)]


def uplinks(publisher: ChirpstackPublisher, sensors: list[SimulatedSensor], count: int,
            seed: int = 1) -> list[Message]:
    """``count`` uplinks, round-robin over the sensors, built but not published."""
    rng = random.Random(seed)
    values = {profile: make for profile, _, make in MIX}
    messages = []
    for n in range(count):
        sensor = sensors[n % len(sensors)]
        f_port, data = build_payload(sensor.profile, values[sensor.profile](rng))
        topic, payload, _ = publisher.uplink_message(sensor, f_port, data)
        messages.append((topic, payload))
    return messages


def _devices_toml(sensors: list[SimulatedSensor]) -> str:
    """The ``[[lora.devices]]`` entries of a gateway file for ``sensors``."""
    return "".join(f'[[lora.devices]]\nname = "{s.name}"\ndev_eui = "{s.dev_eui}"\n'
                   f'profile = "{s.profile}"\n' for s in sensors)


def lora_toml(directory: Path, url: str, app: str, fmt: Literal["json", "protobuf"],
              sensors: list[SimulatedSensor], *, client_id: str, extra: str = "",
              sync: bool = False) -> Path:
    """A gateway file with one ``[[lora]]`` source on the broker at ``url``, and ``extra``.

    Its data directory is ``directory/data``; the sync runs only when ``sync`` is set.
    """
    path = directory / "gateway.toml"
    path.write_text(
        f'[gateway]\nid = "bench-lora"\ndata_dir = "data"\n\n'
        f'[sync]\nenabled = {str(sync).lower()}\n\n'
        f'{extra}\n[[lora]]\nbroker = "{url}"\napplication_ids = ["{app}"]\n'
        f'format = "{fmt}"\nclient_id = "{client_id}"\n'
        f'session_expiry_s = 300\n\n{_devices_toml(sensors)}', encoding="utf-8")
    return path


def private_broker(directory: Path) -> PrivateMosquitto:
    """A Mosquitto of the benchmark's own that queues any number of messages for a session.

    Its config is the default one (20 messages in flight per client) but for
    ``max_queued_messages 0``: the default 1,000 would drop most of a pre-published backlog.
    """
    binary = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin")
    if binary is None:
        raise RuntimeError("the mosquitto binary is not installed")
    broker = PrivateMosquitto(binary, directory,
                              extra="max_queued_messages 0\nautosave_interval 3600\n")
    broker.start()
    return broker


def _client(url: str, client_id: str) -> paho.Client:
    host, port, _ = parse_broker_url(url)
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=paho.MQTTv5)
    client.max_inflight_messages_set(200)
    client.connect(host, port, clean_start=False, properties=_session_properties())
    return client


def _session_properties() -> Properties:
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 300
    return properties


def make_session(url: str, client_id: str, app: str) -> None:
    """A persistent session under ``client_id``, subscribed QoS 1 to ``app``'s events."""
    client = _client(url, client_id)
    subscribed = threading.Event()
    client.on_subscribe = lambda *_: subscribed.set()
    client.subscribe(f"application/{app}/device/+/event/+", qos=1)
    client.loop_start()
    if not subscribed.wait(10):
        raise ConnectionError("no SUBACK from the broker")
    client.disconnect()
    client.loop_stop()


def publish_all(url: str, messages: list[Message]) -> None:
    """Publish every message QoS 1, without waiting for each PUBACK; return once all are in."""
    client = _client(url, f"bench-pub-{uuid.uuid4().hex[:10]}")
    client.loop_start()
    infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(60)
    client.disconnect()
    client.loop_stop()


class BareSubscriber:
    """A plain paho client resuming a session, QoS 1 with paho's automatic acks.

    It does nothing with the messages: the broker and transport ceiling.
    """

    def __init__(self, url: str, client_id: str, expected: int) -> None:
        self.expected = expected
        self.received = 0
        self.connected_at = 0.0
        self.done_at = 0.0
        self.done = threading.Event()
        self._client = _client(url, client_id)
        self._client.on_connect = self._connected
        self._client.on_message = self._message

    def run(self, timeout_s: float = 120) -> float:
        """Receive the whole backlog; messages/s from CONNACK to the last message."""
        self._client.loop_start()
        try:
            if not self.done.wait(timeout_s):
                raise RuntimeError(f"bare subscriber got {self.received} of {self.expected}")
        finally:
            self._client.disconnect()
            self._client.loop_stop()
        return self.expected / (self.done_at - self.connected_at)

    def _connected(self, *_: object) -> None:
        self.connected_at = time.monotonic()

    def _message(self, _client: paho.Client, _userdata: object,
                 _message: paho.MQTTMessage) -> None:
        self.received += 1
        if self.received == self.expected:
            self.done_at = time.monotonic()
            self.done.set()
