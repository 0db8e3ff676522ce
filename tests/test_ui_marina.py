"""The marina, access, badges and car-park pages over HTTP against a real hub process (SQLite
and PostgreSQL), with records pushed through the real push route (tests/helpers/
marina_world.py): what each role sees, the CSV for billing, the running session's kWh, the
decisions log's filters, and another territory's objects answering like missing ones.
"""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from tests.helpers.hub import HubProcess
from tests.helpers.marina_world import MarinaRecords, csrf_of, marina_records, signed_in


@pytest.fixture(scope="module")
def records(hub: HubProcess) -> MarinaRecords:
    return marina_records(hub)


def rows(html: str, table: str) -> list[str]:
    """The text of each body row of ``<table class="TABLE">``, tags stripped."""
    body = html.split(f'<table class="{table}">', 1)[1].split("</table>", 1)[0]
    return [" ".join(re.sub(r"<[^>]+>", " ", row).split())
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body.split("<tbody>", 1)[1], re.S)]


@pytest.mark.parametrize(("name", "allowed", "refused"), [
    ("sid", ["/marina", "/badges", "/access"], ["/car-parks"]),
    ("olga", ["/marina", "/badges", "/access", "/car-parks"], []),
])
def test_each_role_sees_its_pages(hub: HubProcess, records: MarinaRecords, name: str,
                                  allowed: list[str], refused: list[str]) -> None:
    with signed_in(hub, name) as ui:
        home = ui.get("/marina")
        for path in allowed:
            assert ui.get(path).status_code == 200, path
            assert f'href="/ui{path}"' in home.text  # in the menu
        for path in refused:
            assert ui.get(path).status_code == 403, path
            assert f'href="/ui{path}"' not in home.text


def test_an_admin_chooses_a_territory_before_its_marina(hub: HubProcess,
                                                        records: MarinaRecords) -> None:
    with signed_in(hub, "ada") as ui:
        parks = ui.get("/car-parks")  # every territory's car parks, each one named
        assert parks.status_code == 200
        assert 'data-car-park="P-quai"' in parks.text
        assert 'data-car-park="P-secret"' in parks.text
        refused = ui.get("/marina")
        assert refused.status_code == 400
        assert 'data-code="territory_required"' in refused.text
        chosen = ui.post("/territory", data={"csrf": csrf_of(parks.text), "territory": "port"})
        assert chosen.status_code == 303
        assert 'data-pedestal="berth-a12"' in ui.get("/marina").text


def test_pedestals_free_or_in_use_with_the_running_session(hub: HubProcess,
                                                           records: MarinaRecords) -> None:
    with signed_in(hub, "sid") as ui:
        page = ui.get("/marina").text
    cards = dict(re.findall(r'<div class="card" data-pedestal="([^"]+)">(.*?)</div>', page,
                            re.S))
    assert set(cards) == {"berth-a12", "berth-b03"}  # never the other territory's
    assert 'class="kwh">3,5 kWh' in cards["berth-a12"]  # 103.5 now, 100 at opening
    assert "B-03" in cards["berth-a12"]  # the badge by its label
    assert "pill ok" in cards["berth-b03"]  # free
    history = rows(page, "sessions")
    assert len(history) == 2
    assert history[0].startswith("berth-b03 B-03")
    assert "timeout" in history[0]


