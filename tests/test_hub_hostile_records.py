"""Hostile records (issue 11, findings 1, 2 and 5): refused at ingest with one error shape,
and survived by every reader when already stored, on SQLite and PostgreSQL.

Pushes go over real HTTP to a hub process; bad rows "already stored" are written straight
into its database, as a hub that ran before ingest checked records would hold them.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from edge_agent.codecs.batch import EVENTS_TYPE, PLAIN_TYPE, encode_events
from edge_agent.codecs.pseudonyms import pseudonym
from edge_agent.records import Event, now_ms
from sync_server import bad_records
from sync_server.db.schema import events, gateways, readings, series, streams, territories
from sync_server.errors import BadRequest
from sync_server.ingest import ClockPolicy, GatewayRef, store_batch
from sync_server.queries import Scope, events_page
from sync_server.record_checks import AHEAD_MS, READABLE, event_problem
from sync_server.wire import DecodedBatch
from tests.helpers.hub import ACCESS_RULES, HubProcess

_names = itertools.count(1)
T0 = 1_764_000_000_000  # 2025-11-24, an ended month
NOVEMBER = "2025-11"


@pytest.fixture
def site(hub: HubProcess) -> Iterator[Site]:
    territory = f"hostile{next(_names)}"
    identity = hub.enroll(territory, "gw")
    with hub.operator(territory) as operator, httpx.Client(
        base_url=hub.url, timeout=30, headers={"Authorization": f"Bearer {identity['token']}"}
    ) as gateway:
        assert operator.put("/v1/policy/rules", json=ACCESS_RULES).status_code == 200
        assert operator.put("/v1/open-data/services").status_code == 200  # published
        yield Site(hub, territory, operator, gateway, base64.b64decode(identity["badge_key"]))


class Site:
    """A territory with rules, an operator and one gateway pushing to it."""

    def __init__(self, hub: HubProcess, territory: str, operator: httpx.Client,
                 gateway: httpx.Client, badge_key: bytes) -> None:
        self.hub, self.territory, self.operator = hub, territory, operator
        self.gateway, self.badge_key = gateway, badge_key

    def badge(self, number: str) -> str:
        return pseudonym(self.badge_key, bytes.fromhex(number)).hex()

    def register(self, numbers: list[str]) -> None:
        csv = "number,category\n" + "".join(f"{n},resident\n" for n in numbers)
        answer = self.operator.post("/v1/badges/import", content=csv.encode())
        assert answer.status_code == 200, answer.text

    def push_raw(self, stream: str, document: str, content_type: str = EVENTS_TYPE,
                 headers: dict[str, str] | None = None) -> httpx.Response:
        """A body as a hostile gateway writes it: JSON text, escapes and all."""
        return self.gateway.post(f"/v1/gateway/streams/{stream}/batches",
                                 content=document.encode(),
                                 headers={"Content-Type": content_type, **(headers or {})})

    def push(self, stream: str, first_seq: int, batch: list[Event]) -> None:
        answer = self.gateway.post(f"/v1/gateway/streams/{stream}/batches",
                                   content=encode_events(first_seq, batch),
                                   headers={"Content-Type": EVENTS_TYPE})
        assert answer.status_code == 200, answer.text

    def stored_events(self) -> int:
        with self.hub.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(events).where(
                events.c.territory_id.in_(self.territory_ids()))).scalar_one())

    def territory_ids(self) -> Any:
        return select(territories.c.id).where(territories.c.name == self.territory)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``sync-server ARGS`` on this hub's database, as an operator runs it."""
        env = {**os.environ, "PONTON_HUB_DATA_DIR": str(self.hub.data_dir),
               "PONTON_HUB_DATABASE_URL": self.hub.database_url, "COLUMNS": "200"}
        return subprocess.run([sys.executable, "-m", "sync_server", *args],
                              capture_output=True, text=True, env=env, timeout=60, check=False)

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        answer = self.operator.get(path, params=params)
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result


