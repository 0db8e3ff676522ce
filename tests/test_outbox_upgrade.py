"""An upgraded agent keeps the outbox the previous release wrote: it migrates, nothing is lost.

tests/data/outbox-v3/ holds an outbox written by the agent of commit 3254eed^ (schema v3,
the last release before step 4, ``create_deliveries``) and the records it still had waiting,
as that agent read them back (generate.py there says how both were made). Each test opens a
copy with today's code, as a gateway does after ``pip install --upgrade`` and a restart.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from edge_agent.records import Event, Reading
from edge_agent.store import Outbox
from edge_agent.store.migrations import MIGRATIONS

FIXTURE = Path(__file__).parent / "data" / "outbox-v3"
WAITING: dict[str, list[list[Any]]] = json.loads(
    (FIXTURE / "records.json").read_text(encoding="utf-8"))


@pytest.fixture
def old_outbox(tmp_path: Path) -> Path:
    path = tmp_path / "outbox.sqlite"
    shutil.copyfile(FIXTURE / "outbox.sqlite", path)
    return path


def _applied_steps(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute(
            "SELECT name FROM schema_migrations ORDER BY version")]


def test_the_fixture_is_a_previous_schema(old_outbox: Path) -> None:
    assert _applied_steps(old_outbox) == [m.name for m in MIGRATIONS[:3]]


def test_opening_it_migrates_and_every_waiting_record_comes_back(
    old_outbox: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="edge_agent.store"), \
            Outbox.open(old_outbox) as outbox:
        batches = {stream: outbox.next_batch(stream=stream, limit=10_000)
                   for stream in WAITING}
        stats = {s.name: (s.depth, s.last_seq, s.acked_seq) for s in outbox.stats()}
    assert _applied_steps(old_outbox) == [m.name for m in MIGRATIONS]
    assert "applied schema step 4 'create_deliveries'" in caplog.text
    for stream, expected in WAITING.items():
        batch = batches[stream]
        assert batch is not None, stream
        assert [[seq, type(record).__name__, dataclasses.asdict(record)]
                for seq, record in batch.records] == expected
    assert stats == {"alarms": (2, 2, 0), "events": (15, 20, 5), "readings": (200, 300, 100)}


def test_the_upgraded_outbox_carries_on_where_the_old_one_stopped(old_outbox: Path) -> None:
    with Outbox.open(old_outbox) as outbox:
        assert outbox.ack("readings", 150) == 50
        appended = outbox.append_readings([Reading("berth-0", "energy_import_wh",
                                                   1_796_000_400_000, 1075.0)])
        events = outbox.append_events([Event("access.denied", "gate-a", 1_796_000_400_000)])
    assert (appended.first, events.first) == (301, 21)  # sequences continue, never reused
    with Outbox.open(old_outbox) as reopened:  # and a second start is a plain open
        batch = reopened.next_batch(stream="readings", limit=10_000)
        assert batch is not None
        assert (batch.first_seq, batch.last_seq) == (151, 301)
    assert len(_applied_steps(old_outbox)) == len(MIGRATIONS)
