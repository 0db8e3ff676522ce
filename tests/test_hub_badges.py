"""Badges over real HTTP: added, imported and revoked by an operator, published as a signed
policy that a gateway verifies and parses, and never stored as card numbers.

Each test has a territory of its own, on the SQLite hub and the PostgreSQL hub.
"""

from __future__ import annotations

import base64
import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from edge_agent.codecs.access_policy import NO_END, AccessPolicy, parse_policy
from edge_agent.codecs.bundle import verify_bundle
from edge_agent.codecs.pseudonyms import pseudonym
from edge_agent.records import now_ms
from sync_server.db.schema import metadata
from tests.helpers.hub import ACCESS_RULES, HubProcess, start_hub

_territories = itertools.count(1)
_PARIS = ZoneInfo("Europe/Paris")
#: Card numbers distinctive enough to search a database dump for.
_CARDS = ("A1B2C3D4E5", "0F1E2D3C4B5A6978", "C0FFEE0123")


@dataclass
class Site:
    """A fresh territory with rules, its operator's client and an enrolled gateway."""

    hub: HubProcess
    territory: str
    operator: httpx.Client
    gateway_token: str
    public_key: bytes
    badge_key: bytes

    def policy(self) -> AccessPolicy:
        """The policy the gateway fetches, verified with the pinned key and parsed."""
        answer = httpx.get(f"{self.hub.url}/v1/gateway/bundles/policy", timeout=10,
                           headers={"Authorization": f"Bearer {self.gateway_token}"})
        assert answer.status_code == 200, answer.text
        bundle = verify_bundle(answer.content, self.public_key, kind="policy",
                               territory=self.territory)
        return parse_policy(bundle.payload, version=bundle.version,
                            expires_at_ms=bundle.expires_at_ms)

    def card(self, number: str) -> bytes:
        """The pseudonym the gateway computes for a card read as ``number`` (hex)."""
        return pseudonym(self.badge_key, bytes.fromhex(number))

    def import_csv(self, text: str, **params: Any) -> httpx.Response:
        return self.operator.post("/v1/badges/import", content=text.encode(), params=params,
                                  headers={"Content-Type": "text/csv"})


@pytest.fixture
def site(hub: HubProcess) -> Iterator[Site]:
    territory = f"badges{next(_territories)}"
    identity = hub.enroll(territory, "gw1")
    with hub.operator(territory) as operator:
        answer = operator.put("/v1/policy/rules", json=ACCESS_RULES)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"policy_version": 1}
        yield Site(hub, territory, operator, identity["token"],
                   base64.b64decode(identity["signing_public_key"]),
                   base64.b64decode(identity["badge_key"]))


def _epoch(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=_PARIS).timestamp())


def test_an_added_badge_reaches_the_gateway_by_pseudonym(site: Site) -> None:
    answer = site.operator.post("/v1/badges", json={
        "number": "a1:b2:c3:d4:e5", "category": "visitor", "valid_from": "2027-07-01",
        "valid_until": "2027-08-31", "label": "berth B-12"})
    assert answer.status_code == 200, answer.text
    expected = site.card(_CARDS[0]).hex()
    assert answer.json() == {"added": 1, "updated": 0, "unchanged": 0, "revoked": 0,
                             "policy_version": 2, "pseudonyms": [expected], "problems": []}
    policy = site.policy()
    assert policy.version == 2
    assert policy.categories == ("resident", "visitor", "staff")
    record = policy.badges.find(site.card(_CARDS[0]))
    assert record is not None
    assert (policy.category_name(record.category), record.revoked, record.master) == (
        "visitor", False, False)
    assert record.valid_from_s == _epoch("2027-07-01T00:00")
    assert record.valid_until_s == _epoch("2027-09-01T00:00"), "a date is valid to its end"

    listed = site.operator.get("/v1/badges").json()["badges"]
    assert [(b["pseudonym"], b["category"], b["label"], b["revoked_ms"]) for b in listed] == [
        (expected, "visitor", "berth B-12", None)]
    shown = site.operator.get(f"/v1/badges/{expected}").json()
    assert shown["valid_until_s"] == _epoch("2027-09-01T00:00")
    assert "berth" not in str(policy), "labels stay at the hub"