def _events_document(*items: str, first_seq: int = 1) -> str:
    return f'{{"first_seq": {first_seq}, "events": [{", ".join(items)}]}}'


def _event_json(kind: str = "note", device: str = "d1", ts_ms: int | str = T0,
                attrs: str = "{}") -> str:
    return (f'{{"kind": {json.dumps(kind)}, "device": {json.dumps(device)}, '
            f'"ts_ms": {ts_ms}, "attrs": {attrs}}}')


HOSTILE_EVENTS = {
    "lone surrogate in a value": (_event_json(attrs='{"note": "\\ud800"}'), "attrs.note"),
    "lone surrogate in a key": (_event_json(attrs='{"n\\udc00": 1}'), "attrs['n\\udc00']"),
    "lone surrogate in a service": (_event_json(
        "access.granted", "pool-gate", attrs='{"service": "power\\ud800", "badge": "'
        + "ab" * 16 + '"}'), "attrs.service"),
    "NUL in a value": (_event_json(attrs='{"note": "a\\u0000b"}'), "attrs.note"),
    "NaN": (_event_json(attrs='{"level": NaN}'), "attrs.level"),
    "Infinity": (_event_json(attrs='{"level": -Infinity}'), "attrs.level"),
    "integer past 64 bits": (_event_json(attrs='{"n": ' + str(2**70) + "}"), "attrs.n"),
    "nested too deep": (_event_json(attrs='{"a": [[[[[1]]]]]}'), "attrs.a"),
    "too many attributes": (_event_json(attrs=json.dumps({f"k{i}": i for i in range(65)})),
                            "attrs"),
    "string too long": (_event_json(attrs=json.dumps({"note": "x" * 5000})), "attrs.note"),
    "escape in a device": (_event_json(device="\u001b[2J"), "device"),
    "kind that is no kind": (_event_json(kind="Access Granted!"), "kind"),
    "far-future ts_ms": (_event_json(ts_ms=2**62), "ts_ms"),
    "negative ts_ms": (_event_json(ts_ms=-(2**63)), "ts_ms"),
    "far-future ended_ms": (_event_json("session.closed", "pedestal-1", attrs=json.dumps(
        {"ended_ms": 2**62, "started_ms": T0})), "attrs.ended_ms"),
    "started_ms as text": (_event_json("session.closed", "pedestal-1", attrs=json.dumps(
        {"started_ms": "yesterday"})), "attrs.started_ms"),
    "badge that is no text": (_event_json("access.granted", "gate-a", attrs=json.dumps(
        {"badge": ["ab"], "service": "pool"})), "attrs.badge"),
    "service that is a number": (_event_json("access.granted", "gate-a", attrs=json.dumps(
        {"service": 7})), "attrs.service"),
    "nested alarm attributes": (_event_json("alarm.raised", "level-1", attrs=json.dumps(
        {"rule": "high", "detail": {"rule": "other"}})), "attrs.detail"),
    "car park count as text": (_event_json("car_park.full", "p1", attrs=json.dumps(
        {"occupancy": "lots"})), "attrs.occupancy"),
}


@pytest.mark.parametrize("case", list(HOSTILE_EVENTS))
def test_an_event_no_reader_could_read_is_refused_whole(site: Site, case: str) -> None:
    hostile, field = HOSTILE_EVENTS[case]
    good = _event_json()
    answer = site.push_raw("events", _events_document(good, good, hostile, first_seq=41))
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert set(body) == {"error", "detail"}
    assert body["error"] == "invalid_record"
    assert "record 2 (seq 43)" in body["detail"], body["detail"]
    assert field in body["detail"], body["detail"]
    body["detail"].encode("ascii")  # any client can show it
    assert site.stored_events() == 0, "nothing of a refused batch is stored"
    assert site.get("/v1/events")["events"] == []


def _readings_document(ts_ms: int, quantity: str = "voltage", value: str = "230.1") -> str:
    return (f'{{"first_seq": 1, "readings": [{{"device": "m1", "quantity": "{quantity}", '
            f'"ts_ms": {ts_ms}, "value": {value}, "quality": 0}}]}}')


