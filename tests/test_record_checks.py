"""The record checks themselves (sync_server/record_checks.py): what ingest accepts, every
reader accepts again once stored, and the window's edges are where the docs say."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.records import Event, Reading
from sync_server.record_checks import (
    AHEAD_MS,
    READABLE,
    attrs_from_text,
    event_problem,
    first_problem,
    ingest_window,
    reading_problem,
)

NOW = 1_764_000_000_000
WINDOW = ingest_window(NOW)

_text = st.text(st.characters(exclude_categories=()), max_size=20)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12)
_kinds = st.sampled_from(["note", "access.granted", "session.closed", "alarm.raised",
                          "car_park.full", "Bad Kind"])


@settings(max_examples=300)
@given(kind=_kinds, device=_text, ts_ms=st.integers(-(2**63), 2**63 - 1) | st.just(NOW),
       attrs=st.dictionaries(_text | st.sampled_from(["service", "ended_ms", "rule"]), _json,
                             max_size=6))
def test_what_ingest_accepts_every_reader_reads_back(
    kind: str, device: str, ts_ms: int, attrs: dict[str, Any],
) -> None:
    event = Event(kind, device, ts_ms, attrs)
    if event_problem(event, WINDOW) is not None:
        return
    stored = json.dumps(attrs, sort_keys=True)  # as ingest writes the column
    read = attrs_from_text(stored)
    assert read == attrs
    assert event_problem(Event(kind, device, ts_ms, read), READABLE) is None
    json.dumps(read, ensure_ascii=False, allow_nan=False).encode("utf-8")  # as answers do


@pytest.mark.parametrize("text", ["\u00e9" * 4096, "\U0001f600" * 4096, "\u2028" * 4096])
def test_the_longest_text_ingest_accepts_is_read_back_once_escaped(text: str) -> None:
    attrs = {"note": text, "more": text[:2000], "again": text[:2000]}
    assert event_problem(Event("note", "d1", NOW, attrs), WINDOW) is None
    assert attrs_from_text(json.dumps(attrs, sort_keys=True)) == attrs


@pytest.mark.parametrize(
    ("ts_ms", "accepted"),
    [(-1, False), (0, True), (NOW + AHEAD_MS, True), (NOW + AHEAD_MS + 1, False)],
)
def test_the_window_runs_from_1970_to_a_day_after_the_hubs_clock(ts_ms: int,
                                                                  accepted: bool) -> None:
    assert (reading_problem(Reading("m1", "voltage", ts_ms, 1.0), WINDOW) is None) == accepted
    event = Event("session.closed", "p1", NOW, {"ended_ms": ts_ms})
    assert (event_problem(event, WINDOW) is None) == accepted


def test_the_first_problem_of_a_batch_is_found_whatever_was_checked_before() -> None:
    good = Reading("m1", "voltage", NOW, 230.0)
    batch = [good, good, Reading("m1", "voltage", NOW + 2 * AHEAD_MS, 230.0), good]
    found = first_problem(batch, WINDOW)
    assert found is not None
    assert (found[0], found[1].field) == (2, "ts_ms")
    renamed = [good, Reading("m\x1b", "voltage", NOW, 1.0)]
    assert first_problem(renamed, WINDOW) == (1, reading_problem(renamed[1], WINDOW))


@pytest.mark.parametrize("text", ['{"a": NaN}', '{"a": Infinity}', "[1]", "nope", "7"])
def test_stored_attributes_that_are_no_json_object_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        attrs_from_text(text)
