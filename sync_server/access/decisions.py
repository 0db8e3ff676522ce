"""The gates' decisions at the hub: the log an operator filters, and which policy each
gateway last decided with.

Decisions are the ``access.granted`` and ``access.denied`` events (docs/access-control.md):
the gate is the device, ``attrs`` holds the reason code, the badge's pseudonym and the
policy version used. The reason lives inside ``attrs`` (JSON text), so the log is read
newest first and filtered as it streams, over a bounded number of rows: a filter that
matches nothing recent says so instead of scanning a year of events.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from sync_server.db.schema import events, gateways

__all__ = ["DECISION_KINDS", "REASONS", "DecisionFilter", "decision_log", "policy_in_use"]

DECISION_KINDS = ("access.granted", "access.denied")
#: The reason codes of the event format (docs/access-control.md, "The decision").
REASONS = ("granted", "master", "manual", "gate_open", "fail_open", "unknown_badge", "revoked",
           "not_yet_valid", "badge_expired", "not_entitled", "outside_schedule",
           "antipassback", "policy_expired", "no_policy", "unknown_gate", "gate_locked",
           "pedestal_busy", "service_unavailable")
#: Decisions read at most per page view while filtering.
SCAN_LIMIT = 20_000
_BATCH = 1000


@dataclass(frozen=True, slots=True)
class DecisionFilter:
    """What the log shows: one gate, one reason, a time window; at most ``limit`` rows."""

    gate: str | None = None
    reason: str | None = None
    from_ms: int | None = None
    to_ms: int | None = None
    limit: int = 200


def decision_log(conn: Connection, territory: int, wanted: DecisionFilter
                 ) -> tuple[list[dict[str, Any]], bool]:
    """Matching decisions newest first, and whether the scan stopped before the oldest."""
    query = (select(gateways.c.name.label("gateway"), events.c.device, events.c.kind,
                    events.c.ts_ms, events.c.attrs)
             .join_from(events, gateways, events.c.gateway_id == gateways.c.id)
             .where(events.c.territory_id == territory, events.c.kind.in_(DECISION_KINDS))
             .order_by(events.c.ts_ms.desc(), events.c.stream_id.desc(), events.c.seq.desc())
             .limit(SCAN_LIMIT))
    if wanted.gate:
        query = query.where(events.c.device == wanted.gate)
    if wanted.from_ms is not None:
        query = query.where(events.c.ts_ms >= wanted.from_ms)
    if wanted.to_ms is not None:
        query = query.where(events.c.ts_ms < wanted.to_ms)
    rows: list[dict[str, Any]] = []
    scanned = 0
    for row in conn.execute(query.execution_options(yield_per=_BATCH)):
        scanned += 1
        attrs = json.loads(row.attrs)
        if wanted.reason and attrs.get("reason") != wanted.reason:
            continue
        rows.append({"gateway": row.gateway, "gate": row.device,
                     "granted": row.kind == "access.granted", "ts_ms": row.ts_ms,
                     "reason": attrs.get("reason"), "badge": attrs.get("badge"),
                     "category": attrs.get("category"),
                     "target": attrs.get("zone") or attrs.get("service"),
                     "policy_version": attrs.get("policy_version")})
        if len(rows) == wanted.limit:
            return rows, False
    return rows, scanned == SCAN_LIMIT


def policy_in_use(conn: Connection, territory: int) -> list[dict[str, Any]]:
    """Each gateway of ``territory`` with the policy version it holds, and as of when.

    A gateway reports its version on each push (``reported``, as of its last push); for
    one that has not (an older agent), a decision names the version it was taken with, so
    the hub knows that one, as of that decision (None: neither).
    """
    result = []
    for gateway_id, name, held, last_seen in conn.execute(
            select(gateways.c.id, gateways.c.name, gateways.c.held_policy_version,
                   gateways.c.last_seen_ms)
            .where(gateways.c.territory_id == territory).order_by(gateways.c.name)):
        if held is not None:
            result.append({"gateway": name, "policy_version": held, "seen_ms": last_seen,
                           "reported": True})
            continue
        newest = conn.execute(
            select(events.c.ts_ms, events.c.attrs)
            .where(events.c.gateway_id == gateway_id, events.c.kind.in_(DECISION_KINDS))
            .order_by(events.c.ts_ms.desc()).limit(1)).first()
        version = None if newest is None else json.loads(newest.attrs).get("policy_version")
        result.append({"gateway": name, "policy_version": version,
                       "seen_ms": None if newest is None else newest.ts_ms,
                       "reported": False})
    return result