@pytest.mark.parametrize(
    ("document", "headers", "field"),
    [
        # Finding 5: the clock shift overflowed 64 bits (500 on both stores).
        (_readings_document(-(2**63)), {"X-Ponton-Sent-At": "9007199254740992"}, "Sent-At"),
        (_readings_document(-(2**63)), {"X-Ponton-Sent-At": "3600000"}, "ts_ms"),
        (_readings_document(T0), {"X-Ponton-Sent-At": "9007199254740992"}, "Sent-At"),
        # Finding 2: far-future timestamps were stored, then broke reports.
        (_readings_document(2**62), {}, "ts_ms"),
        (_readings_document(T0, "parking_occupancy", "1e300"), {}, "value"),
        (_readings_document(T0, "parking_capacity", "-3"), {}, "value"),
    ],
)
def test_readings_and_clock_headers_outside_the_window_are_refused(
    site: Site, document: str, headers: dict[str, str], field: str,
) -> None:
    answer = site.push_raw("readings", document, PLAIN_TYPE, headers)
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_record"), answer.text
    assert field in answer.json()["detail"]
    assert site.get("/v1/latest")["values"] == []


def test_a_timestamp_a_day_ahead_is_flagged_and_one_beyond_refused(site: Site) -> None:
    day = 86_400_000
    near = site.push_raw("readings", _readings_document(now_ms() + day - 60_000), PLAIN_TYPE)
    assert near.status_code == 200, near.text
    far = site.push_raw("readings", _readings_document(now_ms() + day + 60_000), PLAIN_TYPE)
    assert far.status_code == 400, far.text


def test_a_1970_clock_is_still_corrected_and_never_overflows(site: Site) -> None:
    answer = site.push_raw("readings", _readings_document(1_000), PLAIN_TYPE,
                           {"X-Ponton-Sent-At": "61000"})
    assert answer.status_code == 200, answer.text
    [value] = site.get("/v1/latest")["values"]
    assert abs(value["ts_ms"] - (now_ms() - 60_000)) < 120_000, "moved by the skew"


# Readers: rows written to the database directly, as an older hub stored them.

_BAD_ATTRS = ['{"note": "\\ud800"}', '{"level": NaN}', "not json", "[1, 2]",
              '{"note": "a\\u0000b"}']


