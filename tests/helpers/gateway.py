"""A gateway for sync tests: a config file, a provisioned identity, an outbox filled with
records whose content is a pure function of their seq, and a check of what the hub holds.

Content by seq (tests/helpers/outbox_writer.py) lets a test that killed processes at random
moments verify every stored record without knowing what happened when.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from edge_agent.codecs.batch import quantise
from edge_agent.runtime import OUTBOX_FILE
from edge_agent.store import Outbox
from sync_server import admin
from sync_server.db.schema import events, gateways, readings, series, streams
from tests.helpers.hub import HubProcess
from tests.helpers.outbox_writer import event_for, reading_for

__all__ = ["GatewayDir", "agent", "hub_content", "make_gateway", "missing_or_wrong"]

_CHUNK = 5_000


@dataclass
class GatewayDir:
    """Where a test gateway lives and what it wrote."""

    name: str
    config: Path
    data_dir: Path
    written: dict[str, int]


def agent(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``edge-agent ARGS`` as an installer would."""
    done = subprocess.run([sys.executable, "-m", "edge_agent", *args], capture_output=True,
                          text=True, timeout=timeout, check=False,
                          env={**os.environ, "COLUMNS": "200"})
    if check and done.returncode != 0:
        raise AssertionError(f"edge-agent {' '.join(args)} failed: {done.stderr}")
    return done


def make_gateway(
    root: Path,
    hub: HubProcess,
    territory: str,
    name: str,
    *,
    hub_url: str | None = None,
    counts: dict[str, int] | None = None,
    sync_settings: str = "interval_s = 0.2\nmax_backoff_s = 0.5\ntimeout_s = 5\n",
    provision_args: Sequence[str] = ("--insecure-http",),
) -> GatewayDir:
    """Write a config, fill the outbox, and provision the gateway through the real CLI.

    Test hubs serve plain HTTP on 127.0.0.1, so provisioning says ``--insecure-http`` unless
    ``provision_args`` says otherwise (a hub over TLS: ``--ca-bundle`` ...).
    """
    root.mkdir(parents=True, exist_ok=True)
    config = root / "gateway.toml"
    config.write_text(f'[gateway]\nid = "{name}"\ndata_dir = "var"\n\n[sync]\n{sync_settings}')
    data_dir = root / "var"
    data_dir.mkdir()
    counts = counts or {"alarms": 50, "events": 500, "readings": 20_000}
    with Outbox.open(data_dir / OUTBOX_FILE) as outbox:
        for stream, count in counts.items():
            for start in range(1, count + 1, _CHUNK):
                seqs = range(start, min(count, start + _CHUNK - 1) + 1)
                if stream == "readings":
                    outbox.append_readings([reading_for(s) for s in seqs])
                else:
                    outbox.append_events([event_for(s) for s in seqs], stream=stream)
    hub.territory(territory)
    code = admin.add_gateway(hub.engine, territory, f"{territory}-site", name).code
    agent("provision", "--config", str(config), "--hub", hub_url or hub.url, "--code", code,
          *provision_args)
    return GatewayDir(name, config, data_dir, dict(counts))


def hub_content(hub: HubProcess, territory: str, gateway: str) -> dict[str, dict[int, Any]]:
    """Everything the hub holds for ``gateway``, per stream, keyed by seq.

    The streams are read last: on PostgreSQL each statement sees its own snapshot, and a
    stream created by a push that lands between two statements is then already visible.
    """
    with hub.engine.connect() as conn:
        gid = conn.execute(
            select(gateways.c.id).where(gateways.c.territory_id == admin.territory_id(
                conn, territory), gateways.c.name == gateway)).scalar_one()
        records: list[tuple[int, int, Any]] = [
            (int(stream_id), seq, (device, quantity, ts, value, quality))
            for stream_id, seq, device, quantity, ts, value, quality in conn.execute(
                select(readings.c.stream_id, readings.c.seq, series.c.device,
                       series.c.quantity, readings.c.ts_ms, readings.c.value,
                       readings.c.quality)
                .join(series, readings.c.series_id == series.c.id)
                .where(series.c.gateway_id == gid))]
        records += [
            (int(stream_id), seq, (kind, device, ts, json.loads(attrs)))
            for stream_id, seq, kind, device, ts, attrs in conn.execute(
                select(events.c.stream_id, events.c.seq, events.c.kind, events.c.device,
                       events.c.ts_ms, events.c.attrs).where(events.c.gateway_id == gid))]
        names = {int(sid): str(name) for sid, name in conn.execute(
            select(streams.c.id, streams.c.name).where(streams.c.gateway_id == gid))}
    content: dict[str, dict[int, Any]] = {name: {} for name in names.values()}
    for stream_id, seq, record in records:
        content[names[stream_id]][seq] = record
    return content


def _expected(stream: str, seq: int) -> Any:
    if stream == "readings":
        r = reading_for(seq)
        value = quantise(r.quantity, r.value)
        return (r.device, r.quantity, r.ts_ms, value if math.isfinite(value) else None,
                int(r.quality))
    e = event_for(seq)
    return (e.kind, e.device, e.ts_ms, e.attrs)


def missing_or_wrong(hub: HubProcess, territory: str, gw: GatewayDir) -> dict[str, Any]:
    """Per stream: seqs missing at the hub, extra seqs, and seqs whose content differs.

    Empty lists everywhere mean the hub holds exactly what the gateway wrote. Duplicates
    cannot hide here: ``(stream, seq)`` is the table's primary key, and every stored seq
    must be one the gateway wrote.
    """
    content = hub_content(hub, territory, gw.name)
    report: dict[str, Any] = {}
    for stream, count in gw.written.items():
        held = content.get(stream, {})
        report[stream] = {
            "missing": sorted(set(range(1, count + 1)) - held.keys())[:10],
            "extra": sorted(held.keys() - set(range(1, count + 1)))[:10],
            "wrong": [seq for seq, got in sorted(held.items())
                      if seq <= count and got != _expected(stream, seq)][:10],
        }
    return report
