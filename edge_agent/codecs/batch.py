"""The compact wire encoding of a batch of readings, for the sync. Pure.

Columnar, so that gzip finds the repetition a gateway's data is made of: one column of series
indexes (device and quantity named once in a header), one of timestamp deltas, and one of
values quantised to the quantity's declared resolution (device_profiles/README.md) and
delta-encoded per series, so a meter that barely moves costs a few bits a reading.
Non-finite values and non-GOOD qualities are rare and travel as sparse lists. The batch
carries the sequence number of its first reading; the rest follow one by one.

Quantisation is the only loss: a decoded value is the original rounded to its quantity's
resolution (0.1 V, 0.001 kWh …), which is what the hub stores anyway.
"""

from __future__ import annotations

import gzip
import json
import math
import zlib
from collections.abc import Sequence
from typing import Any

from edge_agent.errors import CodecError
from edge_agent.quantities import lookup_quantity
from edge_agent.records import Quality, Reading

__all__ = ["CONTENT_ENCODING", "CONTENT_TYPE", "decode_readings", "encode_readings"]

CONTENT_TYPE = "application/vnd.ponton.readings.v1+json"
CONTENT_ENCODING = "gzip"

#: Resolution used for a quantity outside the vocabulary (profiles never produce one).
_FALLBACK_RESOLUTION = 1e-6
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _resolution(quantity: str) -> float:
    spec = lookup_quantity(quantity)
    return spec.resolution if spec is not None else _FALLBACK_RESOLUTION


def _decimals(resolution: float) -> int:
    return max(0, -math.floor(math.log10(resolution)))


def encode_readings(first_seq: int, readings: Sequence[Reading]) -> bytes:
    """``readings`` (seq ``first_seq``, ``first_seq + 1`` …) as one gzip-compressed document."""
    series: dict[tuple[str, str], int] = {}
    last_value: list[int] = []
    index_column, ts_column, value_column = [], [], []
    qualities, non_finite = [], []
    previous_ts = 0
    for position, reading in enumerate(readings):
        key = (reading.device, reading.quantity)
        index = series.setdefault(key, len(series))
        if index == len(last_value):
            last_value.append(0)
        index_column.append(index)
        ts_column.append(reading.ts_ms - previous_ts)
        previous_ts = reading.ts_ms
        if math.isfinite(reading.value):
            quantised = round(reading.value / _resolution(reading.quantity))
        else:
            quantised = last_value[index]
            non_finite.append([position, str(reading.value).lower()])
        value_column.append(quantised - last_value[index])
        last_value[index] = quantised
        if reading.quality is not Quality.GOOD:
            qualities.append([position, int(reading.quality)])
    document = {
        "first_seq": first_seq,
        "series": [list(key) for key in series],
        "s": index_column,
        "t": ts_column,
        "v": value_column,
        "quality": qualities,
        "non_finite": non_finite,
    }
    text = json.dumps(document, separators=(",", ":"), allow_nan=False)
    return gzip.compress(text.encode("utf-8"), compresslevel=6, mtime=0)


def decode_readings(data: bytes, *, max_decoded_bytes: int) -> tuple[int, list[Reading]]:
    """The first sequence number and the readings of an encoded batch.

    CodecError for anything malformed, and for a batch that would inflate beyond
    ``max_decoded_bytes`` (a compression bomb is refused before it fills memory).
    """
    document = _parse(_inflate(data, max_decoded_bytes))
    try:
        return _rebuild(document)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise CodecError(f"malformed readings batch: {exc!r}") from exc


def _inflate(data: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        text = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise CodecError(f"readings batch is not valid gzip: {exc}") from exc
    if len(text) > limit or inflater.unconsumed_tail:
        raise CodecError(f"readings batch inflates beyond {limit} bytes; refused")
    if not inflater.eof:
        raise CodecError("readings batch is truncated")
    return text


def _parse(text: bytes) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CodecError(f"readings batch is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise CodecError("readings batch must be a JSON object")
    return document


def _rebuild(document: dict[str, Any]) -> tuple[int, list[Reading]]:
    first_seq = _integer(document["first_seq"])
    series = [(str(device), str(quantity)) for device, quantity in document["series"]]
    columns = [document["s"], document["t"], document["v"]]
    if len({len(column) for column in columns}) != 1:
        raise ValueError("columns s, t and v differ in length")
    qualities = {_integer(p): Quality(_integer(q)) for p, q in document["quality"]}
    non_finite = {_integer(p): _NON_FINITE[str(v)] for p, v in document["non_finite"]}
    last_value = [0] * len(series)
    ts = 0
    readings = []
    for position, (raw_index, ts_delta, value_delta) in enumerate(zip(*columns, strict=True)):
        index = _integer(raw_index)
        if not 0 <= index < len(series):
            raise ValueError(f"series index {index} out of range at position {position}")
        device, quantity = series[index]
        ts += _integer(ts_delta)
        last_value[index] += _integer(value_delta)
        resolution = _resolution(quantity)
        value = non_finite.get(position, round(last_value[index] * resolution,
                                                _decimals(resolution)))
        readings.append(Reading(device, quantity, ts, value,
                                qualities.get(position, Quality.GOOD)))
    return first_seq, readings


def _integer(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected an integer, got {value!r}")
    return value