def test_consumption_as_csv_for_billing(hub: HubProcess, records: MarinaRecords) -> None:
    with signed_in(hub, "olga") as ui:
        by_berth = ui.get("/marina/consumption.csv", params={"by": "pedestal"})
        by_badge = ui.get("/marina/consumption.csv", params={"by": "badge",
                                                             "month": "2026-11"})
        by_month = ui.get("/marina/consumption.csv", params={"by": "month"})
        wrong = ui.get("/marina/consumption.csv", params={"month": "2026-13"})
        page = ui.get("/marina", params={"by": "month", "month": ""}).text  # all time
        this_month = ui.get("/marina", params={"by": "month"}).text
    assert by_berth.headers["content-type"] == "text/csv; charset=utf-8"
    assert 'filename="consumption-pedestal-all.csv"' in by_berth.headers["content-disposition"]
    assert by_berth.text == ("gateway,pedestal,sessions,kwh,m3\r\n"
                             "port-gw,berth-a12,1,2.5,0.1\r\n"
                             "port-gw,berth-b03,1,1.0,0.0\r\n")
    assert by_badge.text == ("badge,category,label,sessions,kwh,m3\r\n"
                             f"{records.boater},boater,A-12,1,2.5,0.1\r\n")
    assert by_month.text == ("month,sessions,kwh,m3\r\n"
                             "2026-11,1,2.5,0.1\r\n2026-12,1,1.0,0.0\r\n")
    assert wrong.status_code == 400
    assert "2026-13" in wrong.text
    assert page.count("<rect ") == 2  # one bar per month
    assert ">2,5 kWh</text>" in page  # written as the viewer reads numbers
    assert rows(page, "consumption") == ["2026-11 1 2,5 0,1", "2026-12 1 1 0"]
    current = datetime.now(ZoneInfo("Europe/Paris")).strftime("%Y-%m")
    assert f'name="month" value="{current}"' in this_month  # a desk bills by the month
    assert len(rows(this_month, "consumption")) == 1


def test_decisions_log_filters_and_staff_see_only_staff_openings(
    hub: HubProcess, records: MarinaRecords
) -> None:
    with signed_in(hub, "olga") as ui:
        everything = ui.get("/access").text
        revoked = ui.get("/access", params={"reason": "revoked"}).text
        elsewhere = ui.get("/access", params={"gate": "other-gate"}).text
        other_day = ui.get("/access", params={"day": "2020-01-01"}).text
        bad_day = ui.get("/access", params={"day": "yesterday"})
        bad_reason = ui.get("/access", params={"reason": "bribe"})
    assert reasons(everything) == ["manual", "revoked", "granted"]
    assert reasons(revoked) == ["revoked"]
    assert "B-03" in rows(revoked, "decisions")[0]  # the badge by its label
    assert reasons(elsewhere) == []  # another territory's gate: nothing, as if none
    assert reasons(other_day) == []
    assert bad_day.status_code == 400
    assert bad_reason.status_code == 400
    assert rows(everything, "holders") == [rows(everything, "holders")[0]]
    assert rows(everything, "holders")[0].startswith("port-gw 3")
    with signed_in(hub, "sid") as ui:
        staff = ui.get("/access", params={"reason": "granted"}).text
    assert reasons(staff) == ["manual"]
    assert 'class="holders"' not in staff


def reasons(html: str) -> list[str]:
    """The reason code of each decision the page lists, newest first."""
    return re.findall(r'data-reason="([^"]*)"', html)


def test_car_parks_free_of_total_with_the_day_curve(hub: HubProcess,
                                                    records: MarinaRecords) -> None:
    with signed_in(hub, "olga") as ui:
        page = ui.get("/car-parks").text
    assert 'data-car-park="P-secret"' not in page
    card = page.split('data-car-park="P-quai"', 1)[1].split('<div class="card"', 1)[0]
    assert re.search(r"\b28\b[^<]*\b40\b", card)  # 28 free of 40: 12 taken
    assert 'role="img" aria-label="P-quai"' in card  # the day's curve


@pytest.mark.parametrize(("path", "params", "status"), [
    ("/access", {"gate": "x" * 300}, 200),  # no such gate: nothing listed
    ("/access", {"reason": "bribe" * 40}, 400),
    ("/access", {"day": "2026-02-30"}, 400),
    ("/marina", {"by": "y" * 40}, 400),
    ("/marina/consumption.csv", {"month": "2026-7"}, 400),
    ("/badges", {"category": "z" * 100, "state": "weird"}, 200),
])
def test_hostile_filters_answer_an_html_page_never_a_json_error(
    hub: HubProcess, records: MarinaRecords, path: str, params: dict[str, str], status: int
) -> None:
    with signed_in(hub, "olga") as ui:
        answer = ui.get(path, params=params)
    assert answer.status_code == status
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    if status == 400:
        assert 'data-code="invalid_request"' in answer.text
    else:
        assert "data-reason=" not in answer.text
        assert "data-pseudonym=" not in answer.text
