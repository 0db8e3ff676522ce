"""The running gateway: buses → record buffer → outbox → hub, under one TaskGroup.

Buses hand records to a buffer without blocking; one writer task drains the buffer into the
outbox, so every poll cycle that completed while the previous write was on disk goes into the
next single transaction. Once the gateway is provisioned (``identity.json``), the sync loop
pushes the outbox to the hub; ``alarm.*`` events go to the alarms stream and wake it, so they
leave at once. A stop request (SIGTERM) abandons the sync's request in flight (pushes are
idempotent), lets each bus finish its transaction in flight and close its port, then the
writer flushes what is left before the outbox closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_agent.buffer import RecordBuffer
from edge_agent.config import GatewayConfig
from edge_agent.device_state import STATE_FILE as DEVICES_STATE_FILE
from edge_agent.device_state import OfflineDevices
from edge_agent.drivers.modbus.bus import ModbusBus
from edge_agent.drivers.modbus.device import PolledDevice
from edge_agent.drivers.modbus.link import ModbusLink
from edge_agent.durable import replace_atomically
from edge_agent.errors import ConfigError, ControlError, EdgeError, StoreError
from edge_agent.health_reports import report_health
from edge_agent.overload import Lateness
from edge_agent.parking.service import CarParkService
from edge_agent.private import make_private_dir, open_private
from edge_agent.records import now_ms
from edge_agent.rules.service import RuleService
from edge_agent.store import Outbox
from edge_agent.sync.bundles import BundleStore
from edge_agent.sync.identity import Identity, load_identity, not_provisioned

if TYPE_CHECKING:
    from edge_agent.access.control import serve_control
    from edge_agent.access.controller import AccessController
    from edge_agent.access.engine import AccessEngine
    from edge_agent.access.readers import build_readers
    from edge_agent.codecs.bundle import VerifiedBundle
    from edge_agent.drivers.lora.source import LoraSource
    from edge_agent.drivers.tic import TicLine
    from edge_agent.sync.client import HubClient
    from edge_agent.sync.loop import SyncLoop, declared_devices
    from edge_agent.sync.pull import BundlePuller
else:  # what the configuration does not use is never imported (edge_agent/features.py)
    from edge_agent.features import (
        AccessController,
        AccessEngine,
        BundlePuller,
        HubClient,
        LoraSource,
        SyncLoop,
        TicLine,
        build_readers,
        declared_devices,
        serve_control,
    )

__all__ = [
    "BUNDLES_DIR",
    "LOCK_FILE",
    "OUTBOX_FILE",
    "STATUS_FILE",
    "Gateway",
    "build_buses",
    "exclusive",
    "lock_is_held",
    "stats_as_dict",
    "write_json_atomically",
]

log = logging.getLogger("edge_agent.runtime")

OUTBOX_FILE = "outbox.sqlite"
#: Where the verified signed bundles (configuration, policy) are kept.
BUNDLES_DIR = "bundles"
LOCK_FILE = "agent.lock"
STATUS_FILE = "status.json"
_STATUS_PERIOD_S = 2.0
_MAX_WRITE_BACKOFF_S = 30.0
#: Longest wait for more readings before a write; events do not wait.
_GATHER_READINGS_S = 1.0
#: Tries at writing what is left once the buses have stopped, before giving up loudly.
_FINAL_WRITE_ATTEMPTS = 3


def build_buses(config: GatewayConfig, sink: RecordBuffer) -> list[ModbusBus]:
    """One bus per configured line, each with its devices' read plans."""
    buses, lateness = [], Lateness(sink.put_event)
    for bus_config in config.buses:
        line = bus_config.link_settings()
        devices = [
            PolledDevice.from_profile(
                device.name, device.unit, config.profile_of(device),
                interval_s=device.interval_s, quantities=device.quantities,
                min_silence_ms=device.min_silence_ms, line=line,
            )
            for device in config.devices if device.bus == bus_config.name
        ]
        buses.append(ModbusBus(ModbusLink(line), devices, sink, policy=bus_config.policy(),
                               backpressure=sink, lateness=lateness))
    return buses


