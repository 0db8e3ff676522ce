"""``edge-agent rules test``: the dry run an installer trusts before a flood does.

Commands run in-process through the CLI's real ``main`` (argv, exit status, stderr), and
once as a process, as an installer types them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_agent.cli import main

#: Runs ``edge-agent rules test`` on a CSV text (and options): exit status, stdout, stderr.
Invoke = Callable[..., tuple[int, str, str]]

CONFIG = """
[gateway]
id = "caux-seine-gw"
data_dir = "data"

[[buses]]
name = "field"
tcp = "127.0.0.1:1502"

[[devices]]
name = "level-d982"
bus = "field"
profile = "eastron-sdm120"
unit = 2

[[devices]]
name = "relays-a"
bus = "field"
profile = "waveshare-relay-8ch"
unit = 1

[[rules]]
name = "flood-road-d982"
device = "level-d982"
quantity = "water_level"
kind = "above"
threshold = 1.20
clear_at = 1.10
for_s = 120
severity = "critical"
on_raise = [{type = "latch", board = "relays-a", channel = 1},
            {type = "pulse", board = "relays-a", channel = 4, ms = 1500}]

[[rules]]
name = "d982-silent"
device = "level-d982"
kind = "stale"
after_s = 1800
"""

FLOOD = """ts,device,quantity,value
2026-12-03T10:00:00Z,level-d982,water_level,1.00
2026-12-03T10:10:00Z,level-d982,water_level,1.22
# the sensor's bad frame
2026-12-03T10:15:00Z,level-d982,water_level,nan
1796295600000,level-d982,water_level,1.15
2026-12-03T12:05:00+01:00,level-d982,water_level,1.05
2026-12-03T11:10:00Z,level-d982,water_level,1.04
"""


def run(tmp_path: Path, csv_text: str, *args: str, config: str = CONFIG,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
        ) -> tuple[int, str, str]:
    (tmp_path / "gateway.toml").write_text(config, encoding="utf-8")
    (tmp_path / "readings.csv").write_text(csv_text, encoding="utf-8")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr(sys, "argv", [
        "edge-agent", "rules", "test", "--config", str(tmp_path / "gateway.toml"),
        "--input", str(tmp_path / "readings.csv"), *args])
    with pytest.raises(SystemExit) as exited:
        main()
    captured = capsys.readouterr()
    return int(exited.value.code or 0), captured.out, captured.err


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
        ) -> Invoke:
    def invoke(csv_text: str, *args: str, config: str = CONFIG) -> tuple[int, str, str]:
        return run(tmp_path, csv_text, *args, config=config, capsys=capsys,
                   monkeypatch=monkeypatch)
    return invoke


def test_a_flood_replayed_prints_raises_clears_and_actions_in_order(cli: Invoke) -> None:
    code, out, err = cli(FLOOD)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines == [
        "2026-12-03 10:12:00Z  RAISED   flood-road-d982 (critical)",
        "                      level-d982: water_level 1.22 > 1.2 for 120 s",
        "                      action   set relays-a/1 on",
        "                      action   pulse relays-a/4 1500 ms",
        "2026-12-03 10:40:00Z  RAISED   d982-silent (warning)",
        "                      level-d982: silent 1800 s (limit 1800 s)",
        "2026-12-03 11:00:00Z  cleared  d982-silent (warning)",
        "                      level-d982: heard again after 3000 s",
        "2026-12-03 11:07:00Z  cleared  flood-road-d982 (critical)",
        "                      level-d982: water_level 1.05 < 1.1 for 120 s",
        "                      action   set relays-a/1 off",
        "6 readings, 2 rules: 2 raised, 2 cleared, 3 actions (dry run: nothing was sent)",
    ]
    assert max(len(line) for line in lines) <= 80


def test_json_lines_carry_the_alarm_attributes(cli: Invoke) -> None:
    code, out, _ = cli(FLOOD, "--json")
    assert code == 0
    items = [json.loads(line) for line in out.splitlines()]
    assert [item["type"] for item in items] == [
        "raised", "action", "action", "raised", "cleared", "cleared", "action", "summary"]
    raised = items[0]
    assert raised == {"type": "raised", "ts_ms": 1796292720000, "device": "level-d982",
                      "rule": "flood-road-d982", "kind": "above", "severity": "critical",
                      "quantity": "water_level", "value": 1.22, "threshold": 1.2,
                      "clear_at": 1.1, "for_s": 120.0}
    assert items[-1] == {"type": "summary", "readings": 6, "rules": 2, "raised": 2,
                         "cleared": 2, "actions": 3}


def test_a_bundle_s_rules_replace_file_rules_of_the_same_name(cli: Invoke, tmp_path: Path
                                                               ) -> None:
    bundle = {"rules": [
        {"name": "flood-road-d982", "device": "level-d982", "quantity": "water_level",
         "kind": "above", "threshold": 1.5},
        {"name": "other-site", "device": "level-d100", "kind": "stale", "after_s": 60},
    ]}
    (tmp_path / "settings.json").write_text(json.dumps(bundle), encoding="utf-8")
    code, out, err = cli(FLOOD, "--bundle", str(tmp_path / "settings.json"))
    assert code == 0
    assert "flood-road-d982" not in out  # 1.22 is below the bundle's 1.5
    assert "2 rules" in out
    assert "rule other-site: device 'level-d100' is not declared" in err
    assert "(left out)" in err


@pytest.mark.parametrize(("csv_text", "message"), [
    ("ts,device,quantity,value\n2026-12-03T10:00:00Z,level-d982,water_level\n",
     "readings.csv:2: expected 4 columns (ts,device,quantity,value), got 3"),
    ("yesterday,level-d982,water_level,1\n",
     "readings.csv:1: ts 'yesterday' is neither ISO 8601"),
    ("2026-12-03T10:00:00,level-d982,water_level,1\n",
     "readings.csv:1: ts '2026-12-03T10:00:00' has no time zone; add Z or +01:00"),
    ("2026-12-03T10:00:00Z,level-d982,water_level,high\n",
     "readings.csv:1: value 'high' is not a number"),
    ("2026-12-03T10:00:00Z,level-d982,water_levle,1\n",
     "readings.csv:1: 'water_levle' is not in the quantity vocabulary; did you mean "
     "'water_level'?"),
    ("2026-12-03T10:00:00Z,,water_level,1\n", "readings.csv:1: the device is empty"),
    ("2026-12-03T10:05:00Z,level-d982,water_level,1\n\n"
     "2026-12-03T10:00:00Z,level-d982,water_level,1\n",
     "readings.csv:3: ts 2026-12-03T10:00:00Z is before the line above; sort the file by ts"),
    ("ts,device,quantity,value\n# nothing yet\n", "no readings; expected lines of "
     "ts,device,quantity,value"),
])
def test_every_bad_line_is_an_error_with_its_line_number(cli: Invoke, csv_text: str,
                                                          message: str) -> None:
    code, out, err = cli(csv_text)
    assert code == 2
    assert out == ""
    assert err.startswith("error: ")
    assert message in err
    assert "Traceback" not in err


def test_a_file_that_is_not_text_is_an_error(cli: Invoke, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "gateway.toml").write_text(CONFIG, encoding="utf-8")
    (tmp_path / "readings.csv").write_bytes(b"\xff\xfe\x00binary")
    monkeypatch.setattr(sys, "argv", ["edge-agent", "rules", "test", "-c",
                                      str(tmp_path / "gateway.toml"), "-i",
                                      str(tmp_path / "readings.csv")])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    assert "not UTF-8 text" in capsys.readouterr().err


@pytest.mark.parametrize(("setup", "message"), [
    ("missing-input", "cannot read"),
    ("no-rules", "no rules to test; add [[rules]]"),
    ("bad-rule", "rules[flood-road-d982]: kind 'above' needs threshold"),
    ("bundle-not-json", "invalid JSON"),
    ("bundle-not-object", "a config bundle is a JSON object"),
    ("bundle-bad-rule", "rules[x].kind: Input should be 'above', 'below', 'rate' or 'stale'"),
])
def test_bad_configuration_or_bundle_is_an_error(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 setup: str, message: str) -> None:
    config, extra = CONFIG, []
    settings = tmp_path / "settings.json"
    if setup == "no-rules":
        config = CONFIG[:CONFIG.index("[[rules]]")]
    elif setup == "bad-rule":
        config = CONFIG.replace("threshold = 1.20\n", "")
    elif setup.startswith("bundle"):
        settings.write_text({"bundle-not-json": "{rules: [",
                             "bundle-not-object": "[]",
                             "bundle-bad-rule": json.dumps({"rules": [
                                 {"name": "x", "device": "level-d982", "kind": "over"}]}),
                             }[setup], encoding="utf-8")
        extra = ["--bundle", str(settings)]
    (tmp_path / "gateway.toml").write_text(config, encoding="utf-8")
    readings = tmp_path / ("absent.csv" if setup == "missing-input" else "readings.csv")
    if setup != "missing-input":
        readings.write_text(FLOOD, encoding="utf-8")
    monkeypatch.setattr(sys, "argv", ["edge-agent", "rules", "test", "-c",
                                      str(tmp_path / "gateway.toml"), "-i", str(readings),
                                      *extra])
    with pytest.raises(SystemExit) as exited:
        main()
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert err.startswith("error: ")
    assert message in err


def test_as_a_process_a_bad_line_exits_2_with_one_error_line(tmp_path: Path) -> None:
    (tmp_path / "gateway.toml").write_text(CONFIG, encoding="utf-8")
    (tmp_path / "readings.csv").write_text("ts,device,quantity,value\n1,2\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "edge_agent", "rules", "test", "--config",
                           str(tmp_path / "gateway.toml"), "--input",
                           str(tmp_path / "readings.csv")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: readings.csv:2: expected 4 columns (ts,device,quantity,value), got 2"]
