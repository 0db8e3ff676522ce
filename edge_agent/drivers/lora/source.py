"""A ChirpStack v4 MQTT integration as a record source: uplinks in, downlinks out.

Each event message becomes records through the sensor's LoRa profile: ``up`` → readings
(with the uplink's RSSI and SNR), ``status`` → battery and link margin, ``join`` and
downlink ``ack``/``txack`` → events, ``log`` → counters. The message is acknowledged to the
broker only once the outbox has committed its records together with its delivery key, so a
crash at any point loses nothing and a message delivered again is recognised and dropped.
A sensor silent for 2.5× its profile's uplink interval is ``device.offline`` until it speaks
again; a battery at or below its profile's level raises ``device.battery_low`` once.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import uuid
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from paho.mqtt.enums import MQTTErrorCode

from edge_agent.codecs.chirpstack import ChirpstackEvent, decode_event, encode_downlink
from edge_agent.config import LoraConfig, LoraDeviceConfig
from edge_agent.drivers.lora.mqtt import BrokerSettings, Delivery, MqttSession
from edge_agent.errors import CodecError, ConfigError, EdgeError
from edge_agent.profiles import LoraProfile
from edge_agent.records import Event, Reading, RecordSink, now_ms

__all__ = ["OFFLINE_AFTER_INTERVALS", "AckingSink", "LoraSource", "SensorHealth"]

log = logging.getLogger("edge_agent.lora")

#: A sensor is offline after this many expected uplink intervals without one.
OFFLINE_AFTER_INTERVALS = 2.5
#: Delivery keys remembered in memory (the outbox keeps as many).
_SEEN = 100_000
_MALFORMED_LOG_PERIOD_MS = 60_000
_TRACKED_DOWNLINKS = 1000


class AckingSink(RecordSink, Protocol):
    """A record sink that also runs a callback once a message's records are durable."""

    def put_delivered(self, keys: list[str], on_durable: Callable[[], object]) -> None:
        """``on_durable`` after the records queued so far, and ``keys``, are on disk."""


