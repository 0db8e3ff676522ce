"""The compact readings encoding: round trips, what quantisation keeps, hostile input."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.codecs.batch import (
    decode_events,
    decode_plain,
    decode_readings,
    encode_events,
    encode_plain,
    encode_readings,
)
from edge_agent.codecs.compression import Encoding, compress, decompress
from edge_agent.errors import CodecError, TooLarge
from edge_agent.quantities import QUANTITIES, lookup_quantity, rounded
from edge_agent.records import Event, Quality, Reading

LIMIT = 10 * 1024 * 1024

readings_strategy = st.lists(
    st.builds(
        Reading,
        device=st.sampled_from(["berth-a1", "berth-a2", "feeder", "water"]),
        quantity=st.sampled_from(["voltage", "active_energy_import", "pulse_count_1",
                                  "power_factor", "current_l2"]),
        ts_ms=st.integers(0, 2**45),
        value=st.floats(-1e9, 1e9) | st.sampled_from([math.nan, math.inf, -math.inf]),
        quality=st.sampled_from(list(Quality)),
    ),
    max_size=200,
)


@settings(max_examples=500)
@given(first_seq=st.integers(1, 2**53), readings=readings_strategy)
def test_round_trip_keeps_everything_but_digits_below_the_resolution(
    first_seq: int, readings: list[Reading]
) -> None:
    seq, decoded = decode_readings(encode_readings(first_seq, readings))
    assert seq == first_seq
    assert len(decoded) == len(readings)
    for original, back in zip(readings, decoded, strict=True):
        assert (back.device, back.quantity, back.ts_ms, back.quality) == (
            original.device, original.quantity, original.ts_ms, original.quality)
        if math.isfinite(original.value):
            spec = lookup_quantity(original.quantity)
            assert spec is not None
            resolution = spec.resolution
            tolerance = resolution / 2 * (1 + 1e-9) + abs(original.value) * 1e-12
            assert abs(back.value - original.value) <= tolerance
        else:
            assert str(back.value) == str(original.value)


def test_a_marina_hour_costs_well_under_a_byte_a_reading() -> None:
    readings = [
        Reading(f"berth-a{m}", quantity, 1_764_000_000_000 + minute * 60_000,
                230.0 + (minute * m) % 7 / 10 if quantity == "voltage" else 100 + minute * 0.002)
        for minute in range(60) for m in range(1, 41)
        for quantity in ("voltage", "active_energy_import")
    ]
    encoded = encode_readings(1, readings)
    for encoding in ("zstd", "gzip"):
        wire = compress(encoded, encoding)
        assert len(wire) / len(readings) < 1.0
        assert decode_readings(decompress(wire, encoding, max_bytes=LIMIT))[1][0].value == 230.0


def _json(document: object) -> bytes:
    return json.dumps(document).encode()


GOOD = {"first_seq": 1, "series": [["m", "voltage"]], "s": [0], "t": [5], "v": [2308],
        "quality": [], "non_finite": []}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b"[" * 100_000, "not JSON"),
        (_json({**GOOD, "s": [0, 0]}), "differ in length"),
        (_json({**GOOD, "s": [1]}), "series index 1 out of range"),
        (_json({**GOOD, "s": [-1]}), "series index -1 out of range"),
        (_json({**GOOD, "t": ["5"]}), "expected an integer"),
        (_json({**GOOD, "series": [[1, "voltage"]]}), "expected a string"),
        (_json({**GOOD, "quality": [[0, 7]]}), "malformed readings batch"),
        (_json({k: v for k, v in GOOD.items() if k != "series"}), "malformed"),
        (_json({**GOOD, "non_finite": [[0, "huge"]]}), "malformed"),
    ],
)
def test_malformed_readings_batches_are_refused_with_a_codec_error(
    data: bytes, message: str
) -> None:
    with pytest.raises(CodecError, match=message):
        decode_readings(data)


@pytest.mark.parametrize(
    "document",
    [
        {"first_seq": 1},
        {"first_seq": "1", "events": []},
        {"first_seq": 1, "events": [{"kind": "x", "device": "d"}]},
        {"first_seq": 1, "events": [{"kind": 3, "device": "d", "ts_ms": 1}]},
        {"first_seq": 1, "events": [{"kind": "x", "device": "d", "ts_ms": 1, "attrs": [1]}]},
        {"first_seq": 1, "events": ["x"]},
        {"first_seq": 1, "readings": [{"device": "d", "quantity": "voltage", "ts_ms": 1}]},
        {"first_seq": 1, "readings": [{"device": "d", "quantity": "voltage", "ts_ms": 1,
                                       "value": True}]},
        {"first_seq": 1, "readings": [{"device": "d", "quantity": "voltage", "ts_ms": 1,
                                       "value": 1.0, "quality": 9}]},
    ],
)
def test_malformed_event_and_plain_batches_are_refused(document: dict[str, object]) -> None:
    with pytest.raises(CodecError, match="malformed"):
        decode_plain(_json(document))


def test_events_and_plain_readings_round_trip() -> None:
    events = [Event("device.offline", "m1", 5, {"polls": 3}), Event("gap", "", 6, {})]
    assert decode_events(encode_events(41, events)) == (41, events)
    assert decode_plain(encode_events(41, events)) == (41, events)
    readings = [Reading("m", "voltage", 1, 230.04), Reading("m", "voltage", 2, math.inf,
                                                            Quality.INVALID)]
    seq, back = decode_plain(encode_plain(7, readings))
    assert seq == 7
    assert back[0] == Reading("m", "voltage", 1, 230.0)
    assert back[1] == readings[1]
    assert decode_readings(encode_readings(7, readings[:1]))[1] == back[:1]


@pytest.mark.parametrize("encoding", ["zstd", "gzip"])
def test_a_compression_bomb_is_refused_before_it_fills_memory(encoding: Encoding) -> None:
    bomb = compress(b" " * (50 * 1024 * 1024), encoding)
    assert len(bomb) < 100_000
    with pytest.raises(TooLarge, match="inflates beyond 1048576 bytes"):
        decompress(bomb, encoding, max_bytes=1024 * 1024)


@pytest.mark.parametrize(
    ("encoding", "mangle", "message"),
    [
        ("gzip", lambda data: b"not gzip at all", "not valid gzip"),
        ("gzip", lambda data: data[:-8], "truncated"),
        ("gzip", lambda data: data + b"xx", "trailing bytes"),
        ("zstd", lambda data: b"not zstd at all", "not valid zstd"),
        ("zstd", lambda data: data[:-3], "truncated"),
        ("zstd", lambda data: data + b"xx", "trailing bytes"),
        ("brotli", lambda data: data, "unknown content encoding"),
    ],
)
def test_broken_compressed_bodies_are_refused(
    encoding: str, mangle: Callable[[bytes], bytes], message: str
) -> None:
    body = mangle(compress(_json(GOOD), "gzip" if encoding == "brotli" else encoding))
    with pytest.raises(CodecError, match=message):
        decompress(body, encoding, max_bytes=LIMIT)


def test_identity_bodies_are_bounded_too() -> None:
    assert decompress(b"abc", "identity", max_bytes=3) == b"abc"
    with pytest.raises(TooLarge):
        decompress(b"abcd", "identity", max_bytes=3)


def test_every_quantity_of_the_vocabulary_round_trips() -> None:
    readings = [Reading("m", name, 1, 12.3456789) for name in QUANTITIES]
    _, decoded = decode_readings(encode_readings(1, readings))
    assert [r.value for r in decoded] == [rounded(r.quantity, r.value) for r in readings]
