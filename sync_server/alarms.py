"""Alarms at the hub: the gateways' raises paired with their clears, and acknowledgements.

An alarm *is* its ``alarm.raised`` event, so nothing is copied at ingest (which stays one
insert per record) and its id is the raise's own key, ``<stream>-<seq>``: stable for as long
as the record is stored. Its clear is the first ``alarm.cleared`` of the same gateway, device
and rule after it, in time, ties broken by record order; pairing happens in SQL, so a page
of open alarms is cut after the state is known. Acknowledgements are the only thing the hub
adds: who, when, and a comment, once per alarm. A raise no answer could carry (stored before
ingest checked records) is left out of pages and counted (sync_server/bad_records.py).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Select, and_, func, literal, or_, select, tuple_
from sqlalchemy.exc import IntegrityError

from edge_agent.records import now_ms
from sync_server.bad_records import readable_event
from sync_server.db.attrs import attr_text
from sync_server.db.schema import alarm_acks, events, gateways, territories
from sync_server.errors import BadRequest, Conflict, InvalidField, NotFound
from sync_server.queries import MAX_EVENTS, Scope, require_gateway, scoped

__all__ = [
    "CLEARED",
    "MAX_BY",
    "MAX_COMMENT",
    "RAISED",
    "STATES",
    "Acknowledgement",
    "AlarmFilter",
    "acknowledge",
    "alarm",
    "alarms_page",
    "open_alarm_counts",
]

log = logging.getLogger("sync_server.alarms")

RAISED = "alarm.raised"
CLEARED = "alarm.cleared"
STATES = ("open", "cleared", "all")
MAX_COMMENT = 1000
MAX_BY = 64
#: The raise's attributes an alarm shows (the edge's contract; absent ones are null).
_FIELDS = ("rule", "kind", "severity", "quantity", "value", "threshold")
_ID = re.compile(r"([0-9]{1,12})-([0-9]{1,20})")
#: Keys beyond the columns' ranges name nothing (and must not reach the database).
_MAX_STREAM, _MAX_SEQ = 2**31 - 1, 2**63 - 1
_MISSING = "no alarm with that id in this territory"
#: Tab, newline and carriage return are fine in a comment; other control characters are not.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class AlarmFilter:
    """Which alarms a page holds; times bound the raise, ``to_ms`` excluded."""

    state: str = "all"
    gateway: str | None = None
    device: str | None = None
    from_ms: int | None = None
    to_ms: int | None = None
    limit: int = 100
    #: The last alarm of the previous page: this page starts after it (raises of one
    #: millisecond are not lost between pages, as they would be by ``to_ms``).
    before: str | None = None


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """Who acknowledges (a token's name, or a name given on the command line) and why."""

    by: str
    comment: str
    #: The operator token acting, or None from the command line.
    token_id: int | None = None


def alarms_page(conn: Connection, scope: Scope, wanted: AlarmFilter) -> list[dict[str, Any]]:
    """Matching alarms, newest raise first, at most ``limit`` (≤ MAX_EVENTS)."""
    if wanted.state not in STATES:
        raise BadRequest(f"state must be one of {', '.join(STATES)}, got {wanted.state!r}")
    if not 1 <= wanted.limit <= MAX_EVENTS:
        raise BadRequest(f"limit must be between 1 and {MAX_EVENTS}, got {wanted.limit}")
    require_gateway(conn, scope, wanted.gateway)
    page, raised, cleared_ms = _raises(scope)
    if wanted.state != "all":
        page = page.where(cleared_ms.is_(None) if wanted.state == "open"
                          else cleared_ms.is_not(None))
    if wanted.gateway is not None:
        page = page.where(raised.c.gateway_id.in_(
            select(gateways.c.id).where(gateways.c.name == wanted.gateway)))
    if wanted.device is not None:
        page = page.where(raised.c.device == wanted.device)
    if wanted.from_ms is not None:
        page = page.where(raised.c.ts_ms >= wanted.from_ms)
    if wanted.to_ms is not None:
        page = page.where(raised.c.ts_ms < wanted.to_ms)
    if wanted.before is not None:
        position = _position(conn, scope, wanted.before)
        page = page.where(raised.c.ts_ms <= position[0],
                          tuple_(raised.c.ts_ms, raised.c.stream_id, raised.c.seq)
                          < tuple_(*(literal(value) for value in position)))
    return _described(conn, page.order_by(*_newest_first(raised)).limit(wanted.limit))


def open_alarm_counts(conn: Connection, scope: Scope) -> dict[tuple[str, str], int]:
    """How many alarms are open per ``(territory, gateway)`` name in ``scope``."""
    page, _, cleared_ms = _raises(scope)
    still_open = page.where(cleared_ms.is_(None)).subquery("open")
    query = (select(territories.c.name, gateways.c.name, func.count())
             .join_from(still_open, gateways, still_open.c.gateway_id == gateways.c.id)
             .join(territories, still_open.c.territory_id == territories.c.id)
             .group_by(territories.c.name, gateways.c.name))
    return {(str(territory), str(gateway)): int(count)
            for territory, gateway, count in conn.execute(query)}


def alarm(conn: Connection, scope: Scope, alarm_id: str) -> dict[str, Any]:
    """One alarm by id; NotFound alike for an impossible, missing or foreign id."""
    key = _key(alarm_id)
    page, raised, _ = _raises(scope)
    found = [] if key is None else _described(
        conn, page.where(raised.c.stream_id == key[0], raised.c.seq == key[1]))
    if not found:
        raise NotFound(_MISSING)
    return found[0]


def _position(conn: Connection, scope: Scope, alarm_id: str) -> tuple[int, int, int]:
    """``(raised_ms, stream_id, seq)`` of an alarm in ``scope``, the order pages follow."""
    key = _key(alarm_id)
    found = None if key is None else conn.execute(scoped(
        select(events.c.ts_ms).where(events.c.stream_id == key[0], events.c.seq == key[1],
                                     events.c.kind == RAISED),
        scope, events.c.territory_id)).scalar()
    if key is None or found is None:
        raise NotFound(_MISSING)
    return int(found), *key


def acknowledge(engine: Engine, territory_id: int, alarm_id: str,
                ack: Acknowledgement) -> dict[str, Any]:
    """Record ``ack`` on an alarm of ``territory_id`` once; Conflict if it already has one."""
    by = _text("by", ack.by.strip(), MAX_BY, multiline=False)
    if not by:
        raise InvalidField("by", "must name who acknowledges")
    comment = _text("comment", ack.comment, MAX_COMMENT, multiline=True)
    scope = Scope(territory_id)
    try:
        with engine.begin() as conn:
            found = alarm(conn, scope, alarm_id)
            if found["ack"] is not None:
                raise Conflict(f"alarm {found['id']} was already acknowledged by "
                               f"{found['ack']['by']}", code="already_acknowledged")
            stream_id, seq = (int(part) for part in found["id"].split("-"))
            conn.execute(alarm_acks.insert().values(
                stream_id=stream_id, seq=seq, territory_id=territory_id, acked_ms=now_ms(),
                acked_by=by, token_id=ack.token_id, comment=comment))
            done = alarm(conn, scope, alarm_id)
    except IntegrityError:  # another hub process acknowledged it meanwhile
        raise Conflict("alarm was already acknowledged",
                       code="already_acknowledged") from None
    log.info("alarm %s (%s/%s, rule %r) acknowledged by %r", done["id"], done["gateway"],
             done["device"], done["rule"], by)
    return done


def _newest_first(table: Any) -> tuple[Any, ...]:
    return table.c.ts_ms.desc(), table.c.stream_id.desc(), table.c.seq.desc()


def _raises(scope: Scope) -> tuple[Select[Any], Any, Any]:
    """Raises in ``scope`` with their clear's time, from ``events`` alone and unordered.

    Names and acknowledgements are joined around the finished page (``_described``): with
    them inside, SQLite began from the gateways and paired every raise before sorting.
    """
    raised, clear = events.alias("raised"), events.alias("clear")
    after = and_(clear.c.ts_ms >= raised.c.ts_ms,
                 or_(clear.c.ts_ms > raised.c.ts_ms,
                     tuple_(clear.c.stream_id, clear.c.seq)
                     > tuple_(raised.c.stream_id, raised.c.seq)))
    cleared_ms = (
        select(clear.c.ts_ms)
        .where(clear.c.gateway_id == raised.c.gateway_id, clear.c.device == raised.c.device,
               clear.c.kind == CLEARED, after,
               func.coalesce(attr_text(clear.c.attrs, "rule"), "")
               == func.coalesce(attr_text(raised.c.attrs, "rule"), ""))
        .order_by(clear.c.ts_ms).limit(1)  # the index's order: a tie has one ts_ms anyway
        .correlate(raised).scalar_subquery()
    )
    page = select(raised.c.stream_id, raised.c.seq, raised.c.territory_id,
                  raised.c.gateway_id, raised.c.device, raised.c.ts_ms, raised.c.attrs,
                  cleared_ms.label("cleared_ms")).where(raised.c.kind == RAISED)
    return scoped(page, scope, raised.c.territory_id), raised, cleared_ms


def _described(conn: Connection, page: Select[Any]) -> list[dict[str, Any]]:
    """The alarms of ``page`` with their territory, gateway and acknowledgement."""
    if conn.dialect.name == "postgresql":
        # The planner cannot tell that each clear lookup stops at its first row, costs the
        # page in millions and JIT-compiles it: half a second for a millisecond's work.
        conn.exec_driver_sql("SET LOCAL jit = off")
    alarms = page.subquery("page")
    query = (
        select(alarms.c.stream_id, alarms.c.seq, territories.c.name.label("territory"),
               gateways.c.name.label("gateway"), alarms.c.device,
               alarms.c.ts_ms.label("raised_ms"), alarms.c.attrs, alarms.c.cleared_ms,
               alarm_acks.c.acked_ms, alarm_acks.c.acked_by, alarm_acks.c.token_id,
               alarm_acks.c.comment)
        .join_from(alarms, gateways, alarms.c.gateway_id == gateways.c.id)
        .join(territories, alarms.c.territory_id == territories.c.id)
        .outerjoin(alarm_acks, (alarm_acks.c.stream_id == alarms.c.stream_id)
                   & (alarm_acks.c.seq == alarms.c.seq))
        .order_by(*_newest_first(alarms))
    )
    found = (_alarm(row._mapping) for row in conn.execute(query))
    return [alarm for alarm in found if alarm is not None]


def _alarm(row: Any) -> dict[str, Any] | None:
    """The alarm of a page's row; None (skipped and counted) if no answer could carry it."""
    attrs = readable_event("alarms", f"alarm {row['stream_id']}-{row['seq']}", RAISED,
                           row["device"], row["raised_ms"], row["attrs"])
    if attrs is None:
        return None
    ack = None if row["acked_ms"] is None else {
        "by": row["acked_by"], "token_id": row["token_id"], "acked_ms": row["acked_ms"],
        "comment": row["comment"]}
    return {"id": f"{row['stream_id']}-{row['seq']}", "territory": row["territory"],
            "gateway": row["gateway"], "device": row["device"],
            **{field: attrs.get(field) for field in _FIELDS},
            "raised_ms": row["raised_ms"], "cleared_ms": row["cleared_ms"], "ack": ack}


def _key(alarm_id: str) -> tuple[int, int] | None:
    """``(stream_id, seq)`` of an id; None if out of range (it names nothing)."""
    match = _ID.fullmatch(alarm_id)
    if match is None:
        raise BadRequest("an alarm id is two whole numbers joined by '-', like 12-345 "
                         "(from the alarm list)")
    stream_id, seq = int(match.group(1)), int(match.group(2))
    if not (1 <= stream_id <= _MAX_STREAM and seq <= _MAX_SEQ):
        return None
    return stream_id, seq


def _text(field: str, text: str, limit: int, *, multiline: bool) -> str:
    """``text`` if it is at most ``limit`` characters of valid Unicode without controls."""
    if len(text) > limit:
        raise InvalidField(field, f"at most {limit} characters, got {len(text)}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidField(field, "is not valid Unicode (a lone surrogate)") from None
    if _CONTROL.search(text) or (not multiline and any(c in text for c in "\t\n\r")):
        raise InvalidField(field, "holds control characters (NUL, escapes)")
    return text