class Gateway:
    """One gateway process: owns the outbox, the buses and the status file."""

    def __init__(self, config: GatewayConfig, config_path: Path | None = None) -> None:
        self.config = config
        #: The gateway file, named in the hints the agent logs.
        self.config_path = config_path
        self.data_dir = config.gateway.data_dir
        self.buffer = RecordBuffer()
        self.buses = build_buses(config, self.buffer)
        #: One line per Linky of ``[[tic]]``.
        self.tic_lines = [TicLine(tic.settings(), self.buffer) for tic in config.tic]
        self._started_ms = now_ms()
        #: Set once every bus has stopped: the writer and the status task finish their work.
        self._drained = asyncio.Event()
        #: The push loop, while the gateway runs provisioned with sync enabled.
        self.sync: SyncLoop | None = None
        #: Why there is no push loop, for the status file.
        self._sync_note = ""
        #: Readers, gates and pedestals, when the configuration has any.
        self.access: AccessController | None = None
        #: The ChirpStack integrations (``[[lora]]``), built once the outbox is open.
        self.lora: list[LoraSource] = []
        #: Edge rules: thresholds, rates, staleness → alarms and local actions.
        self.rules = RuleService(config, self.buses, self.buffer.put_event, self.data_dir)
        #: Car-park occupancy (``[[car_parks]]``); signs are latches held by the rules' executor.
        self.car_parks = CarParkService(config.car_parks, self.rules.executor,
                                        self.buffer.put_readings, self.buffer.put_event,
                                        self.data_dir)
        self.rules.hold_latches(self.car_parks.held_latches, self.car_parks.sign_boards())
        #: Set once the outbox is open and every task started (systemd's READY=1).
        self.started = asyncio.Event()
        #: The status last written to ``status.json``: what /metrics shows (edge_agent/metrics.py).
        self.last_status: dict[str, Any] | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Poll and store until ``stop`` is set, then flush and close everything."""
        make_private_dir(self.data_dir)
        with exclusive(self.data_dir / LOCK_FILE):
            await self._run_locked(stop)

    async def _run_locked(self, stop: asyncio.Event) -> None:
        quota = int(self.config.outbox.quota_mb * 1024 * 1024)
        outbox = await asyncio.to_thread(Outbox.open, self.data_dir / OUTBOX_FILE,
                                         quota_bytes=quota)
        log.info("gateway %s started: %d buses, %d devices, outbox %s",
                 self.config.gateway.id, len(self.buses),
                 sum(len(bus.devices) for bus in self.buses), self.data_dir / OUTBOX_FILE)
        client = None
        try:
            identity = await self._load_identity()
            client = self._hub_client(identity)
            bundles = self._bundle_store(identity)
            self.access = await self._access_controller(identity, bundles)
            self.lora = await asyncio.to_thread(self._lora_sources, outbox)
            await self._start_observers(bundles)
            async with asyncio.TaskGroup() as group:
                access_tasks = self._start_access(group)
                access_tasks += [group.create_task(source.run(), name=f"lora[{source.config.name}]")
                                 for source in self.lora]
                access_tasks.append(group.create_task(self.rules.run(
                    self.access.outputs_off.wait if self.access is not None else None),
                    name="rules"))
                tic_tasks = [group.create_task(line.run(), name=f"tic[{line.name}]")
                             for line in self.tic_lines]
                access_tasks.append(group.create_task(self.car_parks.run(), name="car-parks"))
                access_tasks.append(group.create_task(report_health(
                    self.buses, self.buffer.put_event, self.config.sync.health_interval_s),
                    name="health"))
                spread = min((d.interval_s for bus in self.buses for d in bus.devices),
                             default=0.0)
                bus_tasks = [
                    # Buses start spread over the shortest interval, as devices on one bus
                    # do, so 200 one-meter TCP buses do not all poll in the same instant.
                    group.create_task(bus.run(start_offset_s=spread * index / len(self.buses)),
                                      name=f"modbus[{bus.name}]")
                    for index, bus in enumerate(self.buses)
                ]
                group.create_task(self._write_until_drained(outbox), name="writer")
                group.create_task(self._publish_status(outbox), name="status")
                if client is not None and bundles is not None:
                    puller = BundlePuller(client, bundles, self.config.sync.bundle_interval_s,
                                          on_accept=self._bundle_accepted)
                    self.sync = SyncLoop(outbox, client, self.config.sync,
                                         devices=declared_devices(self.config), puller=puller)
                    group.create_task(self.sync.run(stop), name="sync")
                self.started.set()
                await stop.wait()
                log.info("stopping: finishing transactions in flight")
                for task in access_tasks:
                    # No new relay command once the buses are stopping; LoRa messages not
                    # yet on disk stay unacknowledged and come again at the next start.
                    task.cancel()
                for task in tic_tasks:
                    task.cancel()  # a TIC line only reads: nothing in flight to finish
                for bus in self.buses:
                    bus.stop()
                await asyncio.gather(*bus_tasks)
                self._drained.set()
                self.buffer.ready.set()
                self.buffer.urgent.set()
        finally:
            self._drained.set()  # also on a crash: the status file must not claim we run
            with contextlib.suppress(EdgeError, OSError):
                await asyncio.to_thread(self._write_status, outbox)
            if client is not None:
                await client.aclose()
            await asyncio.to_thread(outbox.close)
        log.info("gateway %s stopped; outbox closed", self.config.gateway.id)

    async def _start_observers(self, bundles: BundleStore | None) -> None:
        """What watches records before they are written: device announcements, rules and
        car parks, each started from its saved state."""
        offline = await asyncio.to_thread(self._offline_devices)
        self.buffer.event_observers.append(offline.observe)
        if self.lora:
            self.rules.executor.send_downlink = self._send_downlink
        await self.rules.start(bundles)
        self.buffer.observers.append(self.rules.observe)
        await self.car_parks.start()
        self.buffer.observers.append(self.car_parks.observe)

    def _offline_devices(self) -> OfflineDevices:
        """The devices announced offline before this start, marked offline again."""
        drivers: list[ModbusBus | LoraSource] = [*self.buses, *self.lora]
        names = {d.name for bus in self.buses for d in bus.devices} | {
            name for source in self.lora for name in source.device_names}
        offline = OfflineDevices(self.data_dir / DEVICES_STATE_FILE, names)
        for driver in drivers:
            driver.still_offline(offline.since_ms)
        return offline

    def _lora_sources(self, outbox: Outbox) -> list[LoraSource]:
        """One source per ``[[lora]]`` section, knowing the messages already stored."""
        if not self.config.lora:
            return []
        profiles = self.config.lora_profiles()
        delivered = outbox.recent_deliveries()
        return [LoraSource(section, {s.profile: profiles[s.profile] for s in section.devices},
                           self.buffer, gateway_id=self.config.gateway.id, delivered=delivered)
                for section in self.config.lora]

    async def _send_downlink(self, device: str, f_port: int, data: bytes,
                             confirmed: bool) -> None:
        """A rule's downlink, through the source that knows ``device``."""
        for source in self.lora:
            if device in source.device_names:
                await source.send_downlink(device, f_port, data, confirmed)
                return
        raise ConfigError(f"no [[lora]] source has a device named {device!r}")

    def _bundle_store(self, identity: Identity | None) -> BundleStore | None:
        """The signed bundles in ``<data_dir>/bundles``, checked with the pinned hub key."""
        if identity is None:
            return None
        return BundleStore(self.data_dir / BUNDLES_DIR, identity.signing_public_key,
                           identity.territory)

    def _bundle_accepted(self, bundle: VerifiedBundle) -> None:
        if bundle.kind == "policy" and self.access is not None:
            self.access.engine.install_bundle(bundle)
        if bundle.kind == "config":
            self.rules.install_bundle(bundle)

    async def _access_controller(self, identity: Identity | None,
                                 bundles: BundleStore | None) -> AccessController | None:
        """The readers, gates and pedestals of the configuration, with the policy held."""
        config = self.config
        if not (config.readers or config.gates or config.pedestals):
            return None
        engine = AccessEngine(identity.badge_key if identity is not None else None)
        if bundles is not None:
            await asyncio.to_thread(engine.reload, bundles)
        else:
            engine.problem = "gateway not provisioned: every badge is denied"
        readers = build_readers(config)
        access = AccessController(config, self.buses, engine, self.buffer.put_event, readers,
                                  self.data_dir)
        self.buffer.observers.append(access.observe)
        return access

    def _start_access(self, group: asyncio.TaskGroup) -> list[asyncio.Task[None]]:
        access = self.access
        if access is None:
            return []

        async def handle(request: dict[str, Any]) -> dict[str, Any]:
            if request.get("command") != "open" or not isinstance(request.get("gate"), str):
                raise ControlError('commands: {"command": "open", "gate": NAME}')
            decision = await access.open_manually(request["gate"])
            return {"granted": decision.granted, "reason": str(decision.reason)}

        return [group.create_task(access.run(), name="access"),
                group.create_task(serve_control(self.data_dir, handle), name="control")]

    async def _load_identity(self) -> Identity | None:
        """The gateway's enrollment, None when there is none (logged once, noted for status).

        A damaged identity file stops the sync and the policy, not the polling: records keep
        going to the outbox, and the status file says what is wrong.
        """
        try:
            identity = await asyncio.to_thread(load_identity, self.data_dir)
        except ConfigError as exc:
            self._sync_note = f"no sync: {exc}"
            log.error("%s; records stay in the outbox", self._sync_note)
            return None
        if identity is None:
            self._sync_note = not_provisioned(self.config_path)
            log.warning("%s; records stay in the outbox until then", self._sync_note)
        return identity

    def _hub_client(self, identity: Identity | None) -> HubClient | None:
        """A client for the hub of ``identity``; None without sync."""
        if identity is None:
            return None
        if not self.config.sync.enabled:
            self._sync_note = "sync disabled in the configuration"
            log.info("%s: records stay in the outbox", self._sync_note)
            return None
        log.info("gateway %s of %s/%s syncs to %s%s", identity.gateway, identity.territory,
                 identity.site, identity.hub_url,
                 " in plain HTTP (provisioned with --insecure-http: a test bench only)"
                 if identity.insecure_http else "")
        return HubClient(identity, timeout_s=self.config.sync.timeout_s,
                         tls=identity.tls.overridden_by(self.config.sync))

    async def _write_until_drained(self, outbox: Outbox) -> None:
        """Write batches as they come; after the buses stopped, write the rest and return.

        A failed write keeps its records in the buffer and is retried with backoff; once the
        buses have stopped, a few more tries are made before what is left is reported lost.
        """
        failures = 0
        while True:
            await self.buffer.ready.wait()
            # Gather a second of polls into one durable transaction (an fsync per poll would
            # cost a Raspberry Pi's SD card dearly); events and the final flush go at once.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.buffer.urgent.wait(), _GATHER_READINGS_S)
            try:
                await self._write_pending(outbox)
            except StoreError as exc:
                failures += 1
                if self._drained.is_set() and failures >= _FINAL_WRITE_ATTEMPTS:
                    log.error("outbox not writable at shutdown (%s): %d readings and %d events "
                              "lost", exc, len(self.buffer.readings),
                              len(self.buffer.events) + len(self.buffer.alarms))
                    return
                delay = min(0.5 * 2.0 ** (failures - 1), _MAX_WRITE_BACKOFF_S)
                log.error("outbox write failed (%s); %d records kept in memory, retry in %.1f s",
                          exc, len(self.buffer), delay)
                await asyncio.sleep(delay)
                continue
            failures = 0
            if self._drained.is_set() and not self.buffer:
                return

    async def _write_pending(self, outbox: Outbox) -> None:
        """Write everything buffered in one transaction, then run the durable callbacks."""
        buffer = self.buffer
        alarms, events = list(buffer.alarms), list(buffer.events)
        readings, deliveries, callbacks = buffer.batch()
        parts = [(stream, records) for stream, records in
                 (("alarms", alarms), ("events", events), ("readings", readings)) if records]
        if parts or deliveries:
            await asyncio.to_thread(outbox.append_many, parts, deliveries=deliveries)
        buffer.written_alarms(len(alarms))
        buffer.written_events(len(events))
        buffer.written_readings(len(readings))
        buffer.written_deliveries(len(deliveries), callbacks)
        if alarms and self.sync is not None:
            self.sync.wake()

    async def _publish_status(self, outbox: Outbox) -> None:
        while True:
            await asyncio.to_thread(self._write_status, outbox)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), _STATUS_PERIOD_S)
            if self._drained.is_set():
                await asyncio.to_thread(self._write_status, outbox)
                return

    def status(self, outbox: Outbox) -> dict[str, Any]:
        """What ``edge-agent status`` shows: device health, outbox depth, the sync's state."""
        stats = outbox.stats()
        return {
            "gateway": self.config.gateway.id,
            "pid": os.getpid(),
            "started_ms": self._started_ms,
            "updated_ms": now_ms(),
            "stopped": self._drained.is_set(),
            "devices": [
                {"name": device.name, "bus": bus.name, "unit": device.unit,
                 "profile": device.profile.id, **device.health.as_dict(),
                 "late": device.health.late + bus.overdue(device)}
                for bus in self.buses for device in bus.devices
            ],
            "streams": [stats_as_dict(s) for s in stats],
            "sync": self.sync.report(stats) if self.sync is not None else
                    {"note": self._sync_note},
            "access": self.access.report() if self.access is not None else None,
            "lora": [source.report() for source in self.lora],
            "rules": self.rules.report(),
            "tic": [line.report() for line in self.tic_lines],
            "car_parks": self.car_parks.report(),
        }

    def _write_status(self, outbox: Outbox) -> None:
        self.last_status = self.status(outbox)
        write_json_atomically(self.data_dir / STATUS_FILE, self.last_status)


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an advisory lock: the outbox has one writer, so one agent per data directory."""
    with os.fdopen(open_private(path), "r+", encoding="utf-8") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            raise ConfigError(f"another edge-agent (pid {lock.read().strip() or '?'}) is already "
                              f"running with {path.parent}; stop it first") from None
        lock.truncate(0)
        lock.write(str(os.getpid()))
        lock.flush()
        yield


def lock_is_held(path: Path) -> bool:
    """Whether an agent holds the data directory's lock (it runs or is starting)."""
    if not path.exists():
        return False
    with path.open("a+", encoding="utf-8") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(lock, fcntl.LOCK_UN)
        return False


def stats_as_dict(stats: Any) -> dict[str, Any]:
    """A stream's statistics as plain JSON data."""
    return {field: getattr(stats, field) for field in stats.__slots__}


def write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` so that readers see the old or the new file, never half of one.

    Compact: json's C encoder does it, where ``indent`` falls back to the Python one.
    """
    replace_atomically(path, json.dumps(data, separators=(",", ":")).encode())
