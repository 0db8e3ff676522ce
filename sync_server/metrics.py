"""What the hub's ``/metrics`` shows, in Prometheus' text format (docs/install-hub.md).

Three sources: instruments counted as requests and batches pass (requests and latencies by
route template, records stored by kind), figures read from the database at each scrape
(gateways, gateways online, reported backlog, per territory: every hub process answers the
same), and the process-wide counters other modules keep (rows skipped by readers, records
refused at ingest, clients gone mid-body, pushes refused by a full push pool).

Under ``sync-server serve --workers N`` the instruments are kept in prometheus-client's
multiprocess files (``PROMETHEUS_MULTIPROC_DIR``, set by serving.py), so any worker's scrape
sums them all; the process-wide counters are the answering worker's own.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import Engine, case, func, select

from edge_agent.records import now_ms
from sync_server import bad_records
from sync_server.api.limits import departures
from sync_server.api.push_pool import PushPool
from sync_server.db.engine import reading
from sync_server.db.schema import gateways, territories

__all__ = [
    "BUNDLES_SERVED",
    "MULTIPROCESS_VARIABLE",
    "ONLINE_WITHIN_S",
    "RECORDS_STORED",
    "REQUESTS",
    "REQUEST_SECONDS",
    "exposition",
    "observe",
]

#: Where prometheus-client keeps the counts of several worker processes.
MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
#: A gateway counts as online if it pushed a batch within this long (pushes are what set
#: ``last_seen_ms``; a gateway polling meters pushes every few seconds).
ONLINE_WITHIN_S = 300

#: Not the default registry: a test process builds many apps, and each scrape adds its own.
_instruments = CollectorRegistry(auto_describe=True)

REQUESTS = Counter("ponton_hub_requests", "HTTP requests answered, by route template.",
                   ("method", "route", "status"), registry=_instruments)
REQUEST_SECONDS = Histogram("ponton_hub_request_duration_seconds",
                            "Time to answer a request, by route template.",
                            ("method", "route"), registry=_instruments)
RECORDS_STORED = Counter("ponton_hub_records_stored", "Records stored by pushes (new ones, "
                         "not replays), by record kind.", ("kind",), registry=_instruments)
BUNDLES_SERVED = Counter("ponton_hub_bundles_served", "Signed bundles answered to gateways, "
                         "by kind and form: full, delta (a policy from the version the gateway "
                         "holds) or unchanged (304).", ("kind", "form"), registry=_instruments)


class _HubCollector(Collector):
    """The figures read at scrape time: the database's and the process-wide counters."""

    def __init__(self, engine: Engine, pool: PushPool) -> None:
        self._engine = engine
        self._pool = pool

    def collect(self) -> Iterator[Metric]:
        if os.environ.get(MULTIPROCESS_VARIABLE):
            # prometheus-client leaves these two untyped.
            yield from MultiProcessCollector(None).collect()  # type: ignore[no-untyped-call]
        else:
            yield from _instruments.collect()
        yield from self._territories()
        yield from _process_counters(self._pool)

    def _territories(self) -> Iterator[Metric]:
        online_since = now_ms() - ONLINE_WITHIN_S * 1000
        query = (select(territories.c.name, func.count(gateways.c.id),
                        func.sum(case((gateways.c.last_seen_ms >= online_since, 1), else_=0)),
                        func.sum(gateways.c.backlog))
                 .join_from(territories, gateways,
                            gateways.c.territory_id == territories.c.id, isouter=True)
                 .group_by(territories.c.name))
        with reading(self._engine) as conn:
            rows = conn.execute(query).all()
        families = (
            GaugeMetricFamily("ponton_hub_gateways", "Enrolled gateways.",
                              labels=["territory"]),
            GaugeMetricFamily("ponton_hub_gateways_online", f"Gateways that pushed in the "
                              f"last {ONLINE_WITHIN_S} s.", labels=["territory"]),
            GaugeMetricFamily("ponton_hub_backlog_records", "Records waiting in the "
                              "gateways' outboxes, as each last reported.",
                              labels=["territory"]))
        for name, enrolled, online, backlog in rows:
            for family, value in zip(families, (enrolled, online, backlog), strict=True):
                family.add_metric([name], float(value or 0))
        yield from families


def _process_counters(pool: PushPool) -> Iterator[Metric]:
    counts = bad_records.counts()
    refused = CounterMetricFamily("ponton_hub_records_refused", "Pushed records refused at "
                                  "ingest, by the rule they broke.", labels=["rule"])
    for rule, n in sorted(counts["refused"].items()):
        refused.add_metric([rule], n)
    skipped = CounterMetricFamily("ponton_hub_rows_skipped", "Stored rows readers skipped "
                                  "as unreadable, by reader and rule.",
                                  labels=["reader", "rule"])
    for key, n in sorted(counts["skipped"].items()):
        reader, _, rule = key.rpartition(" ")
        skipped.add_metric([reader, rule], n)
    yield refused
    yield skipped
    yield CounterMetricFamily("ponton_hub_clients_departed", "Requests whose client went "
                              "away, or took longer than --body-timeout, before its body was "
                              "in.", value=departures.count)
    yield CounterMetricFamily("ponton_hub_pushes_busy", "Pushes answered 503 because the "
                              "push pool was full, or their gateway held its share of it.",
                              value=pool.busy)


def exposition(engine: Engine, pool: PushPool) -> bytes:
    """The text a scrape reads now."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_HubCollector(engine, pool))
    return generate_latest(registry)


def observe(method: str, route: str, status: int, started: float) -> None:
    """Count one answered request that began at ``started`` (``time.perf_counter``)."""
    REQUESTS.labels(method, route, str(status)).inc()
    REQUEST_SECONDS.labels(method, route).observe(time.perf_counter() - started)
