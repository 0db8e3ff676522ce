"""``sync-server alarm | carpark`` in real processes, on the hub the API tests use.

The commands read the same store as the API (SQLite or PostgreSQL), so their JSON must equal
the API's answers; tables fit 80 columns; every refusal is one ``error:`` line, exit 2.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from edge_agent.records import Event, Reading
from tests.helpers.field import T0, Field, field_world, push
from tests.helpers.hub import HubProcess, hub_cli, hub_cli_ok


@pytest.fixture(scope="module")
def world(hub: HubProcess) -> Field:
    return field_world(hub)


def _run(world: Field, *args: str) -> subprocess.CompletedProcess[str]:
    return hub_cli(world.hub.data_dir, "--database-url", world.hub.database_url, *args)


def _ok(world: Field, *args: str) -> str:
    return hub_cli_ok(world.hub.data_dir, "--database-url", world.hub.database_url, *args)


def _api(world: Field, path: str, **params: str) -> Any:
    with world.operator("flood") as flood:
        answer = flood.get(path, params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _fits(table: str) -> None:
    assert table.strip()
    assert max(len(line) for line in table.splitlines()) <= 80, table


def test_alarm_list_gives_the_apis_alarms(world: Field) -> None:
    listed = json.loads(_ok(world, "alarm", "list", "--territory", "flood", "--json"))
    assert listed == _api(world, "/v1/alarms")["alarms"]
    open_ = json.loads(_ok(world, "alarm", "list", "--territory", "flood", "--state", "open",
                           "--json", "--limit", "2"))
    assert open_ == _api(world, "/v1/alarms", state="open", limit="2")["alarms"]
    table = _ok(world, "alarm", "list", "--territory", "flood")
    _fits(table)
    for alarm in listed:
        assert alarm["id"] in table
    assert table.count(" open ") == sum(alarm["cleared_ms"] is None for alarm in listed)
    assert "dry" not in table


def test_names_are_printed_as_sent_never_as_markup(world: Field) -> None:
    token = world.hub.enroll("odd", "odd-gw")["token"]
    push(world.hub, token, "alarms", [Event("alarm.raised", "[/bold]", T0, {
        "rule": "[red]x:smile:", "severity": None})])
    push(world.hub, token, "readings", [Reading("[P]", "parking_occupancy", T0, 1.0)])
    table = _ok(world, "alarm", "list", "--territory", "odd")
    assert "odd-gw/[/bold]" in table
    assert "[red]x:smile:" in table
    assert "[P]" in _ok(world, "carpark", "list", "--territory", "odd")


def test_alarm_ack_records_the_name_given(world: Field) -> None:
    [alarm] = _api(world, "/v1/alarms", device="level-2")["alarms"]
    out = _ok(world, "alarm", "ack", "--territory", "flood", alarm["id"], "--comment",
              "vanne fermée", "--by", "jdupont")
    assert out.startswith(f"alarm {alarm['id']} (gw1/level-2, level-high) acknowledged by "
                          "jdupont at ")
    ack = _api(world, f"/v1/alarms/{alarm['id']}")["ack"]
    assert (ack["by"], ack["token_id"], ack["comment"]) == ("jdupont", None, "vanne fermée")
    assert "jdupont" in _ok(world, "alarm", "list", "--territory", "flood")
    again = _run(world, "alarm", "ack", "--territory", "flood", alarm["id"])
    assert (again.returncode, again.stderr) == (
        2, f"error: alarm {alarm['id']} was already acknowledged by jdupont\n")


def test_alarm_ack_without_by_names_the_login(world: Field) -> None:
    alarm = _api(world, "/v1/alarms", device="pump")["alarms"][0]
    _ok(world, "alarm", "ack", "--territory", "flood", alarm["id"])
    ack = _api(world, f"/v1/alarms/{alarm['id']}")["ack"]
    assert ack["by"]
    assert ack["comment"] == ""


def test_carpark_list_gives_the_apis_car_parks(world: Field) -> None:
    listed = json.loads(_ok(world, "carpark", "list", "--territory", "flood", "--json"))
    assert listed == _api(world, "/v1/car-parks")["car_parks"]
    table = _ok(world, "carpark", "list", "--territory", "flood")
    _fits(table)
    assert [line.split()[1:6] for line in table.splitlines() if "P-" in line] == [
        ["P-gare", "120", "100", "0", "FULL"], ["P-nocap", "12", "-", "-", "-"],
        ["P-port", "30", "200", "170", "no"]]


def _foreign_id(world: Field) -> str:
    with world.operator("dry") as dry:
        return str(dry.get("/v1/alarms").json()["alarms"][0]["id"])


@pytest.mark.parametrize(("args", "message"), [
    (("alarm", "list", "--territory", "nowhere"), "no territory 'nowhere'; known: dry, flood"),
    (("alarm", "list", "--territory", "flood", "--state", "closed"),
     "state must be one of open, cleared, all, got 'closed'"),
    (("alarm", "list", "--territory", "flood", "--limit", "0"), "limit must be between 1"),
    (("alarm", "ack", "--territory", "flood", "FOREIGN"),
     "no alarm with that id in this territory"),
    (("alarm", "ack", "--territory", "flood", "2147483647-1"),
     "no alarm with that id in this territory"),
    (("alarm", "ack", "--territory", "flood", "abc"), "an alarm id is two whole numbers"),
    (("alarm", "ack", "--territory", "flood", "FOREIGN", "--comment", "x" * 1001),
     "comment: at most 1000 characters, got 1001"),
    (("alarm", "ack", "--territory", "flood", "FOREIGN", "--by", " "),
     "by: must name who acknowledges"),
    (("alarm", "ack", "--territory", "flood", "FOREIGN", "--by", "x\tb"),
     "by: holds control characters"),
    (("carpark", "list", "--territory", "nowhere"), "no territory 'nowhere'"),
])
def test_refusals_are_one_error_line(world: Field, args: tuple[str, ...], message: str) -> None:
    foreign = _foreign_id(world)
    done = _run(world, *(foreign if arg == "FOREIGN" else arg for arg in args))
    assert done.returncode == 2, done.stdout
    assert done.stderr.startswith("error: ")
    assert message in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert foreign not in done.stderr or "FOREIGN" not in args