def test_adding_the_same_badge_again_publishes_nothing(site: Site) -> None:
    body = {"number": _CARDS[0], "category": "resident", "master": True}
    assert site.operator.post("/v1/badges", json=body).json()["policy_version"] == 2
    again = site.operator.post("/v1/badges", json=body).json()
    assert (again["unchanged"], again["policy_version"]) == (1, None)
    changed = site.operator.post("/v1/badges", json={**body, "category": "staff"}).json()
    assert (changed["updated"], changed["policy_version"]) == (1, 3)
    record = site.policy().badges.find(site.card(_CARDS[0]))
    assert record is not None
    assert (record.category, record.master, record.valid_until_s) == (2, True, NO_END)


def test_a_revoked_badge_stays_in_the_policy_marked_revoked(site: Site) -> None:
    site.operator.post("/v1/badges", json={"number": _CARDS[0], "category": "resident"})
    site.operator.post("/v1/badges", json={"number": _CARDS[1], "category": "staff"})
    answer = site.operator.post("/v1/badges/revoke", json={"number": _CARDS[0]})
    assert answer.status_code == 200, answer.text
    assert (answer.json()["revoked"], answer.json()["policy_version"]) == (1, 4)
    by_pseudonym = site.operator.post("/v1/badges/revoke",
                                      json={"pseudonym": site.card(_CARDS[1]).hex().upper()})
    assert by_pseudonym.json()["policy_version"] == 5
    again = site.operator.post("/v1/badges/revoke", json={"number": _CARDS[0]}).json()
    assert (again["unchanged"], again["policy_version"]) == (1, None)
    policy = site.policy()
    revoked = [policy.badges.find(site.card(card)) for card in _CARDS[:2]]
    assert [record.revoked if record else None for record in revoked] == [True, True]
    assert len(policy.badges) == 2

    refused = site.operator.post("/v1/badges", json={"number": _CARDS[0],
                                                     "category": "resident"})
    assert (refused.status_code, refused.json()["error"]) == (409, "revoked")
    assert "cannot be registered again" in refused.json()["detail"]
    listed = site.operator.get("/v1/badges", params={"revoked": "true"}).json()["badges"]
    assert len(listed) == 2
    unknown = site.operator.post("/v1/badges/revoke", json={"number": _CARDS[2]})
    assert (unknown.status_code, unknown.json()["error"]) == (404, "not_found")


def test_a_badge_whose_validity_ended_leaves_the_policy(site: Site) -> None:
    site.operator.post("/v1/badges", json={"number": _CARDS[0], "category": "visitor",
                                           "valid_until": "2020-01-01"})
    site.operator.post("/v1/badges", json={"number": _CARDS[1], "category": "visitor"})
    policy = site.policy()
    assert policy.badges.find(site.card(_CARDS[0])) is None
    assert policy.badges.find(site.card(_CARDS[1])) is not None


_CSV = (
    "number,form,category,valid_from,valid_until,master,label\n"
    f"{_CARDS[0]},hex,resident,2026-01-01,2026-12-31,no,berth A-1\n"
    f"{_CARDS[1]},,staff,,,yes,\n"
    f'{_CARDS[2]},hex,visitor,2027-07-01T08:00,2027-07-15T18:00Z,0,"quai, est"\n'
)


def test_an_import_publishes_once_and_a_reimport_changes_nothing(site: Site) -> None:
    answer = site.import_csv(_CSV)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"added": 3, "updated": 0, "unchanged": 0, "revoked": 0,
                             "policy_version": 2, "pseudonyms": [], "problems": []}
    policy = site.policy()
    records = {card: policy.badges.find(site.card(card)) for card in _CARDS}
    assert {card: (policy.category_name(r.category), r.master) for card, r in records.items()
            if r is not None} == {_CARDS[0]: ("resident", False), _CARDS[1]: ("staff", True),
                                  _CARDS[2]: ("visitor", False)}
    third = records[_CARDS[2]]
    assert third is not None
    assert third.valid_from_s == _epoch("2027-07-01T08:00")
    assert third.valid_until_s == int(datetime.fromisoformat("2027-07-15T18:00Z").timestamp())

    again = site.import_csv(_CSV).json()
    assert (again["unchanged"], again["policy_version"]) == (3, None)
    changed = site.import_csv(_CSV.replace("berth A-1", "berth A-2")).json()
    assert (changed["updated"], changed["unchanged"], changed["policy_version"]) == (1, 2, 3)
    labels = {b["label"] for b in site.operator.get("/v1/badges").json()["badges"]}
    assert labels == {"berth A-2", None, "quai, est"}


