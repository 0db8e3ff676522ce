"""The badges page over HTTP against a real hub process (SQLite and PostgreSQL): add,
revoke and import with the registry's own rules, the import's line/field/reason report,
CSRF on every form, and another territory's badge answering like a missing one.
"""

from __future__ import annotations

import re

import httpx
import pytest

from tests.helpers.hub import HubProcess
from tests.helpers.marina_world import MarinaRecords, csrf_of, marina_records, signed_in
from tests.test_ui_marina import rows

#: Line 3: a category the rules do not have; line 4: not a hex number; line 5: line 2's card.
BAD_FILE = (b"number;category;label\n"
            b"0a0b0c0d0e;boater;C-01\n"
            b"0a0b0c0d0f;pirate;C-02\n"
            b"xyz;boater;C-03\n"
            b"0A:0B:0C:0D:0E;boater;C-04\n")


@pytest.fixture(scope="module")
def records(hub: HubProcess) -> MarinaRecords:
    return marina_records(hub)


def badges_of(hub: HubProcess, territory: str = "port") -> dict[str, dict[str, object]]:
    with hub.operator(territory) as api:
        listed = api.get("/v1/badges").json()["badges"]
    return {badge["label"]: badge for badge in listed}


def form_of(ui: httpx.Client) -> str:
    return csrf_of(ui.get("/badges").text)


def test_staff_add_a_badge_and_a_wrong_field_is_shown(hub: HubProcess,
                                                      records: MarinaRecords) -> None:
    with signed_in(hub, "sid") as ui:
        csrf = form_of(ui)
        added = ui.post("/badges", data={"csrf": csrf, "number": "3808980205", "form": "8H10D",
                                         "category": "boater", "valid_until": "2027-12-31",
                                         "label": "D-07"})
        wrong = ui.post("/badges", data={"csrf": csrf, "number": "12345678901234567890",
                                         "form": "8H10D", "category": "boater",
                                         "label": "D-08"})
    assert added.status_code == 200
    assert 'role="status"' in added.text
    assert badges_of(hub)["D-07"]["category"] == "boater"
    assert wrong.status_code == 400
    assert re.search(r'class="error">[^<]*number', wrong.text)
    assert "D-08" not in badges_of(hub)


def test_an_import_with_problems_stores_nothing_and_reports_each_line(
    hub: HubProcess, records: MarinaRecords
) -> None:
    with signed_in(hub, "olga") as ui:
        csrf = form_of(ui)
        refused = ui.post("/badges/import", data={"csrf": csrf},
                          files={"file": ("badges.csv", BAD_FILE, "text/csv")})
        partial = ui.post("/badges/import", data={"csrf": csrf, "partial": "yes"},
                          files={"file": ("badges.csv", BAD_FILE, "text/csv")})
        not_utf8 = ui.post("/badges/import", data={"csrf": csrf},
                           files={"file": ("badges.csv", b"number\n\xff\n", "text/csv")})
    assert refused.status_code == 400
    report = rows(refused.text, "problems")
    assert [row.split()[:2] for row in report] == [["3", "category"], ["4", "number"],
                                                   ["5", "number"]]
    assert "the same card as line 2" in report[2]
    assert partial.status_code == 200
    assert len(rows(partial.text, "problems")) == 3
    assert "C-01" in badges_of(hub)
    assert "C-02" not in badges_of(hub)
    assert not_utf8.status_code == 400
    assert "UTF-8" in not_utf8.text


def test_revoking_another_territorys_badge_answers_like_a_missing_one(
    hub: HubProcess, records: MarinaRecords
) -> None:
    with signed_in(hub, "olga") as ui:
        csrf = form_of(ui)
        elsewhere = ui.post("/badges/revoke", data={"csrf": csrf,
                                                    "pseudonym": records.other_boater})
        nowhere = ui.post("/badges/revoke", data={"csrf": csrf, "pseudonym": "ab" * 16})
        own = ui.post("/badges/revoke", data={"csrf": csrf, "pseudonym": records.sailor})
    assert elsewhere.status_code == nowhere.status_code == 404

    def detail(page: httpx.Response) -> str:
        return page.text.split('class="detail"', 1)[1].split("</p>", 1)[0]

    assert detail(elsewhere) == detail(nowhere)
    assert badges_of(hub, "other")["B-03"]["revoked_ms"] is None
    assert own.status_code == 200
    assert badges_of(hub)["B-03"]["revoked_ms"] is not None
    assert f'data-pseudonym="{records.sailor}"' in own.text


@pytest.mark.parametrize("path", ["/badges", "/badges/revoke", "/badges/import"])
def test_every_badge_form_needs_its_csrf_token(hub: HubProcess, records: MarinaRecords,
                                               path: str) -> None:
    with signed_in(hub, "olga") as ui:
        for token in ({}, {"csrf": "forged"}):
            answer = ui.post(path, data={**token, "number": "0a0b0c0d99", "category": "boater",
                                         "label": "forged", "pseudonym": records.boater},
                             files={"file": ("b.csv", b"number,category,label\n"
                                                      b"0a0b0c0d98,boater,forged\n")})
            assert answer.status_code == 403
            assert 'data-code="csrf"' in answer.text
    assert "forged" not in badges_of(hub)
    assert badges_of(hub)["A-12"]["revoked_ms"] is None