def _insert_bad_rows(site: Site) -> None:
    """Good records pushed, then bad ones stored beside them through the database."""
    registered = [f"AA{i:08X}" for i in range(5)]
    site.register(registered)
    session_end = T0 + 3_600_000
    good = [
        Event("note", "d1", T0, {"n": 1}),
        *(Event("access.granted", "pool-gate", T0 + i, {
            "badge": site.badge(number), "category": "resident", "service": "pool",
            "reason": "granted"}) for i, number in enumerate(registered)),
        Event("session.closed", "pedestal-1", session_end, {
            "badge": site.badge(registered[0]), "started_ms": T0, "ended_ms": session_end,
            "kwh": 2.5, "m3": 0.5}),
        Event("alarm.raised", "level-1", T0, {"rule": "high", "value": 3.2}),
    ]
    site.push("events", 1, good)
    two = ('{"first_seq": 1, "readings": ['
           f'{{"device": "m1", "quantity": "voltage", "ts_ms": {T0}, "value": 230.1}}, '
           f'{{"device": "m2", "quantity": "voltage", "ts_ms": {T0}, "value": 231.0}}]}}')
    assert site.push_raw("readings", two, PLAIN_TYPE).status_code == 200
    with site.hub.engine.begin() as conn:
        gateway = conn.execute(select(gateways.c.id, gateways.c.territory_id)
                               .where(gateways.c.territory_id.in_(site.territory_ids()))
                               ).one()
        stream = conn.execute(select(streams.c.id).where(streams.c.gateway_id == gateway.id,
                                                         streams.c.name == "events")).scalar()
        readings_stream = conn.execute(select(streams.c.id).where(
            streams.c.gateway_id == gateway.id, streams.c.name == "readings")).scalar()
        series_id = conn.execute(select(series.c.id).where(
            series.c.gateway_id == gateway.id, series.c.device == "m1")).scalar()
        bad: list[tuple[str, str, int, str]] = [
            *(("note", "d1", T0 + 1, attrs) for attrs in _BAD_ATTRS),
            ("note", "d1", 2**62, "{}"),
            ("note", "d1", -(2**63), "{}"),
            ("no\u001bte", "d\u009b1", T0 + 2, "{}"),
            ("access.granted", "pool-gate", T0 + 10, json.dumps(
                {"service": "power\ud800", "badge": site.badge(registered[0]),
                 "category": "resident"})),
            ("access.granted", "pool-gate", 2**62, json.dumps(
                {"service": "pool", "badge": site.badge(registered[1])})),
            ("session.closed", "pedestal-1", session_end, json.dumps(
                {"badge": site.badge(registered[1]), "started_ms": 1, "ended_ms": 2**62,
                 "kwh": 1.0})),
            ("session.closed", "pedestal-1", session_end, '{"kwh": NaN}'),
            ("alarm.raised", "level-1", T0 + 5, '{"rule": "\\ud800", "value": NaN}'),
            ("alarm.raised", "level-1", T0 + 6, "not json"),
            ("alarm.cleared", "level-1", T0 + 7, '{"rule": "a\\u0000"}'),
            ("car_park.full", "p1", T0 + 8, "{}"),
        ]
        conn.execute(events.insert(), [
            {"stream_id": stream, "seq": 100 + i, "territory_id": gateway.territory_id,
             "gateway_id": gateway.id, "kind": kind, "device": device, "ts_ms": ts,
             "attrs": attrs} for i, (kind, device, ts, attrs) in enumerate(bad)])
        park = conn.execute(series.insert().values(
            territory_id=gateway.territory_id, gateway_id=gateway.id, device="p1",
            quantity="parking_occupancy").returning(series.c.id)).scalar_one()
        conn.execute(readings.insert(), [
            {"stream_id": readings_stream, "seq": 100, "series_id": series_id,
             "ts_ms": T0 + 60_000, "value": float("inf"), "quality": 0},
            {"stream_id": readings_stream, "seq": 101, "series_id": series_id,
             "ts_ms": T0 + 1, "value": float("-inf"), "quality": 0},
            {"stream_id": readings_stream, "seq": 102, "series_id": park,
             "ts_ms": 2**62, "value": 12.0, "quality": 0},
        ])


def test_every_reader_skips_bad_stored_rows_and_answers_the_rest(site: Site) -> None:
    _insert_bad_rows(site)
    page = site.get("/v1/events", limit=1000)["events"]
    assert sorted(e["kind"] for e in page) == sorted(
        ["note", *["access.granted"] * 5, "session.closed", "alarm.raised", "car_park.full"])
    assert site.get("/v1/events", kind="note")["events"][0]["attrs"] == {"n": 1}
    assert site.get("/v1/latest")["values"] == [  # m1's newest is infinite: skipped
        {"territory": site.territory, "gateway": "gw", "device": "m2", "quantity": "voltage",
         "ts_ms": T0, "value": 231.0, "quality": 0}]
    buckets = site.get("/v1/series", gateway="gw", device="m1", quantity="voltage",
                       from_ms=T0 - 60_000, to_ms=T0 + 120_000, bucket_s=60)["buckets"]
    assert [(b["bucket_ms"], b["avg"], b["count"]) for b in buckets] == [(T0 - T0 % 60_000,
                                                                          230.1, 1)]
    services = site.get("/v1/reports/services")
    assert [(c["service"], c["badges"]) for c in services["cells"]] == [("pool", 5)]
    by_month = site.get("/v1/reports/consumption", by="month")
    assert [(r["month"], r["sessions"], r["kwh"]) for r in by_month["rows"]] == [
        (NOVEMBER, 1, 2.5)]
    public = httpx.get(f"{site.hub.url}/v1/open/{site.territory}/services",
                       params={"month": NOVEMBER}, timeout=10)
    assert public.status_code == 200, public.text
    assert [c["badges"] for c in public.json()["cells"]] == [5]
    alarms = site.get("/v1/alarms")["alarms"]
    assert [(a["rule"], a["cleared_ms"]) for a in alarms] == [("high", None)]
    assert site.get("/v1/alarms", state="open")["alarms"] == alarms
    assert [p["car_park"] for p in site.get("/v1/car-parks")["car_parks"]] == []
    for args in (("report", "services", "--territory", site.territory),
                 ("report", "consumption", "--territory", site.territory, "--by", "month"),
                 ("report", "services", "--territory", site.territory, "--json")):
        done = site.cli(*args)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
    log = (site.hub.data_dir / "hub.log").read_text(encoding="utf-8")
    assert "unreadable stored row" in log