@dataclass(slots=True)
class SensorHealth:
    """What the gateway knows of one sensor, for the status file."""

    config: LoraDeviceConfig
    profile: LoraProfile
    last_seen_ms: int
    online: bool = True
    uplinks: int = 0
    decode_errors: int = 0
    f_cnt: int | None = None
    rssi: float | None = None
    battery_low: bool = False
    application_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON for the status file."""
        return {"name": self.config.name, "dev_eui": self.config.dev_eui,
                "profile": self.profile.id, "online": self.online,
                "last_seen_ms": self.last_seen_ms, "uplinks": self.uplinks,
                "decode_errors": self.decode_errors, "f_cnt": self.f_cnt, "rssi": self.rssi,
                "battery_low": self.battery_low}


@dataclass(slots=True)
class _Counters:
    messages: int = 0
    duplicates: int = 0
    malformed: int = 0
    unknown_devices: int = 0
    decode_errors: int = 0
    logs: collections.Counter[str] = field(default_factory=collections.Counter)


class LoraSource:
    """One ``[[lora]]`` section: its broker session, its sensors, their health."""

    def __init__(self, config: LoraConfig, profiles: dict[str, LoraProfile], sink: AckingSink,
                 *, gateway_id: str, delivered: Iterable[str] = (),
                 spectator: bool = False) -> None:
        """``spectator``: a short session of its own (``lora listen``), leaving the agent's
        persistent session and its messages alone."""
        self.config = config
        self.sink = sink
        start = now_ms()
        self.sensors = {d.dev_eui: SensorHealth(d, profiles[d.profile], start)
                        for d in config.devices}
        self._by_name = {s.config.name: s for s in self.sensors.values()}
        self.counters = _Counters()
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict(
            (key, None) for key in delivered)
        self._unknown: set[str] = set()
        self._warned: set[tuple[str, str]] = set()
        self._malformed_logged_ms = 0
        #: The state of the latest downlinks, by id: queued, sent, (not) acknowledged.
        self.downlinks: collections.OrderedDict[str, str] = collections.OrderedDict()
        client_id = config.client_id or f"ponton-{gateway_id}-{config.name}"
        settings = BrokerSettings(
            url=config.broker, username=config.username, password=config.password,
            client_id=f"{client_id}-listen-{uuid.uuid4().hex[:6]}" if spectator else client_id,
            ca_file=config.ca_file, protocol=config.protocol, persistent=not spectator,
            session_expiry_s=config.session_expiry_s)
        topics = [f"application/{app}/device/+/event/+" for app in config.application_ids]
        self.session = MqttSession(settings, topics, self._handle_batch)

    async def run(self) -> None:
        """Receive until cancelled, watching for silent sensors; then disconnect."""
        self.session.start()
        try:
            while True:
                await asyncio.sleep(1.0)
                self.check_silence(now_ms())
        finally:
            await self.session.close()

    async def send_downlink(self, device: str, f_port: int, data: bytes,
                            confirmed: bool = False, *, wait: bool = False) -> str:
        """Queue a downlink for ``device`` through ChirpStack; its id, tracked in acks.

        ``wait``: until the broker has it (a command that disconnects right after).
        """
        sensor = self._by_name.get(device)
        if sensor is None:
            raise ConfigError(f"no LoRa device named {device!r} in source {self.config.name}")
        application = (sensor.config.application_id or sensor.application_id
                       or self._only_application(device))
        ident, payload = encode_downlink(sensor.config.dev_eui, f_port, data,
                                         confirmed=confirmed, fmt=self.config.format)
        topic = f"application/{application}/device/{sensor.config.dev_eui}/command/down"
        queued = self.session.publish(topic, payload)
        if queued.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise EdgeError(f"downlink to {device}: the broker connection is not usable "
                            f"({queued.rc.name})")
        if wait:
            await asyncio.to_thread(queued.wait_for_publish, 10)
        self._track(ident, "queued")
        log.info("downlink %s to %s: fPort %d, %d bytes%s", ident, device, f_port, len(data),
                 ", confirmed" if confirmed else "")
        return ident

    @property
    def device_names(self) -> set[str]:
        """The names of this source's sensors."""
        return set(self._by_name)

    def still_offline(self, names: Collection[str]) -> None:
        """Sensors announced offline before a restart: their next uplink announces them back."""
        for sensor in self.sensors.values():
            if sensor.config.name in names:
                sensor.online = False

    def _only_application(self, device: str) -> str:
        if len(self.config.application_ids) == 1:
            return self.config.application_ids[0]
        raise ConfigError(f"LoRa device {device}: set application_id, the source has several")

    def check_silence(self, now: int) -> None:
        """``device.offline`` for every sensor silent past its allowance."""
        for sensor in self.sensors.values():
            allowance_ms = sensor.profile.uplink_interval_s * OFFLINE_AFTER_INTERVALS * 1000
            if sensor.online and now - sensor.last_seen_ms > allowance_ms:
                sensor.online = False
                self.sink.put_event(Event("device.offline", sensor.config.name, now, {
                    "reason": f"no uplink for {(now - sensor.last_seen_ms) / 1000:.0f} s",
                    "expected_interval_s": sensor.profile.uplink_interval_s}))
                log.warning("LoRa sensor %s silent for %.0f s (expects one every %.0f s)",
                            sensor.config.name, (now - sensor.last_seen_ms) / 1000,
                            sensor.profile.uplink_interval_s)

    def report(self) -> dict[str, Any]:
        """The source's health for the status file."""
        counters = self.counters
        return {"name": self.config.name, "broker": self.config.broker,
                "connected": self.session.connected.is_set(), "protocol": self.session.protocol,
                "messages": counters.messages, "duplicates": counters.duplicates,
                "malformed": counters.malformed, "unknown_devices": counters.unknown_devices,
                "decode_errors": counters.decode_errors, "logs": dict(counters.logs),
                "downlinks": dict(collections.Counter(self.downlinks.values())),
                "last_error": self.session.last_error,
                "sensors": [s.as_dict() for s in self.sensors.values()]}

    def _handle_batch(self, batch: list[Delivery]) -> None:
        for delivery in batch:
            self.counters.messages += 1
            keys = self._handle(delivery)
            self.sink.put_delivered(keys, functools.partial(self.session.ack, delivery))

    def _handle(self, delivery: Delivery) -> list[str]:
        """Queue the records of one message; the delivery keys to commit with them."""
        try:
            event = decode_event(delivery.topic, delivery.payload, self.config.format)
        except CodecError as exc:
            self.counters.malformed += 1
            now = now_ms()
            if now - self._malformed_logged_ms >= _MALFORMED_LOG_PERIOD_MS:
                self._malformed_logged_ms = now
                log.warning("malformed message on %s: %s (%d malformed so far; at most one "
                            "such line a minute)", delivery.topic[:120], exc,
                            self.counters.malformed)
            return []
        sensor = self.sensors.get(event.dev_eui)
        if sensor is None:
            self.counters.unknown_devices += 1
            if event.dev_eui not in self._unknown:
                self._unknown.add(event.dev_eui)
                log.warning("uplinks from unknown DevEUI %s (application %s): add it under "
                            "[[lora.devices]] to keep its data", event.dev_eui,
                            event.application_id)
            return []
        key = f"{event.event}:{event.dev_eui}:{event.key}" if event.key else None
        if key is not None and key in self._seen:
            self.counters.duplicates += 1
            return []
        self._records(sensor, event)
        if key is None:
            return []
        self._seen[key] = None
        if len(self._seen) > _SEEN:
            self._seen.popitem(last=False)
        return [key]

    def _records(self, sensor: SensorHealth, event: ChirpstackEvent) -> None:
        name = sensor.config.name
        ts = event.ts_ms or now_ms()
        sensor.application_id = event.application_id
        if event.event == "log":
            self.counters.logs[event.code or "UNKNOWN"] += 1
            if event.level == "ERROR":
                self._warn_once(name, event.code or "", f"ChirpStack log for {name}: "
                                f"{event.code} {event.description}")
            return
        self._heard(sensor, ts)
        if event.event == "up":
            self._uplink(sensor, event, ts)
        elif event.event == "status":
            readings = [Reading(name, "link_margin", ts, float(event.margin or 0))]
            if event.battery_level is not None:
                readings.append(Reading(name, "battery", ts, event.battery_level))
            self._put(sensor, readings)
        elif event.event == "join":
            self.sink.put_event(Event("lora.join", name, ts, {"dev_addr": event.dev_addr}))
        elif event.event in ("ack", "txack"):
            self._downlink_confirmed(name, event, ts)

    def _uplink(self, sensor: SensorHealth, event: ChirpstackEvent, ts: int) -> None:
        name = sensor.config.name
        sensor.uplinks += 1
        sensor.f_cnt = event.f_cnt
        sensor.rssi = event.rssi
        readings = []
        if event.f_port:
            try:
                values = sensor.profile.decode(event.f_port, event.data, event.object)
            except CodecError as exc:
                sensor.decode_errors += 1
                self.counters.decode_errors += 1
                self._warn_once(name, "decode", f"LoRa sensor {name} (fCnt {event.f_cnt}, "
                                f"fPort {event.f_port}, {event.data.hex()[:64]}): {exc}")
                values = []
            readings = [Reading(name, v.quantity, ts, v.value) for v in values]
        if event.rssi is not None:
            readings.append(Reading(name, "rssi", ts, event.rssi))
        if event.snr is not None:
            readings.append(Reading(name, "snr", ts, event.snr))
        self._put(sensor, readings)

    def _put(self, sensor: SensorHealth, readings: list[Reading]) -> None:
        if readings:
            self.sink.put_readings(readings)
        low = sensor.profile.battery_low
        if low is None:
            return
        for reading in readings:
            if reading.quantity != low.quantity:
                continue
            is_low = reading.value <= low.level
            if is_low != sensor.battery_low:
                sensor.battery_low = is_low
                kind = "device.battery_low" if is_low else "device.battery_ok"
                self.sink.put_event(Event(kind, sensor.config.name, reading.ts_ms, {
                    "quantity": low.quantity, "value": reading.value, "level": low.level}))

    def _heard(self, sensor: SensorHealth, ts: int) -> None:
        sensor.last_seen_ms = max(sensor.last_seen_ms, now_ms())
        if not sensor.online:
            sensor.online = True
            self.sink.put_event(Event("device.online", sensor.config.name, ts, {}))
            log.info("LoRa sensor %s is heard again", sensor.config.name)

    def _downlink_confirmed(self, name: str, event: ChirpstackEvent, ts: int) -> None:
        ident = event.queue_item_id or ""
        if event.event == "txack":
            self._track(ident, "sent")
            kind, attrs = "lora.downlink_sent", {"id": ident, "f_cnt_down": event.f_cnt_down}
        else:
            self._track(ident, "acknowledged" if event.acknowledged else "not acknowledged")
            kind, attrs = "lora.downlink_acked", {"id": ident, "acknowledged": event.acknowledged,
                                                  "f_cnt_down": event.f_cnt_down}
        self.sink.put_event(Event(kind, name, ts, attrs))

    def _track(self, ident: str, state: str) -> None:
        self.downlinks[ident] = state
        self.downlinks.move_to_end(ident)
        if len(self.downlinks) > _TRACKED_DOWNLINKS:
            self.downlinks.popitem(last=False)

    def _warn_once(self, scope: str, what: str, message: str) -> None:
        """One log line per (scope, kind of problem): garbage must not flood the log."""
        if (scope, what) not in self._warned:
            self._warned.add((scope, what))
            log.warning("%s (logged once; see the counters in status)", message)
