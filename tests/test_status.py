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
