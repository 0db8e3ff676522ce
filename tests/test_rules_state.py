"""The rules' state file on its own: round trip, mode 0600, and every kind of damage logged
and survived (the gateway must start whatever the file holds)."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import pytest

from edge_agent.rules.engine import SavedRule
from edge_agent.rules.state import STATE_FILE, load_state, save_state

RAISED = SavedRule("0123456789abcdef", True, "level-d982", "above", "water_level", "critical",
                   None, 1_796_292_000_000, 1.31, 2, 1)


def test_states_and_latches_round_trip_in_a_private_file(tmp_path: Path) -> None:
    path = tmp_path / STATE_FILE
    save_state(path, {"flood": RAISED}, {("relays-a", 1): True})
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_state(path) == {"flood": RAISED}
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["latches"] == [{"board": "relays-a", "channel": 1, "on": True}]
    assert [p.name for p in tmp_path.iterdir()] == [STATE_FILE]  # no temporary file left


def test_no_file_is_no_state(tmp_path: Path) -> None:
    assert load_state(tmp_path / STATE_FILE) == {}


@pytest.mark.parametrize("content", [
    b'{"version": 1, "rules": {"flood": [', b"\xff\xfe garbage", b"[]",
    b'{"version": 9, "rules": {}}', b'{"version": 1, "rules": []}',
])
def test_a_damaged_file_is_set_aside_and_logged(tmp_path: Path, content: bytes,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / STATE_FILE
    path.write_bytes(content)
    with caplog.at_level(logging.ERROR, "edge_agent.rules"):
        assert load_state(path) == {}
    assert "is damaged" in caplog.text
    assert (tmp_path / (STATE_FILE + ".damaged")).read_bytes() == content
    assert not path.exists()


def test_an_unreadable_rule_state_is_left_out_and_the_others_kept(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / STATE_FILE
    save_state(path, {"flood": RAISED}, {})
    document = json.loads(path.read_text(encoding="utf-8"))
    document["rules"]["broken"] = {"fingerprint": "x", "raised": True, "since_ms": "soon"}
    document["rules"]["odd"] = ["not", "an", "object"]
    path.write_text(json.dumps(document), encoding="utf-8")
    with caplog.at_level(logging.ERROR, "edge_agent.rules"):
        assert load_state(path) == {"flood": RAISED}
    assert "state of rule broken is unreadable" in caplog.text
    assert "state of rule odd is unreadable" in caplog.text
