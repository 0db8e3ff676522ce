"""The decision function: every reason code from a decision table, schedules, anti-passback,
the packed badge table and policy parsing."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.access.decision import Presence, Reason, decide
from edge_agent.access.engine import AccessEngine
from edge_agent.codecs.access_policy import (
    BadgeRecord,
    BadgeTable,
    pack_badges,
    parse_policy,
    policy_payload,
)
from edge_agent.codecs.pseudonyms import pseudonym, pseudonym_from_text, pseudonym_text
from edge_agent.errors import PolicyError

KEY = bytes(range(32))
PARIS = ZoneInfo("Europe/Paris")
#: Wednesday 2026-07-15 10:00 in Paris.
NOON_MS = int(datetime(2026, 7, 15, 10, 0, tzinfo=PARIS).timestamp() * 1000)
DAY_S = 86_400

RULES: dict[str, Any] = {
    "timezone": "Europe/Paris",
    "categories": ["boater", "visitor", "staff", "resident"],
    "zones": {"pontoon-a": {"antipassback_s": 3600}, "car-park": {}},
    "services": ["berth-power", "ice-rink"],
    "schedules": {
        "day": {"windows": [{"days": "mon-sun", "start": "07:00", "end": "20:00"}]},
        "night": {"windows": [{"days": ["fri", "sat"], "start": "22:00", "end": "02:00"}],
                  "observe_holidays": False},
    },
    "holidays": ["2026-12-25"],
    "entitlements": [
        {"category": "boater", "zone": "pontoon-a"},
        {"category": "visitor", "zone": "pontoon-a", "schedule": "day"},
        {"category": "resident", "service": "ice-rink", "schedule": "day"},
        {"category": "resident", "service": "ice-rink", "schedule": "night"},
        {"category": "boater", "service": "berth-power"},
    ],
    "gates": {
        "gate-in": {"zone": "pontoon-a", "direction": "in"},
        "gate-out": {"zone": "pontoon-a", "direction": "out"},
        "barrier": {"zone": "car-park", "mode": "locked"},
        "free": {"zone": "car-park", "mode": "open"},
        "rink": {"service": "ice-rink", "fail_mode": "open"},
        "pedestal-a12": {"service": "berth-power"},
    },
}


def card(number: int) -> bytes:
    """The pseudonym of the EM4100 card ``number``."""
    return pseudonym(KEY, number.to_bytes(5, "big"))


BOATER, VISITOR, STAFF, RESIDENT = card(1), card(2), card(3), card(4)
REVOKED, FUTURE, PAST, MASTER, UNKNOWN = card(5), card(6), card(7), card(8), card(9)
NOON_S = NOON_MS // 1000
BADGES = [
    BadgeRecord(BOATER, 0), BadgeRecord(VISITOR, 1), BadgeRecord(STAFF, 2),
    BadgeRecord(RESIDENT, 3), BadgeRecord(REVOKED, 0, revoked=True),
    BadgeRecord(FUTURE, 0, valid_from_s=NOON_S + DAY_S),
    BadgeRecord(PAST, 0, valid_until_s=NOON_S - DAY_S),
    BadgeRecord(MASTER, 2, master=True),
]


def policy(expires_at_ms: int = NOON_MS + DAY_S * 1000, **changes: Any) -> Any:
    payload = policy_payload({**RULES, **changes}, pack_badges(BADGES))
    return parse_policy(payload, version=7, expires_at_ms=expires_at_ms)


# Every reason code the pure function gives, one row each: (gate, badge, when, expired?).
TABLE = [
    ("gate-in", BOATER, NOON_MS, False, Reason.GRANTED),
    ("gate-in", MASTER, NOON_MS, False, Reason.MASTER),
    ("free", UNKNOWN, NOON_MS, False, Reason.GATE_OPEN),
    ("rink", UNKNOWN, NOON_MS, True, Reason.FAIL_OPEN),
    ("nowhere", BOATER, NOON_MS, False, Reason.UNKNOWN_GATE),
    ("barrier", MASTER, NOON_MS, False, Reason.GATE_LOCKED),
    ("gate-in", BOATER, NOON_MS, True, Reason.POLICY_EXPIRED),
    ("gate-in", MASTER, NOON_MS, True, Reason.MASTER),
    ("gate-in", UNKNOWN, NOON_MS, False, Reason.UNKNOWN_BADGE),
    ("gate-in", REVOKED, NOON_MS, False, Reason.REVOKED),
    ("gate-in", FUTURE, NOON_MS, False, Reason.NOT_YET_VALID),
    ("gate-in", PAST, NOON_MS, False, Reason.BADGE_EXPIRED),
    ("gate-in", STAFF, NOON_MS, False, Reason.NOT_ENTITLED),
    ("rink", BOATER, NOON_MS, False, Reason.NOT_ENTITLED),
    ("gate-in", VISITOR, NOON_MS - 6 * 3_600_000, False, Reason.OUTSIDE_SCHEDULE),
    ("gate-in", VISITOR, NOON_MS, False, Reason.GRANTED),
    ("rink", RESIDENT, NOON_MS, False, Reason.GRANTED),
]


@pytest.mark.parametrize(("gate", "badge", "when", "expired", "reason"), TABLE)
def test_decision_table(gate: str, badge: bytes, when: int, expired: bool,
                        reason: Reason) -> None:
    current = policy(expires_at_ms=when - 1 if expired else when + 1)
    decision = decide(current, gate, badge, when)
    assert decision.reason is reason
    assert decision.granted is (reason in {Reason.GRANTED, Reason.MASTER, Reason.GATE_OPEN,
                                           Reason.FAIL_OPEN})
    assert decision.policy_version == 7


def test_no_policy_denies_everyone() -> None:
    decision = decide(None, "gate-in", MASTER, NOON_MS)
    assert decision.reason is Reason.NO_POLICY
    assert not decision.granted


def test_antipassback_holds_a_badge_inside_until_it_leaves_or_the_window_passes() -> None:
    current, presence = policy(), Presence()
    first = decide(current, "gate-in", BOATER, NOON_MS, presence)
    presence.record(current, first, NOON_MS)
    again = decide(current, "gate-in", BOATER, NOON_MS + 60_000, presence)
    assert (first.reason, again.reason) == (Reason.GRANTED, Reason.ANTIPASSBACK)
    assert not again.granted
    later = decide(current, "gate-in", BOATER, NOON_MS + 3_600_000, presence)
    assert later.reason is Reason.GRANTED
    out = decide(current, "gate-out", BOATER, NOON_MS + 120_000, presence)
    presence.record(current, out, NOON_MS + 120_000)
    assert decide(current, "gate-in", BOATER, NOON_MS + 180_000, presence).reason is (
        Reason.GRANTED)


def test_the_engine_covers_the_remaining_codes() -> None:
    """Manual openings, and no key (never provisioned): the two codes decide() cannot give."""
    engine = AccessEngine(KEY, policy())
    manual = engine.manual("gate-in")
    assert manual.reason is Reason.MANUAL
    assert manual.granted
    assert manual.pseudonym is None
    assert AccessEngine(None).decide("gate-in", b"\x01", NOON_MS).reason is Reason.NO_POLICY
    granted = engine.decide("gate-in", (1).to_bytes(5, "big"), NOON_MS)
    assert granted.reason is Reason.GRANTED
    assert engine.decide("gate-in", (1).to_bytes(5, "big"), NOON_MS + 1000).reason is (
        Reason.ANTIPASSBACK)


def test_every_reason_code_is_covered_by_a_test() -> None:
    tested = {row[-1] for row in TABLE} | {Reason.NO_POLICY, Reason.ANTIPASSBACK,
                                           Reason.MANUAL}
    # Given after a grant by the controller (tests/test_access_gateway.py).
    tested |= {Reason.PEDESTAL_BUSY, Reason.SERVICE_UNAVAILABLE}
    assert tested == set(Reason)


def test_events_carry_the_pseudonym_and_never_the_raw_identifier() -> None:
    raw = (1).to_bytes(5, "big")
    decision = AccessEngine(KEY, policy()).decide("gate-in", raw, NOON_MS)
    event = decision.event(NOON_MS)
    assert event.kind == "access.granted"
    assert event.device == "gate-in"
    assert event.attrs == {"reason": "granted", "policy_version": 7, "badge": BOATER.hex(),
                           "category": "boater", "zone": "pontoon-a"}
    assert raw.hex() not in repr(event.attrs)
    denied = decide(policy(), "rink", BOATER, NOON_MS).event(NOON_MS)
    assert denied.kind == "access.denied"
    assert denied.attrs["service"] == "ice-rink"


@pytest.mark.parametrize(("local", "open_"), [
    (datetime(2026, 7, 17, 23, 0), True),    # Friday 23:00
    (datetime(2026, 7, 18, 1, 59), True),    # Saturday 01:59, Friday's window
    (datetime(2026, 7, 18, 2, 0), False),    # closes at 02:00
    (datetime(2026, 7, 19, 1, 0), True),     # Sunday 01:00, Saturday's window
    (datetime(2026, 7, 20, 1, 0), False),    # Monday 01:00: Sunday has no window
    (datetime(2026, 7, 16, 23, 0), False),   # Thursday evening
])
def test_windows_across_midnight(local: datetime, open_: bool) -> None:
    night = policy().schedules["night"]
    assert night.is_open(local, frozenset()) is open_


def test_holidays_close_schedules_that_observe_them() -> None:
    current = policy(expires_at_ms=2**62)
    christmas = datetime(2026, 12, 25, 10, 0, tzinfo=PARIS)
    when = int(christmas.timestamp() * 1000)
    assert decide(current, "gate-in", VISITOR, when).reason is Reason.OUTSIDE_SCHEDULE
    assert decide(current, "gate-in", BOATER, when).reason is Reason.GRANTED  # no schedule
    friday_night = int(datetime(2026, 12, 25, 23, 0, tzinfo=PARIS).timestamp() * 1000)
    assert decide(current, "rink", RESIDENT, friday_night).reason is Reason.GRANTED


def test_schedules_follow_paris_time_across_daylight_saving() -> None:
    """07:00 in Paris is 05:00 UTC in summer and 06:00 UTC in winter."""
    current = policy(expires_at_ms=2**62)
    summer = int(datetime.fromisoformat("2026-07-15T05:00:00+00:00").timestamp() * 1000)
    winter = int(datetime.fromisoformat("2026-01-14T05:30:00+00:00").timestamp() * 1000)
    assert decide(current, "gate-in", VISITOR, summer).reason is Reason.GRANTED
    assert decide(current, "gate-in", VISITOR, winter).reason is Reason.OUTSIDE_SCHEDULE


@settings(max_examples=50, deadline=None)
@given(st.sets(st.binary(min_size=16, max_size=16), max_size=300),
       st.lists(st.binary(min_size=16, max_size=16), max_size=20))
def test_badge_table_finds_exactly_what_was_packed(keys: set[bytes], probes: list[bytes]
                                                   ) -> None:
    records = {key: BadgeRecord(key, len(key) % 5, 10, 20, key[0] % 2 == 0, key[1] % 3 == 0)
               for key in keys}
    table = BadgeTable(pack_badges(records.values()))
    assert len(table) == len(records)
    for key in [*keys, *probes]:
        assert table.find(key) == records.get(key)
    assert list(table) == sorted(records.values(), key=lambda r: r.pseudonym)


def test_pack_refuses_a_badge_twice() -> None:
    with pytest.raises(ValueError, match="appears twice"):
        pack_badges([BadgeRecord(BOATER, 0), BadgeRecord(BOATER, 1)])


def test_pseudonyms_are_keyed_and_printable() -> None:
    assert pseudonym(KEY, b"\x01") != pseudonym(bytes(32), b"\x01")
    assert pseudonym_from_text(pseudonym_text(BOATER)) == BOATER
    with pytest.raises(ValueError, match="32 hex digits"):
        pseudonym_from_text("abc")
    with pytest.raises(ValueError, match="32 bytes"):
        pseudonym(b"short", b"\x01")


@pytest.mark.parametrize(("change", "message"), [
    ({"timezone": "Mars/Olympus"}, "unknown time zone"),
    ({"categories": ["a", "a"]}, "listed twice"),
    ({"gates": {"g": {"zone": "nowhere"}}}, "zone 'nowhere' is not in zones"),
    ({"gates": {"g": {"zone": "car-park", "service": "ice-rink"}}}, "exactly one of"),
    ({"gates": {"g": {"zone": "car-park", "mode": "ajar"}}}, "mode must be"),
    ({"entitlements": [{"category": "pirate", "zone": "car-park"}]}, "category 'pirate'"),
    ({"entitlements": [{"category": "boater", "zone": "car-park", "schedule": "x"}]},
     "schedule 'x'"),
    ({"schedules": {"s": {"windows": [{"start": "25:00", "end": "26:00"}]}}}, "not a time"),
    ({"schedules": {"s": {"windows": [{"days": "someday", "start": "01:00",
                                       "end": "02:00"}]}}}, "days"),
    ({"holidays": ["Christmas"]}, "not a date"),
    ({"zones": {"z": {"antipassback_s": -1}}}, "antipassback_s"),
    ({"surprise": 1}, "unknown field"),
    ({"format": 2}, "format 2 is not supported"),
])
def test_malformed_rules_are_refused_with_a_reason(change: dict[str, Any], message: str
                                                    ) -> None:
    with pytest.raises(PolicyError, match=message):
        policy(**change)


@pytest.mark.parametrize(("damage", "message"), [
    ({"badges": "not base64!"}, "not valid base64"),
    ({"badges": "AAAA"}, "not made of 26-byte records"),
    ({"badge_count": 3}, "badge_count says 3"),
])
def test_malformed_badge_tables_are_refused(damage: dict[str, Any], message: str) -> None:
    payload = policy_payload(RULES, pack_badges(BADGES))
    with pytest.raises(PolicyError, match=message):
        parse_policy({**payload, **damage}, version=1, expires_at_ms=1)
    with pytest.raises(PolicyError, match="not an object"):
        parse_policy([], version=1, expires_at_ms=1)


def test_decision_is_a_value() -> None:
    decision = decide(policy(), "gate-in", BOATER, NOON_MS)
    assert dataclasses.replace(decision, reason=Reason.PEDESTAL_BUSY).granted is False
