"""The compact readings encoding: round trips, what quantisation keeps, hostile input."""

from __future__ import annotations

import gzip
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.codecs.batch import decode_readings, encode_readings
from edge_agent.errors import CodecError
from edge_agent.quantities import QUANTITIES, lookup_quantity, rounded
from edge_agent.records import Quality, Reading

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
    seq, decoded = decode_readings(encode_readings(first_seq, readings), max_decoded_bytes=LIMIT)
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
    assert len(encoded) / len(readings) < 1.0
    assert decode_readings(encoded, max_decoded_bytes=LIMIT)[1][0].value == 230.0


def _gzip_json(document: object) -> bytes:
    return gzip.compress(json.dumps(document).encode())


GOOD = {"first_seq": 1, "series": [["m", "voltage"]], "s": [0], "t": [5], "v": [2308],
        "quality": [], "non_finite": []}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not gzip at all", "not valid gzip"),
        (gzip.compress(b"{not json"), "not JSON"),
        (gzip.compress(b"[1, 2]"), "must be a JSON object"),
        (gzip.compress(json.dumps(GOOD).encode())[:-8], "truncated"),
        (_gzip_json({**GOOD, "s": [0, 0]}), "differ in length"),
        (_gzip_json({**GOOD, "s": [1]}), "series index 1 out of range"),
        (_gzip_json({**GOOD, "s": [-1]}), "series index -1 out of range"),
        (_gzip_json({**GOOD, "t": ["5"]}), "expected an integer"),
        (_gzip_json({**GOOD, "quality": [[0, 7]]}), "malformed readings batch"),
        (_gzip_json({k: v for k, v in GOOD.items() if k != "series"}), "malformed"),
        (_gzip_json({**GOOD, "non_finite": [[0, "huge"]]}), "malformed"),
    ],
)
def test_malformed_batches_are_refused_with_a_codec_error(data: bytes, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        decode_readings(data, max_decoded_bytes=LIMIT)


def test_a_compression_bomb_is_refused_before_it_fills_memory() -> None:
    bomb = gzip.compress(b" " * (50 * 1024 * 1024))
    assert len(bomb) < 100_000
    with pytest.raises(CodecError, match="inflates beyond 1048576 bytes"):
        decode_readings(bomb, max_decoded_bytes=1024 * 1024)


def test_every_quantity_of_the_vocabulary_round_trips() -> None:
    readings = [Reading("m", name, 1, 12.3456789) for name in QUANTITIES]
    _, decoded = decode_readings(encode_readings(1, readings), max_decoded_bytes=LIMIT)
    assert [r.value for r in decoded] == [rounded(r.quantity, r.value) for r in readings]
