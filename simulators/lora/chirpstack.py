"""A ChirpStack v4 MQTT integration, simulated: it publishes device events as ChirpStack does.

Topics ``application/<app>/device/<DevEUI>/event/<type>``, QoS 1, JSON (protobuf JSON
mapping with every top-level field) or binary protobuf. Each uplink has a fresh
``deduplicationId``, a frame counter per device and one gateway's rxInfo.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.drivers.lora.mqtt import parse_broker_url
from simulators.lora.payloads import build_payload

__all__ = ["ChirpstackPublisher", "SimulatedSensor"]


@dataclass(slots=True)
class SimulatedSensor:
    """A sensor of the simulated network: its name in the gateway file, DevEUI and profile."""

    name: str
    dev_eui: str
    profile: str
    f_cnt: int = 0


class ChirpstackPublisher:
    """Publishes the events of ``application_id`` to the broker at ``broker_url``."""

    def __init__(self, broker_url: str, application_id: str,
                 fmt: Literal["json", "protobuf"] = "json") -> None:
        self.application_id = application_id
        self.fmt = fmt
        self.published = 0
        host, port, _ = parse_broker_url(broker_url)
        self._client = paho.Client(CallbackAPIVersion.VERSION2,
                                   client_id=f"chirpstack-sim-{uuid.uuid4().hex[:8]}")
        self._connected = connected = threading.Event()
        # Not through ``self``: a cycle would leave the client, and the socket pair paho
        # closes when it is collected, to the garbage collector's order (a ResourceWarning).
        self._client.on_connect = lambda *_: connected.set()
        self._client.connect(host, port)
        self._client.loop_start()
        if not self._connected.wait(10):
            raise ConnectionError(f"no CONNACK from {broker_url}")

    def close(self) -> None:
        """Wait for every message to reach the broker, then disconnect."""
        self._client.disconnect()
        self._client.loop_stop()

    def uplink(self, sensor: SimulatedSensor, values: dict[str, float], *,
               time: datetime | None = None) -> dict[str, Any]:
        """Publish one uplink carrying ``values``; the event body sent."""
        f_port, data = build_payload(sensor.profile, values)
        return self.uplink_bytes(sensor, f_port, data, time=time)

    def uplink_bytes(self, sensor: SimulatedSensor, f_port: int, data: bytes, *,
                     time: datetime | None = None) -> dict[str, Any]:
        """Publish one uplink with a raw payload (a hostile one, say)."""
        topic, payload, body = self.uplink_message(sensor, f_port, data, time=time)
        self.raw(topic, payload)
        return body

    def uplink_message(self, sensor: SimulatedSensor, f_port: int, data: bytes, *,
                       time: datetime | None = None) -> tuple[str, bytes, dict[str, Any]]:
        """The topic, encoded payload and body of the sensor's next uplink, not published.

        Benchmarks build their traffic ahead of time and publish it at full speed.
        """
        sensor.f_cnt += 1
        body = self._header(sensor, time) | {
            "devAddr": sensor.dev_eui[-8:], "adr": True, "dr": 5, "fCnt": sensor.f_cnt,
            "fPort": f_port, "confirmed": False, "data": base64.b64encode(data).decode(),
            "rxInfo": [{"gatewayId": "0016c001f153a14c", "uplinkId": sensor.f_cnt,
                        "rssi": -70 - sensor.f_cnt % 30, "snr": 7.5, "crcStatus": "CRC_OK"}],
            "txInfo": {"frequency": 868100000},
        }
        return self.topic(sensor.dev_eui, "up"), self._encode("up", body), body

    def status(self, sensor: SimulatedSensor, battery: float, margin: int = 10) -> None:
        """Publish a device-status answer (battery %, link margin)."""
        self.event(sensor.dev_eui, "status", self._header(sensor, None) | {
            "margin": margin, "externalPowerSource": False, "batteryLevelUnavailable": False,
            "batteryLevel": battery})

    def join(self, sensor: SimulatedSensor) -> None:
        """Publish a join (an OTAA device restarts its frame counter)."""
        sensor.f_cnt = 0
        self.event(sensor.dev_eui, "join", self._header(sensor, None) | {
            "devAddr": sensor.dev_eui[-8:]})

    def downlink_delivered(self, sensor: SimulatedSensor, queue_item_id: str, *,
                           acknowledged: bool = True) -> None:
        """Publish what ChirpStack sends for a queued downlink: txack, then the device's ack."""
        header = self._header(sensor, None)
        self.event(sensor.dev_eui, "txack", {
            "downlinkId": 1, "time": header["time"], "deviceInfo": header["deviceInfo"],
            "queueItemId": queue_item_id, "fCntDown": 7, "gatewayId": "0016c001f153a14c"})
        self.event(sensor.dev_eui, "ack", header | {
            "queueItemId": queue_item_id, "acknowledged": acknowledged, "fCntDown": 7})

    def event(self, dev_eui: str, event: str, body: dict[str, Any]) -> None:
        """Publish ``body`` as ``event`` of ``dev_eui`` in the configured format."""
        self.raw(self.topic(dev_eui, event), self._encode(event, body))

    def topic(self, dev_eui: str, event: str) -> str:
        """Where ChirpStack publishes ``event`` of ``dev_eui``."""
        return f"application/{self.application_id}/device/{dev_eui}/event/{event}"

    def raw(self, topic: str, payload: bytes) -> None:
        """Publish anything on any topic, QoS 1, and wait until the broker has it."""
        self._client.publish(topic, payload, qos=1).wait_for_publish(10)
        self.published += 1

    def _header(self, sensor: SimulatedSensor, time: datetime | None) -> dict[str, Any]:
        moment = (time or datetime.now(UTC)).isoformat(timespec="microseconds")
        return {"deduplicationId": str(uuid.uuid4()), "time": moment,
                "deviceInfo": {"tenantId": "52f14cd4-c6f1-4fbd-8f87-4025e1d49242",
                               "tenantName": "Ponton", "applicationId": self.application_id,
                               "applicationName": "simulated",
                               "deviceProfileName": sensor.profile, "deviceName": sensor.name,
                               "devEui": sensor.dev_eui, "tags": {}}}

    def _encode(self, event: str, body: dict[str, Any]) -> bytes:
        if self.fmt == "json":
            return json.dumps(body).encode()
        from chirpstack_api import integration  # noqa: PLC0415
        from google.protobuf.json_format import ParseDict  # noqa: PLC0415

        message_type = {"up": integration.UplinkEvent, "status": integration.StatusEvent,
                        "join": integration.JoinEvent, "ack": integration.AckEvent,
                        "txack": integration.TxAckEvent, "log": integration.LogEvent}[event]
        message = ParseDict(body, message_type(), ignore_unknown_fields=True)
        return bytes(message.SerializeToString())
