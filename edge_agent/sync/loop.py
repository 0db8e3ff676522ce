"""The push loop: the outbox drains to the hub, most urgent stream first, and waits otherwise.

A record leaves the outbox only once the hub acknowledged it (docs/sync-protocol.md), and only
through the seq the hub named for that stream and the batch that carried it, so a confused
answer can never delete what the hub does not hold. At start the loop asks the hub what it
already holds, so an answer lost before a restart costs no replay of a whole backlog; one
record is pushed again first, so that an outbox the hub does not know (a replaced file) meets
a sequence conflict instead of losing its first records to another file's marks.

Failures wait with jittered exponential backoff (1 s doubling up to ``max_backoff_s``, full
jitter, ``Retry-After`` honoured) while the hub is unreachable, overloaded or failing. A
refusal that needs a person (a token refused, a sequence conflict) waits the full
``max_backoff_s`` between tries and keeps every record: nothing unacknowledged is ever
deleted, whatever the hub says.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from edge_agent.config import GatewayConfig, SyncSection
from edge_agent.errors import HubRejected, HubUntrusted, StoreError, SyncError
from edge_agent.profiles import RADIO_QUANTITIES
from edge_agent.records import now_ms
from edge_agent.store import Batch, Outbox, StreamStats
from edge_agent.sync.client import DeviceDeclaration, HubClient, PreparedBatch, prepare
from edge_agent.sync.facts import fact_headers
from edge_agent.sync.pull import BundlePuller

__all__ = ["SyncLoop", "SyncState", "backlog_and_lag", "backoff_delay", "declared_devices"]

log = logging.getLogger("edge_agent.sync")

_BASE_BACKOFF_S = 1.0
#: Successful pushes at a halved batch size before the configured size is tried again.
_GROW_BACK_AFTER = 100


@dataclass(slots=True)
class SyncState:
    """Counters of the push loop, published in ``status.json``."""

    hub: str
    last_success_ms: int | None = None
    last_error: str = ""
    last_error_ms: int | None = None
    consecutive_failures: int = 0
    pushed_batches: int = 0
    pushed_records: int = 0
    #: The hub's high-water mark per stream, from its last answer.
    hub_acked: dict[str, int] = field(default_factory=dict)


def backoff_delay(
    failures: int,
    *,
    cap_s: float,
    rng: random.Random,
    base_s: float = _BASE_BACKOFF_S,
    retry_after_s: float | None = None,
) -> float:
    """Seconds to wait after ``failures`` failures in a row: full jitter, exponential, capped.

    Uniform in ``[0, min(cap_s, base_s * 2 ** (failures - 1))]``, so many gateways coming back
    together do not knock at the hub in step; never less than a ``Retry-After`` the hub gave,
    itself bounded by ``cap_s``.
    """
    ceiling = min(cap_s, base_s * 2.0 ** min(max(failures - 1, 0), 62))
    delay = rng.uniform(0.0, ceiling)
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, cap_s))
    return delay


def backlog_and_lag(stats: Sequence[StreamStats], now: int) -> tuple[int, int | None]:
    """Records waiting in every stream, and the age in ms of the oldest (None when empty)."""
    backlog = sum(s.depth for s in stats)
    oldest = min((s.oldest_ts_ms for s in stats if s.depth and s.oldest_ts_ms is not None),
                 default=None)
    return backlog, None if oldest is None else max(0, now - oldest)


def declared_devices(config: GatewayConfig) -> list[DeviceDeclaration]:
    """What the gateway reads, as the hub is told: each device with its quantities."""
    lora = config.lora_profiles()
    return [
        *(DeviceDeclaration(device.name, device.profile,
                            tuple(device.quantities or config.profile_of(device).points))
          for device in config.devices),
        *(DeviceDeclaration(sensor.name, sensor.profile,
                            (*lora[sensor.profile].quantities(), *RADIO_QUANTITIES))
          for source in config.lora for sensor in source.devices),
        # A Linky's labels depend on its contract and mode: its quantities are what it sends.
        *(DeviceDeclaration(line.name, "linky-tic", ()) for line in config.tic),
    ]


class SyncLoop:
    """Pushes one outbox to one hub until stopped; ``wake`` sends what is waiting at once."""

    def __init__(
        self,
        outbox: Outbox,
        client: HubClient,
        settings: SyncSection,
        *,
        devices: Sequence[DeviceDeclaration] = (),
        puller: BundlePuller | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.outbox = outbox
        self.client = client
        self.settings = settings
        self.devices = list(devices)
        self.puller = puller
        self.state = SyncState(hub=client.hub_url)
        self._rng = rng or random.Random()
        self._limit = settings.batch_limit
        self._since_halved = 0
        self._wake = asyncio.Event()
        #: The next batch of a stream being read and encoded while the previous one is sent.
        self._ahead: tuple[asyncio.Task[PreparedBatch | None], str] | None = None

    def wake(self) -> None:
        """Look at the outbox now rather than at the end of the idle wait (an alarm waits)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Push until ``stop`` is set; a request in flight then is abandoned (pushes replay)."""
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self._work(), name="sync.push")]
            if self.puller is not None:
                tasks.append(group.create_task(self.puller.run(), name="sync.bundles"))
            await stop.wait()
            for task in tasks:
                task.cancel()

    async def start(self) -> None:
        """Acknowledge locally what the hub already holds, then declare the devices.

        A declaration the hub refuses as invalid is logged and does not hold records back.
        """
        acked = await self.client.acked()
        self.state.hub_acked = acked
        all_stats = await asyncio.to_thread(self.outbox.stats)
        backlog, lag = backlog_and_lag(all_stats, now_ms())
        for stats in all_stats:
            mark = acked.get(stats.name, 0)
            if mark > stats.last_seq:
                log.error("the hub holds stream %s up to seq %d but this outbox never went past "
                          "seq %d: was the outbox replaced or restored from a backup? Records "
                          "under seqs the hub holds are refused as sequence conflicts",
                          stats.name, mark, stats.last_seq)
            through = min(mark, stats.last_seq)
            if through > stats.acked_seq:
                await self._check_head(stats.name, backlog, lag)
                deleted = await asyncio.to_thread(self.outbox.ack, stats.name, through)
                log.info("the hub already holds %s up to seq %d: %d records removed",
                         stats.name, through, deleted)
        try:
            await self.client.declare_devices(self.devices)
        except HubRejected as exc:
            if exc.status in (401, 429) or exc.status >= 500:
                raise
            # What the gateway reads is for the dashboard: records leave all the same.
            self.state.last_error, self.state.last_error_ms = str(exc), now_ms()
            log.error("the hub refused the device declaration: %s; records are pushed anyway",
                      exc)

    async def _check_head(self, stream: str, backlog: int, lag: int | None) -> None:
        """Push the stream's first waiting record again before trusting the hub's mark.

        The hub holds that seq already, so it answers with a harmless duplicate, or with a
        409 sequence conflict when this outbox is not the one it knows (a replaced file
        starts again from seq 1): then nothing is deleted.
        """
        head = await asyncio.to_thread(self.outbox.next_batch, limit=1, stream=stream)
        if head is not None:
            await self.client.push(head, sent_at_ms=now_ms(), backlog=backlog,
                                   facts=self._facts(lag))

    async def push_next(self) -> int:
        """Push the most urgent batch; how many of its records the hub acknowledged (0: empty).

        While a full batch is on its way, the next one of its stream is read and encoded in a
        thread, so the gateway's work overlaps the hub's (a backlog drains about twice as
        fast); it is dropped if a more urgent stream has records by then or the push fails.
        A batch the hub finds too large (413) goes again at half the size, down to one
        record. SyncError if the hub took the batch but acknowledged only part of it.
        """
        try:
            stats = await asyncio.to_thread(self.outbox.stats)
            backlog, lag = backlog_and_lag(stats, now_ms())
            while True:
                prepared = await self._take_prepared(stats)
                if prepared is None:
                    return 0
                batch = prepared.batch
                if len(batch) == self._limit:
                    self._prefetch(batch)
                try:
                    acked = await self.client.push_prepared(
                        prepared, sent_at_ms=now_ms(), backlog=max(0, backlog - len(batch)),
                        facts=self._facts(lag))
                    break
                except HubRejected as exc:
                    self._drop_prefetched()
                    if exc.status != 413 or len(batch) == 1:
                        raise
                    self._limit, self._since_halved = max(1, len(batch) // 2), 0
                    log.warning("%s; batches now hold at most %d records", exc, self._limit)
        except BaseException:
            self._drop_prefetched()
            raise
        self.state.hub_acked = acked
        self.state.pushed_batches += 1
        if self.puller is not None and self.client.newest_policy is not None:
            self.puller.hint(self.client.newest_policy)
        self._grow_back()
        mark = acked.get(batch.stream, 0)
        through = min(mark, batch.last_seq)
        if through >= batch.first_seq:
            await asyncio.to_thread(self.outbox.ack, batch.stream, through)
        count = max(0, through - batch.first_seq + 1)
        self.state.pushed_records += count
        if through < batch.last_seq:
            self._drop_prefetched()
            raise SyncError(f"the hub took {batch.stream} seq {batch.first_seq} to "
                            f"{batch.last_seq} but acknowledged only up to seq {mark}; "
                            "the records stay in the outbox")
        return count

    def _facts(self, lag_ms: int | None) -> dict[str, str]:
        """The headers telling the hub this agent's version, lag and bundles held."""
        return fact_headers(lag_ms, self.puller.state.held if self.puller is not None else {})

    def _grow_back(self) -> None:
        """After a 413 halved the batches, try the configured size again now and then.

        A proxy's limit would halve them again at the cost of one refused request; a passing
        limit (a hub restarted with a bigger one) is not obeyed for the life of the process.
        """
        if self._limit < self.settings.batch_limit:
            self._since_halved += 1
            if self._since_halved >= _GROW_BACK_AFTER:
                self._limit, self._since_halved = self.settings.batch_limit, 0

    async def _take_prepared(self, stats: Sequence[StreamStats]) -> PreparedBatch | None:
        """The batch read ahead, unless a more urgent stream waits; else the next one."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            task, stream = ahead
            priority = {s.name: s.priority for s in stats}
            if any(s.depth and s.priority < priority.get(stream, 0) for s in stats):
                task.cancel()
            else:
                prepared = await task
                if prepared is not None:
                    return prepared
        return await asyncio.to_thread(self._read_prepared, None, 0)

    def _prefetch(self, batch: Batch) -> None:
        task = asyncio.create_task(asyncio.to_thread(
            self._read_prepared, batch.stream, batch.last_seq), name="sync.read-ahead")
        self._ahead = (task, batch.stream)

    def _drop_prefetched(self) -> None:
        if self._ahead is not None:
            self._ahead[0].cancel()
            self._ahead = None

    def _read_prepared(self, stream: str | None, after_seq: int) -> PreparedBatch | None:
        batch = self.outbox.next_batch(limit=self._limit, stream=stream, after_seq=after_seq)
        return None if batch is None else prepare(batch)

    def report(self, stats: Sequence[StreamStats]) -> dict[str, Any]:
        """The loop's counters with the backlog and lag of ``stats``, for ``status.json``."""
        backlog, lag_ms = backlog_and_lag(stats, now_ms())
        bundles = self.puller.report() if self.puller is not None else None
        return {**dataclasses.asdict(self.state), "backlog": backlog, "lag_ms": lag_ms,
                "oversize_answers": self.client.oversize_answers,
                "bad_version_hints": self.client.bad_version_hints, "bundles": bundles}

    async def _work(self) -> None:
        started = False
        while True:
            self._wake.clear()
            try:
                if not started:
                    await self.start()
                    started = True
                    self._succeeded()
                count = await self.push_next()
            except (SyncError, StoreError) as exc:
                await asyncio.sleep(self._failed(exc))
                continue
            except Exception as exc:  # a bug must not stop the gateway's polling
                log.exception("sync failed unexpectedly; retrying in %.0f s",
                              self.settings.max_backoff_s)
                self._record_failure(f"unexpected {type(exc).__name__}: {exc}")
                await asyncio.sleep(self.settings.max_backoff_s)
                continue
            if count:
                self._succeeded()
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.interval_s)

    def _succeeded(self) -> None:
        state = self.state
        if state.consecutive_failures:
            log.info("hub %s answers again after %d failed tries", state.hub,
                     state.consecutive_failures)
        state.consecutive_failures = 0
        state.last_success_ms = now_ms()

    def _record_failure(self, text: str) -> None:
        self.state.consecutive_failures += 1
        self.state.last_error = text
        self.state.last_error_ms = now_ms()

    def _failed(self, exc: SyncError | StoreError) -> float:
        """Count a failure, say what to do about it, and return the wait before the next try."""
        self._record_failure(str(exc))
        cap = self.settings.max_backoff_s
        failures = self.state.consecutive_failures
        if isinstance(exc, HubRejected):
            if exc.status == 429 or exc.status >= 500:
                delay = backoff_delay(failures, cap_s=cap, rng=self._rng,
                                      retry_after_s=self.client.retry_after_s)
                log.warning("%s; retry in %.1f s", exc, delay)
                return delay
            if exc.status == 401:
                log.error("token refused: re-provision the gateway (edge-agent provision "
                          "--force); %s; records kept, retry in %.0f s", exc, cap)
            elif exc.code == "seq_conflict":
                log.error("SEQUENCE CONFLICT: %s. The hub holds other records under these "
                          "sequence numbers: this outbox was replaced, restored from a backup "
                          "or shared by two gateways. Nothing is deleted; an operator must "
                          "look. Retry in %.0f s", exc, cap)
            else:
                log.error("%s; records kept, retry in %.0f s", exc, cap)
            return cap
        if isinstance(exc, HubUntrusted):
            log.error("%s: fix the CA bundle or the client certificate (edge-agent provision "
                      "--ca-bundle, --client-cert; or [sync] in the config); records kept, "
                      "retry in %.0f s", exc, cap)
            return cap
        delay = backoff_delay(failures, cap_s=cap, rng=self._rng)
        log.warning("%s; retry in %.1f s", exc, delay)
        return delay
