"""``sync-server opendata`` as an operator types it, on SQLite and PostgreSQL: publishing and
unpublishing datasets, place details, and one ``error:`` line for what it refuses. What the
terminal publishes, the public HTTP side serves at once."""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest

from edge_agent.records import Reading
from tests.helpers.field import push
from tests.helpers.hub import HubProcess, hub_cli


def _cli(hub: HubProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return hub_cli(hub.data_dir, *args, "--database-url", hub.database_url)


def _ok(hub: HubProcess, *args: str) -> str:
    done = _cli(hub, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def territory(hub: HubProcess) -> str:
    token = hub.enroll("terminal", "gw-t")["token"]
    push(hub, token, "readings", [Reading("P1", "parking_capacity", 1_796_000_000_000, 40.0),
                                  Reading("P1", "parking_occupancy", 1_796_000_000_000, 4.0)])
    return "terminal"


def test_enable_list_and_disable_a_dataset(hub: HubProcess, territory: str) -> None:
    assert _ok(hub, "opendata", "enable", "--territory", territory, "car-parks",
               "--by", "jdupont") == "car-parks of terminal: published\n"
    assert _ok(hub, "opendata", "enable", "--territory", territory,
               "car-parks") == "car-parks of terminal: already published\n"
    listed = {row["dataset"]: row for row in json.loads(_ok(
        hub, "opendata", "list", "--territory", territory, "--json",
        "--base-url", "https://hub.example.fr"))}
    assert listed["car-parks"]["published"] is True
    assert listed["car-parks"]["enabled_by"] == "jdupont"
    assert listed["car-parks"]["url"] == "https://hub.example.fr/v1/open/terminal/car-parks.csv"
    assert listed["car-parks-live"]["tenant"] == territory
    assert listed["water"]["published"] is False
    table = _ok(hub, "opendata", "list", "--territory", territory)
    assert all(len(line) <= 200 for line in table.splitlines())
    assert "car-parks-live" in table
    with httpx.Client(base_url=hub.url, timeout=10) as public:
        assert public.get(f"/v1/open/{territory}/car-parks.csv").status_code == 200
        assert _ok(hub, "opendata", "disable", "--territory", territory,
                   "car-parks") == "car-parks of terminal: unpublished\n"
        assert public.get(f"/v1/open/{territory}/car-parks.csv").status_code == 404


def test_place_details_from_the_terminal(hub: HubProcess, territory: str) -> None:
    before = json.loads(_ok(hub, "opendata", "place", "list", "--territory", territory,
                            "--json"))
    assert before[0]["missing"][:2] == ["national_id", "insee"]
    place = json.loads(_ok(
        hub, "opendata", "place", "set", "--territory", territory, "gw-t", "P1",
        "--lon", "6.8694", "--lat", "45.9237", "--national-id", "74056-P-001",
        "--insee", "74056", "--users", "tous", "--paying", "--max-height", "N/A",
        "--siret", "21830137600016", "--json"))
    assert (place["free"], place["longitude"], place["max_height"]) == (False, 6.8694, "N/A")
    after = _ok(hub, "opendata", "place", "list", "--territory", territory)
    assert "none: published" in after


@pytest.mark.parametrize(("args", "words"), [
    (("opendata", "enable", "--territory", "terminal", "everything"), "no dataset"),
    (("opendata", "enable", "--territory", "nowhere", "car-parks"), "no territory"),
    (("opendata", "place", "set", "--territory", "terminal", "gw-t", "P1", "--siret",
      "12345678901234"), "siret"),
    (("opendata", "place", "set", "--territory", "terminal", "gw-t", "P1", "--users",
      "nobody"), "users"),
    (("opendata", "place", "set", "--territory", "terminal", "gw-none", "P1", "--lat", "1"),
     "no gateway"),
])
def test_refusals_are_one_error_line(hub: HubProcess, territory: str, args: tuple[str, ...],
                                     words: str) -> None:
    done = _cli(hub, *args)
    assert done.returncode == 2, done.stdout
    assert done.stderr.startswith("error: ")
    assert done.stderr.count("\n") == 1
    assert words in done.stderr