def test_made_up_pseudonyms_do_not_push_a_cell_over_k(site: Site) -> None:
    """Four real holders and forty pseudonyms a gateway invented: the cell stays hidden."""
    real = [f"BB{i:08X}" for i in range(4)]
    site.register(real)
    uses = [Event("access.granted", "pool-gate", T0 + i, {
        "badge": badge, "category": "resident", "service": "pool", "reason": "granted"})
        for i, badge in enumerate([*(site.badge(n) for n in real),
                                   *(f"{i:032x}" for i in range(40))])]
    site.push("events", 1, uses)
    report = site.get("/v1/reports/services", month=NOVEMBER)
    assert report["cells"] == []
    assert report["suppressed_cells"] == 1
    public = httpx.get(f"{site.hub.url}/v1/open/{site.territory}/services",
                       params={"month": NOVEMBER}, timeout=10).json()
    assert public["cells"] == []
    site.register(["BB00000004"])
    site.push("events", len(uses) + 1, [Event("access.granted", "pool-gate", T0 + 99, {
        "badge": site.badge("BB00000004"), "category": "resident", "service": "pool"})])
    [cell] = site.get("/v1/reports/services", month=NOVEMBER)["cells"]
    assert (cell["badges"], cell["uses"]) == (5, 5), "only registered badges count"


# Properties: whatever the checks accept comes back unchanged from every reader; whatever
# they refuse is refused in the error shape; no input answers 500.

_ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=80)


@pytest.fixture(scope="module")
def prober(hub: HubProcess) -> Iterator[Prober]:
    territory = f"prober{next(_names)}"
    identity = hub.enroll(territory, "gw")
    with hub.operator(territory) as operator, httpx.Client(
        base_url=hub.url, timeout=30, headers={"Authorization": f"Bearer {identity['token']}"}
    ) as gateway:
        yield Prober(operator, gateway)