def test_printed_forms_give_the_pseudonym_of_the_bytes_they_keep(site: Site) -> None:
    text = ("number,form,length,category\n"
            "3808980205,8h10d,,resident\n"      # the last 4 bytes of 62E3086CED
            "424715775213,dec,5,staff\n"        # all 5 bytes
            "\"008,27885\",3+5,,visitor\n")     # the last 3 bytes
    answer = site.import_csv(text)
    assert answer.status_code == 200, answer.text
    policy = site.policy()
    found = [policy.badges.find(site.card(raw)) for raw in ("E3086CED", "62E3086CED", "086CED")]
    assert [policy.category_name(r.category) if r else None for r in found] == [
        "resident", "staff", "visitor"]


def test_semicolons_and_a_byte_order_mark_are_read(site: Site) -> None:
    text = "\ufeffNumber;Category;Label\n" + f"{_CARDS[0]};resident;ponton 3\n"
    answer = site.import_csv(text)
    assert answer.status_code == 200, answer.text
    assert answer.json()["added"] == 1


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        ("number,category\n"
         f"{_CARDS[0]},resident\n"
         "zz-top,resident\n"
         f"{_CARDS[1]},pirate\n"
         f"{_CARDS[2]},visitor,extra\n"
         f"{_CARDS[0].lower()},staff\n",
         [(3, "number", "'zz-top' is not hexadecimal"),
          (4, "category", "'pirate' is not a category"),
          (5, "-", "3 cells, the header names 2"), (6, "number", "the same card as line 2")]),
        ("number,category,valid_from,valid_until,master,form\n"
         f"{_CARDS[0]},resident,2026-02-30,,,hex\n"
         f"{_CARDS[1]},resident,2026-06-01,2026-05-01,,hex\n"
         f"{_CARDS[2]},resident,,,maybe,hex\n"
         "0102,resident,,,,w26\n"
         "0304,resident,,9999-12-31,,\n"
         "424715775213,resident,,,,dec\n",
         [(2, "valid_from", "not an ISO 8601 date"), (3, "valid_until", "after valid_from"),
          (4, "master", "not true or false"), (5, "form", "unknown number form 'w26'"),
          (6, "valid_until", "outside 1970-2105"), (7, "number", "needs the card's byte")]),
        ("numero,category,colour\n1,resident,red\n",
         [(1, "numero", "unknown column"), (1, "colour", "unknown column"),
          (1, "number", "required column missing")]),
        ("", [(1, "-", "the file is empty")]),
        ('number,category\n"0102,resident\n', [(2, "-", "not valid CSV")]),
        ("number,category,label\n" f"{_CARDS[0]},resident,{'x' * 129}\n",
         [(2, "label", "at most 128 characters")]),
    ],
)
def test_a_wrong_file_is_reported_by_line_and_field_and_nothing_is_stored(
    site: Site, text: str, problems: list[tuple[int, str, str]]
) -> None:
    answer = site.import_csv(text)
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_rows"), answer.text
    assert "nothing was imported" in answer.json()["detail"]
    reported = answer.json()["problems"]
    assert [(p["line"], p["field"]) for p in reported] == [(line, f) for line, f, _ in problems]
    for problem, (_, _, reason) in zip(reported, problems, strict=True):
        assert reason in problem["reason"]
    assert site.operator.get("/v1/badges").json() == {"badges": []}
    assert site.policy().version == 1


def test_a_partial_import_stores_the_good_lines(site: Site) -> None:
    text = f"number,category\n{_CARDS[0]},resident\n{_CARDS[1]},pirate\n"
    answer = site.import_csv(text, partial="true")
    assert answer.status_code == 200, answer.text
    assert (answer.json()["added"], answer.json()["policy_version"]) == (1, 2)
    assert [(p["line"], p["field"]) for p in answer.json()["problems"]] == [(3, "category")]


def test_a_revoked_card_in_an_import_is_reported(site: Site) -> None:
    site.import_csv(_CSV)
    site.operator.post("/v1/badges/revoke", json={"number": _CARDS[1]})
    answer = site.import_csv(_CSV)
    assert answer.status_code == 400
    assert [(p["line"], p["field"]) for p in answer.json()["problems"]] == [(3, "number")]
    assert "revoked on" in answer.json()["problems"][0]["reason"]


