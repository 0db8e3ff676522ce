"""The agent's Prometheus metrics, on an opt-in local port (``[metrics] listen``).

Nothing is computed twice: every figure comes from the status the running agent already
builds for ``status.json`` every two seconds (outbox depth and oldest record per stream,
the sync's lag and failures, each device's polls and errors, each gate's decisions), turned
into metric families when Prometheus scrapes. prometheus-client is imported only here, and
this module only when ``[metrics]`` is configured: a gateway without it pays nothing (issue
13). The server is prometheus-client's own, on a daemon thread; it answers any path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from edge_agent.errors import ConfigError
from edge_agent.records import now_ms

__all__ = ["MetricsServer", "status_metrics"]

#: The latest status the agent built, or None before the first one.
StatusSource = Callable[[], dict[str, Any] | None]


def status_metrics(status: dict[str, Any], now: int) -> Iterator[Metric]:
    """The metric families of one status dict (edge_agent/runtime.py ``Gateway.status``)."""
    yield from _outbox(status["streams"], now)
    yield from _sync(status["sync"])
    yield from _devices(status["devices"])
    yield from _access((status.get("access") or {}).get("gates", {}))
    yield GaugeMetricFamily("ponton_agent_status_age_seconds", "Age of the status these "
                            "figures come from.", value=(now - status["updated_ms"]) / 1000)


def _outbox(streams: list[dict[str, Any]], now: int) -> Iterator[Metric]:
    depth = GaugeMetricFamily("ponton_agent_outbox_records", "Records waiting in the outbox.",
                              labels=["stream"])
    oldest = GaugeMetricFamily("ponton_agent_outbox_oldest_age_seconds", "Age of the oldest "
                               "waiting record (0 when none wait).", labels=["stream"])
    evicted = CounterMetricFamily("ponton_agent_outbox_evicted", "Readings evicted by the "
                                  "outbox quota.", labels=["stream"])
    for stream in streams:
        first = stream["oldest_ts_ms"]
        depth.add_metric([stream["name"]], stream["depth"])
        oldest.add_metric([stream["name"]], max(0, now - first) / 1000
                          if stream["depth"] and first is not None else 0.0)
        evicted.add_metric([stream["name"]], stream["evicted_total"])
    yield from (depth, oldest, evicted)


def _sync(sync: dict[str, Any]) -> Iterator[Metric]:
    if "lag_ms" not in sync:  # not provisioned, or sync disabled: nothing to measure
        return
    yield GaugeMetricFamily("ponton_agent_sync_lag_seconds", "Age of the oldest record not "
                            "yet acknowledged by the hub.", value=(sync["lag_ms"] or 0) / 1000)
    yield GaugeMetricFamily("ponton_agent_sync_consecutive_failures", "Failed pushes since "
                            "the last success.", value=sync["consecutive_failures"])
    yield CounterMetricFamily("ponton_agent_sync_pushed_records", "Records the hub "
                              "acknowledged.", value=sync["pushed_records"])
    if sync["last_success_ms"] is not None:
        yield GaugeMetricFamily("ponton_agent_sync_last_success_timestamp_seconds",
                                "When a push last succeeded.",
                                value=sync["last_success_ms"] / 1000)


def _devices(devices: list[dict[str, Any]]) -> Iterator[Metric]:
    online = GaugeMetricFamily("ponton_agent_device_online", "1 online, 0 offline (absent "
                               "before the first poll).", labels=["device", "bus"])
    polls = CounterMetricFamily("ponton_agent_device_polls", "Polls of a device.",
                                labels=["device", "bus"])
    requests = CounterMetricFamily("ponton_agent_bus_requests", "Modbus requests sent on a "
                                   "bus, by device.", labels=["device", "bus"])
    errors = CounterMetricFamily("ponton_agent_device_errors", "Failed requests of a device, "
                                 "by kind.", labels=["device", "bus", "kind"])
    late = CounterMetricFamily("ponton_agent_device_late_polls", "Slots a device was not "
                               "polled at: the bus or the machine could not keep up.",
                               labels=["device", "bus"])
    for device in devices:
        names = [device["name"], device["bus"]]
        if device["online"] is not None:
            online.add_metric(names, 1.0 if device["online"] else 0.0)
        polls.add_metric(names, device["polls"])
        requests.add_metric(names, device["requests"])
        late.add_metric(names, device.get("late", 0))
        for kind, count in (("timeout", device["timeouts"]),
                            ("exception", sum(device["exceptions"].values())),
                            ("frame", device["frame_errors"]),
                            ("transport", device["transport_errors"])):
            errors.add_metric([*names, kind], count)
    yield from (online, polls, requests, errors, late)


def _access(gates: dict[str, dict[str, Any]]) -> Iterator[Metric]:
    if not gates:
        return
    decisions = CounterMetricFamily("ponton_agent_access_decisions", "Badge decisions at a "
                                    "gate.", labels=["gate", "decision"])
    failures = CounterMetricFamily("ponton_agent_access_relay_failures", "Gates that did not "
                                   "open when told to.", labels=["gate"])
    for gate, stats in gates.items():
        decisions.add_metric([gate, "granted"], stats["granted"])
        decisions.add_metric([gate, "denied"], stats["denied"])
        failures.add_metric([gate], stats["actuator_failures"])
    yield from (decisions, failures)


class _StatusCollector(Collector):
    def __init__(self, source: StatusSource) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        status = self._source()
        if status is not None:
            yield from status_metrics(status, now_ms())


class MetricsServer:
    """prometheus-client's HTTP server on ``host:port``, over the agent's latest status."""

    def __init__(self, listen: tuple[str, int], source: StatusSource) -> None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_StatusCollector(source))
        host, port = listen
        try:
            self._server, self._thread = start_http_server(port, host, registry)
        except OSError as exc:
            raise ConfigError(f"[metrics] cannot listen on {host}:{port}: "
                              f"{exc.strerror or exc}") from None

    @property
    def port(self) -> int:
        """The port it listens on (the one asked for, or the one the system chose for 0)."""
        return int(self._server.server_port)

    def close(self) -> None:
        """Stop answering and free the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
