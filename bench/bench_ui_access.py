"""The dashboard's access and marina reads over a busy territory: server time of each.

A territory whose gates logged N decisions (default 200,000: a year of a busy marina gate)
and whose pedestals closed N/10 sessions, 20 pedestals, one in use. Timed, median of the
runs: the decisions log unfiltered (the newest 200), filtered by a reason that only old rows
carry (the worst case: the whole bounded scan of SCAN_LIMIT rows, JSON parsed, finds few),
by one gate and one day; the pedestals' states; the sessions history; the consumption report
per berth over the current month (the page's default) and over all time. Baseline in the
same run: the bare SELECT of the newest 200 decisions, no JSON (what any log page costs).

Run: .venv/bin/python bench/bench_ui_access.py [--decisions 200000] [--runs 5]
     [--database-url postgresql://127.0.0.1/bench]  (SQLite in a temporary file otherwise)
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, select

from edge_agent.records import now_ms
from sync_server import admin
from sync_server.access.decisions import DECISION_KINDS, DecisionFilter, decision_log
from sync_server.access.pedestals import pedestals, sessions
from sync_server.access.reports import consumption
from sync_server.db.engine import create_hub_engine, reading
from sync_server.db.migrate import upgrade
from sync_server.db.schema import events, gateways

_BATCH = 10_000


def fill(engine: Engine, decisions: int) -> tuple[int, int]:
    """The territory's id and the start of its newest day, after writing its records."""
    admin.add_territory(engine, "bench")
    admin.add_site(engine, "bench", "port")
    admin.add_gateway(engine, "bench", "port", "gw")
    with engine.begin() as conn:
        territory, gateway = conn.execute(select(gateways.c.territory_id, gateways.c.id)).one()
    now = now_ms()
    step = 365 * 86_400_000 // decisions
    rows: list[dict[str, Any]] = []
    for seq in range(1, decisions + 1):
        ts = now - (decisions - seq) * step
        # Old rows only carry the rare reason: a filter on it scans the whole bound.
        reason = "gate_locked" if seq < decisions // 2 and seq % 1000 == 0 else "granted"
        rows.append(_event(territory, gateway, 1, seq, ts, f"gate-{seq % 4}", DECISION_KINDS[0],
                           {"reason": reason, "badge": f"{seq % 5000:032x}",
                            "category": "boater", "zone": "pontoon", "policy_version": 7}))
        if seq % 10 == 0:
            rows.append(_event(territory, gateway, 2, seq, ts, f"berth-{seq % 20}",
                               "session.closed",
                               {"badge": f"{seq % 5000:032x}", "started_ms": ts - 3_600_000,
                                "ended_ms": ts, "reason": "badge", "kwh": 3.2, "m3": 0.1}))
        if len(rows) >= _BATCH:
            _write(engine, rows)
    rows.append(_event(territory, gateway, 3, 1, now, "berth-3", "session.opened",
                       {"badge": "ab" * 16, "energy_start_kwh": 10.0,
                        "energy_meter": "berth-3-meter"}))
    _write(engine, rows)
    if engine.dialect.name == "postgresql":  # autovacuum's statistics; the hub never
        with engine.begin() as conn:         # runs ANALYZE on SQLite
            conn.exec_driver_sql("ANALYZE")
    day = datetime.fromtimestamp(now / 1000, UTC).replace(hour=0, minute=0, second=0)
    return int(territory), int(day.timestamp() * 1000)


def _event(territory: int, gateway: int, stream: int, seq: int, ts: int, device: str,
           kind: str, attrs: dict[str, Any]) -> dict[str, Any]:
    return {"stream_id": stream, "seq": seq, "territory_id": territory, "gateway_id": gateway,
            "kind": kind, "device": device, "ts_ms": ts,
            "attrs": json.dumps(attrs, sort_keys=True)}


def _write(engine: Engine, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        conn.execute(events.insert(), rows)
    rows.clear()


def timed(engine: Engine, read: Callable[[Connection], object], runs: int) -> float:
    """Median milliseconds of ``read`` in its own read transaction."""
    spent = []
    for _ in range(runs):
        start = time.perf_counter()
        with reading(engine) as conn:
            read(conn)
        spent.append((time.perf_counter() - start) * 1000)
    return statistics.median(spent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite:///{Path(folder) / 'bench.db'}"
        engine = create_hub_engine(url)
        upgrade(engine)
        territory, today = fill(engine, args.decisions)
        month = datetime.fromtimestamp(today / 1000, UTC).strftime("%Y-%m")
        newest = (select(events.c.ts_ms, events.c.device, events.c.kind)
                  .where(events.c.territory_id == territory,
                         events.c.kind.in_(DECISION_KINDS))
                  .order_by(events.c.ts_ms.desc()).limit(200))
        cases: list[tuple[str, Callable[[Connection], object]]] = [
            ("baseline: newest 200, bare SELECT", lambda c: c.execute(newest).all()),
            ("log, no filter", lambda c: decision_log(c, territory, DecisionFilter())),
            ("log, rare reason (bounded scan)",
             lambda c: decision_log(c, territory, DecisionFilter(reason="gate_locked"))),
            ("log, one gate", lambda c: decision_log(c, territory, DecisionFilter("gate-1"))),
            ("log, today", lambda c: decision_log(c, territory, DecisionFilter(
                from_ms=today, to_ms=today + 86_400_000))),
            ("pedestals", lambda c: pedestals(c, territory)),
            ("sessions, newest 50", lambda c: sessions(c, territory, limit=50)),
            ("consumption per berth, this month (page)",
             lambda c: consumption(c, territory, by="pedestal", month=month)),
            ("consumption per berth, all time",
             lambda c: consumption(c, territory, by="pedestal")),
        ]
        print(f"{args.decisions:,} decisions, {args.decisions // 10:,} sessions, "
              f"{url.split(':', 1)[0]}, median of {args.runs}")
        for name, read in cases:
            print(f"  {name:<40} {timed(engine, read, args.runs):8.1f} ms")
        engine.dispose()


if __name__ == "__main__":
    main()