def test_an_import_without_rules_is_refused(hub: HubProcess) -> None:
    territory = f"badges{next(_territories)}"
    hub.territory(territory)
    with hub.operator(territory) as operator:
        answer = operator.post("/v1/badges/import", content=_CSV.encode())
        assert (answer.status_code, answer.json()["error"]) == (409, "no_policy_rules")
        assert "policy set" in answer.json()["detail"]


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({**ACCESS_RULES, "timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({**ACCESS_RULES, "gates": {"g": {"zone": "moon"}}}, "gate g: zone 'moon' is not in zones"),
        ({**ACCESS_RULES, "colour": "blue"}, "unknown field(s) 'colour'"),
        ({**ACCESS_RULES, "categories": ["resident", "resident"]}, "resident listed twice"),
    ],
)
def test_rules_the_gateways_would_refuse_are_refused_with_their_message(
    site: Site, rules: dict[str, Any], message: str
) -> None:
    answer = site.operator.put("/v1/policy/rules", json=rules)
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_policy")
    assert message in answer.json()["detail"]
    assert site.operator.get("/v1/policy/rules").json()["rules"] == ACCESS_RULES


def test_rules_cannot_drop_a_category_badges_still_hold(site: Site) -> None:
    site.operator.post("/v1/badges", json={"number": _CARDS[0], "category": "visitor"})
    rules = {**ACCESS_RULES, "categories": ["resident", "staff"]}
    answer = site.operator.put("/v1/policy/rules", json=rules)
    assert answer.status_code == 400
    assert "visitor (1 badges)" in answer.json()["detail"]
    summary = site.operator.get("/v1/policy/rules").json()
    assert (summary["policy"]["version"], summary["badges"]) == (2, 1)
    reordered = {**ACCESS_RULES, "categories": ["staff", "visitor", "resident"]}
    assert site.operator.put("/v1/policy/rules", json=reordered).status_code == 200
    record = site.policy().badges.find(site.card(_CARDS[0]))
    assert record is not None
    assert record.category == 1, "categories are stored by name, indexed at publication"

    site.operator.post("/v1/badges/revoke", json={"number": _CARDS[0]})
    assert site.operator.put("/v1/policy/rules", json=rules).status_code == 200, (
        "revoked badges do not hold a category back")
    assert site.policy().badges.find(site.card(_CARDS[0])) is None


def test_no_card_number_is_stored_anywhere(site: Site) -> None:
    site.import_csv(_CSV)
    site.operator.post("/v1/badges/revoke", json={"number": _CARDS[0]})
    needles = [card.lower() for card in _CARDS] + [str(int(card, 16)) for card in _CARDS]
    raw = [bytes.fromhex(card) for card in _CARDS]
    with site.hub.engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        assert not any(r in bytes(value) for r in raw), table.name
                    text = str(value).lower()
                    assert not any(n in text for n in needles), (table.name, text[:200])
    if site.hub.database_url.startswith("sqlite"):
        files = [site.hub.data_dir / name for name in ("hub.db", "hub.db-wal")]
        dump = b"".join(path.read_bytes() for path in files if path.exists())
        for card in _CARDS:
            assert bytes.fromhex(card) not in dump
            assert card.encode() not in dump
            assert card.lower().encode() not in dump


def test_an_unchanged_policy_is_signed_again_before_it_expires(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Half of it (renewal) leaves a loaded machine seconds between two fetches.
    monkeypatch.setenv("PONTON_HUB_POLICY_LIFETIME_S", "12")
    with start_hub(tmp_path) as hub:
        identity = hub.enroll("refresh", "gw1")
        with hub.operator("refresh") as operator:
            operator.put("/v1/policy/rules", json=ACCESS_RULES)
            operator.post("/v1/badges", json={"number": _CARDS[0], "category": "staff"})
        site = Site(hub, "refresh", operator, identity["token"],
                    base64.b64decode(identity["signing_public_key"]),
                    base64.b64decode(identity["badge_key"]))
        first = site.policy()
        assert first.version == 2
        assert first.expires_at_ms - now_ms() <= 12_000
        assert site.policy().version == 2, "fresh: served as it is"
        time.sleep(6.2)  # past half its life
        renewed = site.policy()
        assert renewed.version == 3
        assert renewed.expires_at_ms > first.expires_at_ms
        assert renewed.badges.find(site.card(_CARDS[0])) is not None
        assert site.policy().version == 3, "renewed once, not at every fetch"
