"""``edge-agent status`` read from a data directory while the agent starts, runs or is gone."""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest

from edge_agent.errors import StoreError
from edge_agent.runtime import LOCK_FILE, OUTBOX_FILE, lock_is_held
from edge_agent.status import gateway_report


def test_an_outbox_being_created_reads_as_starting_while_the_agent_holds_the_lock(
    tmp_path: Path,
) -> None:
    (tmp_path / OUTBOX_FILE).touch()  # what an agent mid-start leaves: no schema yet
    with (tmp_path / LOCK_FILE).open("a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert lock_is_held(tmp_path / LOCK_FILE)
        report = gateway_report(tmp_path)
    assert report["note"] == "the agent is opening (or upgrading) the outbox"
    assert report["streams"] == []
    assert report["agent_running"] is False


def test_the_same_outbox_without_an_agent_is_an_error(tmp_path: Path) -> None:
    (tmp_path / OUTBOX_FILE).touch()
    assert not lock_is_held(tmp_path / LOCK_FILE)
    with pytest.raises(StoreError):
        gateway_report(tmp_path)


def test_an_empty_data_directory_reports_nothing_waiting(tmp_path: Path) -> None:
    report = gateway_report(tmp_path)
    assert report == {"agent_running": False, "agent_has_run": False, "status_age_ms": None,
                      "streams": [],
                      "note": "", "devices": [], "sync": {
                          "hub": None, "backlog": 0, "lag_ms": None, "last_success_ms": None,
                          "last_error": "", "consecutive_failures": 0,
                          "note": "not provisioned: run `edge-agent provision --config "
                                  "gateway.toml --hub URL --code CODE`"},
                      "access": None, "rules": None, "tic": [], "lora": [], "car_parks": None}


def test_the_status_tables_fit_80_columns_with_whole_headers_and_names(tmp_path: Path) -> None:
    from rich.console import Console

    from edge_agent.status import report_view

    report = gateway_report(tmp_path)
    report["sync"]["hub"] = "https://hub.territoire-dunkerque.example.org:8443"
    report["devices"] = [
        {"name": f"berth-pontoon-a{unit}", "bus": "pontoon-a-rs485", "unit": unit,
         "online": unit != 5, "polls": 12_345, "failed_polls": 4 if unit == 5 else 0,
         "timeouts": 4 if unit == 5 else 0, "exceptions": {"2": 1}, "frame_errors": 0,
         "transport_errors": 0,
         "last_error": "no answer within 0.3 s (check unit id, wiring, baud rate and parity)"}
        for unit in range(1, 6)]
    report["tic"] = [{"name": "linky-harbour-office", "online": True, "mode": "standard",
                      "baudrate": 9600, "frames": 1234, "bad_checksums": 0,
                      "interrupted_frames": 1, "garbage_bytes": 57, "last_frame_ms": None}]
    console = Console(width=80, record=True, force_terminal=True)
    console.print(report_view(report))
    text = console.export_text()
    assert "…" not in text, text
    assert all(len(line) <= 80 for line in text.splitlines())
    for header in ("stream", "priority", "waiting", "polls", "failed", "errors", "frames"):
        assert f" {header} " in text
    assert "berth-pontoon-a5: no answer within 0.3 s (check unit id, wiring, baud rate" in text