class Prober:
    """One gateway pushing example after example, with seqs and times that only grow."""

    def __init__(self, operator: httpx.Client, gateway: httpx.Client) -> None:
        self.operator, self.gateway = operator, gateway
        self.seq = {"events": 1, "readings": 1}
        self.ts = T0

    def push(self, stream: str, document: dict[str, Any], **headers: str) -> httpx.Response:
        document = {"first_seq": self.seq[stream], **document}
        # ensure_ascii: lone surrogates travel as JSON escapes, as a hostile gateway sends them
        answer = self.gateway.post(f"/v1/gateway/streams/{stream}/batches",
                                   content=json.dumps(document).encode(),
                                   headers={"Content-Type": PLAIN_TYPE, **headers})
        assert answer.status_code in (200, 400), answer.text
        if answer.status_code == 200:
            self.seq[stream] += len(document.get("events", document.get("readings", [])))
        else:
            assert set(answer.json()) == {"error", "detail"}
        return answer


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_ANY_TEXT)
def test_any_text_the_checks_accept_reads_back_unchanged(prober: Prober, text: str) -> None:
    prober.ts += 1000
    ts = prober.ts
    batch = [Event("note", "d1", ts, {"note": text}),
             Event("alarm.raised", "level-1", ts, {"rule": text, "value": 1.0}),
             Event("alarm.cleared", "level-1", ts + 1, {"rule": text, "value": 0.0})]
    expected = all(event_problem(e, READABLE) is None for e in batch)
    answer = prober.push("events", {"events": [
        {"kind": e.kind, "device": e.device, "ts_ms": e.ts_ms, "attrs": e.attrs}
        for e in batch]})
    assert (answer.status_code == 200) == expected, answer.text
    page = prober.operator.get("/v1/events", params={"limit": 3})
    assert page.status_code == 200, page.text
    alarms = prober.operator.get("/v1/alarms", params={"limit": 1})
    assert alarms.status_code == 200, alarms.text
    if expected:
        assert page.json()["events"][2]["attrs"] == {"note": text}
        [alarm] = alarms.json()["alarms"]
        assert (alarm["rule"], alarm["raised_ms"], alarm["cleared_ms"]) == (text, ts, ts + 1)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ts_ms=st.integers(-(2**63), 2**63 - 1) | st.integers(0, 2 * T0),
       sent_at=st.none() | st.integers(0, 2**53))
def test_no_timestamp_and_clock_header_overflow_the_clock_shift(
    prober: Prober, ts_ms: int, sent_at: int | None,
) -> None:
    headers = {} if sent_at is None else {"X-Ponton-Sent-At": str(sent_at)}
    reading = {"device": "clock", "quantity": "voltage", "ts_ms": ts_ms, "value": 230.0}
    answer = prober.push("readings", {"readings": [reading]}, **headers)
    latest = prober.operator.get("/v1/latest", params={"device": "clock"})
    assert latest.status_code == 200, latest.text
    if answer.status_code == 200:
        [value] = latest.json()["values"]
        assert 0 <= value["ts_ms"] <= now_ms() + AHEAD_MS
    else:
        assert answer.json()["error"] == "invalid_record"


def test_refusals_and_skips_are_counted_and_warned_about_once_a_minute(
    site: Site, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """In the hub's own code, on its database: the counters a future /metrics exposes."""
    monkeypatch.setattr(bad_records, "_last_warning", {})
    before = bad_records.counts()
    with site.hub.engine.connect() as conn:
        row = conn.execute(select(gateways).where(
            gateways.c.territory_id.in_(site.territory_ids()))).one()
    caller = GatewayRef(row.id, row.territory_id, row.name, row.incarnation)
    hostile = DecodedBatch("events", "event", 1, [Event("note", "d1", T0, {"n": float("nan")})])
    with pytest.raises(BadRequest, match=r"record 0 \(seq 1\) of stream events: attrs.n"):
        store_batch(site.hub.engine, caller, "events", hostile, received_ms=now_ms(),
                    sent_at_ms=None, backlog=None, clock=ClockPolicy(120_000))
    _insert_bad_rows(site)
    with caplog.at_level(logging.WARNING, "sync_server.bad_records"), \
            site.hub.engine.connect() as conn:
        for _ in range(3):
            events_page(conn, Scope(row.territory_id), gateway=None, kind=None, device=None,
                        from_ms=None, to_ms=None, limit=100)
    after = bad_records.counts()
    assert after["refused"].get("attrs", 0) == before["refused"].get("attrs", 0) + 1
    skipped = {key: n - before["skipped"].get(key, 0) for key, n in after["skipped"].items()}
    # Three pages, each skipping the eleven rows with bad attributes, three far out of
    # time and one whose kind holds an escape (_insert_bad_rows).
    assert {key: n for key, n in skipped.items() if n} == {
        "events attrs": 3 * 11, "events ts_ms": 3 * 3, "events kind": 3 * 1}
    warnings = [r for r in caplog.records if r.name == "sync_server.bad_records"]
    assert len(warnings) == 1, "one warning a minute, however many rows"
    assert "events skipped" in warnings[0].getMessage()
