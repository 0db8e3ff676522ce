"""``sync-server badge | policy | report`` as an operator runs them, each in a real process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.hub import hub_cli, hub_cli_ok

_RULES_TOML = """\
timezone = "Europe/Paris"
categories = ["berth-holder", "visitor"]
services = ["power", "water"]
holidays = [2026-12-25]

[zones.pontoon]

[[entitlements]]
category = "berth-holder"
zone = "pontoon"

[gates.pontoon-gate]
zone = "pontoon"
"""




@pytest.fixture(scope="module")
def marina(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("marina")
    hub_cli_ok(data_dir, "db", "upgrade")
    hub_cli_ok(data_dir, "keys", "init")
    hub_cli_ok(data_dir, "territory", "add", "marina")
    rules = data_dir / "rules.toml"
    rules.write_text(_RULES_TOML, encoding="utf-8")
    assert hub_cli_ok(data_dir, "policy", "set", "--territory", "marina", str(rules)) == (
        "rules of marina set; policy version 1 published\n")
    return data_dir


def test_an_operator_manages_badges_from_the_terminal(marina: Path) -> None:
    out = hub_cli_ok(marina, "badge", "add", "--territory", "marina", "--number", "3808980205",
              "--form", "8H10D", "--category", "berth-holder", "--label", "A-12",
              "--valid-until", "2027-12-31")
    assert out.startswith("badge ")
    assert out.endswith(" added; policy version 2 published\n")
    added = out.split()[1]
    again = hub_cli_ok(marina, "badge", "add", "--territory", "marina", "--number", "3808980205",
                "--form", "8H10D", "--category", "berth-holder", "--label", "A-12",
                "--valid-until", "2027-12-31")
    assert again == f"badge {added} unchanged; nothing changed, no policy published\n"

    csv = marina / "badges.csv"
    csv.write_text("number;category;master\n0102030405;visitor;non\nAABBCCDDEE;berth-holder;oui\n",
                   encoding="utf-8")
    assert hub_cli_ok(marina, "badge", "import", "--territory", "marina", str(csv)) == (
        "2 added, 0 updated, 0 unchanged; policy version 3 published\n")
    assert hub_cli_ok(marina, "badge", "revoke", "--territory", "marina", "--number",
               "01:02:03:04:05").endswith(" revoked; policy version 4 published\n")

    listed = json.loads(hub_cli_ok(marina, "badge", "list", "--territory", "marina", "--json"))
    assert sorted((b["category"], b["master"], b["revoked_ms"] is not None, b["label"])
                  for b in listed) == [("berth-holder", False, False, "A-12"),
                                       ("berth-holder", True, False, None),
                                       ("visitor", False, True, None)]
    assert added in {b["pseudonym"] for b in listed}
    table = hub_cli_ok(marina, "badge", "list", "--territory", "marina", "--revoked")
    assert "visitor" in table
    assert "berth-holder" not in table
    for text in (table, json.dumps(listed)):
        assert "0102030405" not in text
        assert "aabbccddee" not in text.lower()

    shown = hub_cli_ok(marina, "policy", "show", "--territory", "marina")
    assert '"holidays": [\n    "2026-12-25"\n  ]' in shown, "TOML dates are kept as ISO text"
    assert "policy version 4" in shown
    assert "3 badges, 1 revoked" in shown
    assert hub_cli_ok(marina, "policy", "publish", "--territory", "marina") == (
        "policy version 5 published for marina\n")


def test_a_wrong_import_prints_the_report_and_stores_nothing(marina: Path) -> None:
    csv = marina / "wrong.csv"
    csv.write_text("number,category,valid_until\n0A0A0A0A0A,pirate,\n0B0B0B0B0B,visitor,someday\n",
                   encoding="utf-8")
    done = hub_cli(marina, "badge", "import", "--territory", "marina", str(csv))
    assert done.returncode == 2
    assert done.stderr == "error: 2 problem(s) in the file, nothing was imported\n"
    assert "'pirate' is not a category" in done.stdout
    assert "valid_until" in done.stdout
    as_json = hub_cli(marina, "badge", "import", "--territory", "marina", str(csv), "--json")
    report = json.loads(as_json.stdout)
    assert [(p["line"], p["field"]) for p in report["problems"]] == [
        (2, "category"), (3, "valid_until")]
    listed = json.loads(hub_cli_ok(marina, "badge", "list", "--territory", "marina", "--json"))
    assert "0A0A0A0A0A".lower() not in json.dumps(listed)


def test_reports_from_the_terminal(marina: Path) -> None:
    consumption = hub_cli_ok(marina, "report", "consumption", "--territory", "marina", "--by",
                      "pedestal", "--month", "2026-11")
    assert "total" in consumption
    as_json = json.loads(hub_cli_ok(marina, "report", "consumption", "--territory", "marina",
                             "--by", "month", "--json"))
    assert as_json["totals"] == {"sessions": 0, "kwh": 0.0, "m3": 0.0}
    services = hub_cli_ok(marina, "report", "services", "--territory", "marina")
    assert "0 cells under 5 badges not shown" in services
    stricter = hub_cli(marina, "--report-min-badges", "10", "report", "services", "--territory",
                    "marina")
    assert "0 cells under 10 badges not shown" in stricter.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("policy", "set", "--territory", "marina", "missing.json"), "cannot read missing.json"),
        (("badge", "add", "--territory", "marina", "--number", "0102", "--category", "crew"),
         "category: 'crew' is not a category"),
        (("badge", "add", "--territory", "atlantis", "--number", "0102", "--category", "x"),
         "no territory 'atlantis'"),
        (("badge", "revoke", "--territory", "marina"), "by its number or by its pseudonym"),
        (("badge", "revoke", "--territory", "marina", "--pseudonym", "beef"),
         "pseudonym: a badge pseudonym is 32 hex digits"),
        (("report", "consumption", "--territory", "marina", "--by", "boat"),
         "group by one of badge, pedestal, month"),
        (("report", "services", "--territory", "marina", "--month", "2026-1"),
         "month '2026-1' is not like 2026-07"),
    ],
)
def test_refusals_are_one_clear_line(marina: Path, args: tuple[str, ...], message: str) -> None:
    done = hub_cli(marina, *args)
    assert done.returncode == 2, done.stdout
    assert done.stderr.startswith("error: ")
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_rules_the_gateways_would_refuse_are_refused_from_the_terminal(marina: Path) -> None:
    rules = marina / "bad.toml"
    rules.write_text(_RULES_TOML + '\n[gates.moon-gate]\nzone = "moon"\n', encoding="utf-8")
    done = hub_cli(marina, "policy", "set", "--territory", "marina", str(rules))
    assert done.returncode == 2
    assert "policy rules refused: gate moon-gate: zone 'moon' is not in zones" in done.stderr
