"""The dashboard's open data page over HTTP: an operator sees every dataset with its public
address, publishes and withdraws it with a CSRF-protected form (the public side follows at
once), and staff, other territories and forged forms change nothing."""

from __future__ import annotations

import re

import httpx
import pytest

from sync_server.ui.accounts import add_user
from tests.helpers.hub import HubProcess
from tests.helpers.marina_world import PASSWORD, csrf_of, signed_in


@pytest.fixture(scope="module")
def accounts(hub: HubProcess) -> None:
    for name, role, territory in (("oona", "operator", "bay"), ("stan", "staff", "bay"),
                                  ("otis", "operator", "cove"), ("adah", "admin", None)):
        if territory:
            hub.territory(territory)
        add_user(hub.engine, name, role, territory, PASSWORD)


def row(html: str, dataset: str) -> str:
    """The table row of ``dataset``."""
    return html.split(f'<tr data-dataset="{dataset}">', 1)[1].split("</tr>", 1)[0]


def public(hub: HubProcess, path: str) -> int:
    return httpx.get(f"{hub.url}{path}", timeout=10).status_code


def choose(ui: httpx.Client, dataset: str, action: str, **extra: str) -> httpx.Response:
    page = ui.get("/open-data")
    return ui.post("/open-data", data={"csrf": csrf_of(page.text), "dataset": dataset,
                                       "action": action, **extra})


@pytest.mark.usefixtures("accounts")
def test_an_operator_publishes_and_withdraws_a_dataset_and_the_public_side_follows(
    hub: HubProcess
) -> None:
    csv_path = "/v1/open/bay/car-parks.csv"
    with signed_in(hub, "oona") as ui:
        page = ui.get("/open-data")
        assert page.status_code == 200
        assert 'href="/ui/open-data"' in page.text  # in the menu
        assert 'class="catalog"' not in page.text
        for name in ("car-parks", "car-parks-live", "water", "air-quality", "energy-monthly",
                     "services"):
            assert 'value="publish"' in row(page.text, name), name
        assert f"<code>{hub.url}{csv_path}</code>" in row(page.text, "car-parks")
        assert re.search(r"NGSILD-Tenant ?: bay<", row(page.text, "car-parks-live"))
        assert public(hub, csv_path) == 404

        published = choose(ui, "car-parks", "publish")
        assert published.status_code == 303
        assert published.headers["location"] == "/ui/open-data"
        page = ui.get("/open-data")
        assert f'<a href="{hub.url}{csv_path}">' in row(page.text, "car-parks")
        assert "oona" in row(page.text, "car-parks")
        assert 'value="unpublish"' in row(page.text, "car-parks")
        assert f'<a href="{hub.url}/v1/open/bay/catalog.jsonld">' in page.text
        assert public(hub, csv_path) == 200
        assert public(hub, "/v1/open/bay/catalog.jsonld") == 200
        assert choose(ui, "car-parks", "publish").status_code == 303, "twice changes nothing"

        assert choose(ui, "car-parks", "unpublish").status_code == 303
        assert 'value="publish"' in row(ui.get("/open-data").text, "car-parks")
        assert public(hub, csv_path) == 404


@pytest.mark.usefixtures("accounts")
def test_a_territory_publishes_only_its_own_datasets(hub: HubProcess) -> None:
    with signed_in(hub, "otis") as ui:
        assert choose(ui, "energy-monthly", "publish").status_code == 303
    try:
        assert public(hub, "/v1/open/cove/energy-monthly.csv") == 200
        assert public(hub, "/v1/open/bay/energy-monthly.csv") == 404
        with signed_in(hub, "oona") as ui:
            assert 'value="publish"' in row(ui.get("/open-data").text, "energy-monthly")
    finally:
        with signed_in(hub, "otis") as ui:
            choose(ui, "energy-monthly", "unpublish")


@pytest.mark.usefixtures("accounts")
def test_staff_neither_see_nor_change_open_data(hub: HubProcess) -> None:
    with signed_in(hub, "stan") as ui:
        home = ui.get("/alarms")
        assert 'href="/ui/open-data"' not in home.text
        assert ui.get("/open-data").status_code == 403
        refused = ui.post("/open-data", data={"csrf": csrf_of(home.text),
                                              "dataset": "car-parks", "action": "publish"})
        assert refused.status_code == 403
    assert public(hub, "/v1/open/bay/car-parks.csv") == 404


@pytest.mark.usefixtures("accounts")
@pytest.mark.parametrize(("form", "status", "code"), [
    ({"dataset": "car-parks", "action": "publish", "csrf": ""}, 403, "csrf"),
    ({"dataset": "car-parks", "action": "publish", "csrf": None}, 403, "csrf"),
    ({"dataset": "everything", "action": "publish"}, 400, "unknown_dataset"),
    ({"dataset": "car-parks", "action": "delete-all"}, 400, "invalid_request"),
])
def test_forged_or_wrong_forms_publish_nothing(hub: HubProcess, form: dict[str, str | None],
                                               status: int, code: str) -> None:
    """A missing (None) or empty token, an unknown dataset, an unknown action."""
    with signed_in(hub, "oona") as ui:
        page = ui.get("/open-data")
        sent = {"csrf": csrf_of(page.text), **form}
        data = {name: value for name, value in sent.items() if value is not None}
        refused = ui.post("/open-data", data=data)
        assert refused.status_code == status, refused.text
        assert f'data-code="{code}"' in refused.text
    assert public(hub, "/v1/open/bay/car-parks.csv") == 404
    assert public(hub, "/v1/open/bay/catalog.jsonld") == 404


@pytest.mark.usefixtures("accounts")
def test_an_admin_chooses_the_territory_first(hub: HubProcess) -> None:
    with signed_in(hub, "adah") as ui:
        refused = ui.get("/open-data")
        assert refused.status_code == 400
        assert 'data-code="territory_required"' in refused.text
        chosen = ui.post("/territory", data={"csrf": csrf_of(ui.get("/").text),
                                             "territory": "cove"})
        assert chosen.status_code == 303
        assert 'data-dataset="car-parks"' in ui.get("/open-data").text
