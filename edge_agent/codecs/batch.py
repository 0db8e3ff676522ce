"""The sync's batch documents: what a push request carries, before compression. Pure.

Readings travel columnar, so that the compressor finds the repetition a gateway's data is
made of: one column of series indexes (device and quantity named once in a header), one of
timestamp deltas, and one of values quantised to the quantity's declared resolution
(device_profiles/README.md) and delta-encoded per series, so a meter that barely moves costs a
few bits a reading. Non-finite values and non-GOOD qualities are rare and travel as sparse
lists. Events travel as a plain list. A plain JSON form of both exists for debugging.

Every document carries the sequence number of its first record; the rest follow one by one.
Quantisation is the only loss: a decoded value is the original rounded to its quantity's
resolution (0.1 V, 0.001 kWh …), which is what the hub stores anyway (``quantise``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from edge_agent.errors import CodecError
from edge_agent.quantities import lookup_quantity
from edge_agent.records import Event, Quality, Reading

__all__ = [
    "EVENTS_TYPE",
    "PLAIN_TYPE",
    "READINGS_TYPE",
    "decode_events",
    "decode_plain",
    "decode_readings",
    "encode_events",
    "encode_plain",
    "encode_readings",
    "quantise",
]

READINGS_TYPE = "application/vnd.ponton.readings.v1+json"
EVENTS_TYPE = "application/vnd.ponton.events.v1+json"
PLAIN_TYPE = "application/json"

#: Resolution used for a quantity outside the vocabulary (profiles never produce one).
_FALLBACK_RESOLUTION = 1e-6
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _resolution(quantity: str) -> float:
    spec = lookup_quantity(quantity)
    return spec.resolution if spec is not None else _FALLBACK_RESOLUTION


def _decimals(resolution: float) -> int:
    return max(0, -math.floor(math.log10(resolution)))


def quantise(quantity: str, value: float) -> float:
    """``value`` rounded to ``quantity``'s resolution, exactly as a decoded batch gives it."""
    if not math.isfinite(value):
        return value
    resolution = _resolution(quantity)
    return round(round(value / resolution) * resolution, _decimals(resolution))


def encode_readings(first_seq: int, readings: Sequence[Reading]) -> bytes:
    """``readings`` (seq ``first_seq``, ``first_seq + 1`` …) as one columnar document."""
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
    return _dump(document)


def decode_readings(data: bytes) -> tuple[int, list[Reading]]:
    """The first sequence number and the readings of a columnar document; CodecError if bad."""
    document = _parse(data)
    try:
        return _rebuild(document)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise CodecError(f"malformed readings batch: {exc!r}") from exc


def encode_events(first_seq: int, events: Sequence[Event]) -> bytes:
    """``events`` (seq ``first_seq``, ``first_seq + 1`` …) as one document."""
    return _dump({"first_seq": first_seq, "events": [_event_object(e) for e in events]})


def decode_events(data: bytes) -> tuple[int, list[Event]]:
    """The first sequence number and the events of a document; CodecError if malformed."""
    document = _parse(data)
    try:
        return _integer(document["first_seq"]), [_event(item) for item in document["events"]]
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise CodecError(f"malformed events batch: {exc!r}") from exc


def encode_plain(first_seq: int, readings: Sequence[Reading]) -> bytes:
    """``readings`` as one JSON object each: ten times bigger, for people and debugging."""
    rows = [
        {"device": r.device, "quantity": r.quantity, "ts_ms": r.ts_ms,
         "value": r.value if math.isfinite(r.value) else str(r.value).lower(),
         "quality": int(r.quality)}
        for r in readings
    ]
    return _dump({"first_seq": first_seq, "readings": rows})


def decode_plain(data: bytes) -> tuple[int, list[Reading]] | tuple[int, list[Event]]:
    """A plain JSON document of readings (``encode_plain``) or of events (``encode_events``)."""
    document = _parse(data)
    if "events" in document:
        return decode_events(data)
    try:
        return _integer(document["first_seq"]), [_plain_reading(row)
                                                 for row in document["readings"]]
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise CodecError(f"malformed readings batch: {exc!r}") from exc


def _dump(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _parse(text: bytes) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CodecError(f"batch is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise CodecError("batch must be a JSON object")
    return document


def _event_object(event: Event) -> dict[str, Any]:
    return {"kind": event.kind, "device": event.device, "ts_ms": event.ts_ms,
            "attrs": event.attrs}


def _event(item: Any) -> Event:
    if not isinstance(item, dict):
        raise TypeError(f"an event must be an object, got {item!r}")
    attrs = item.get("attrs", {})
    if not isinstance(attrs, dict):
        raise TypeError(f"event attrs must be an object, got {attrs!r}")
    return Event(_text(item["kind"]), _text(item["device"]), _integer(item["ts_ms"]), attrs)


def _plain_reading(row: Any) -> Reading:
    if not isinstance(row, dict):
        raise TypeError(f"a reading must be an object, got {row!r}")
    quantity = _text(row["quantity"])
    raw = row["value"]
    if isinstance(raw, str):
        value = _NON_FINITE[raw]
    elif isinstance(raw, int | float) and not isinstance(raw, bool):
        value = quantise(quantity, float(raw))
    else:
        raise TypeError(f"value must be a number, got {raw!r}")
    return Reading(_text(row["device"]), quantity, _integer(row["ts_ms"]), value,
                   Quality(_integer(row.get("quality", 0))))


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def _rebuild(document: dict[str, Any]) -> tuple[int, list[Reading]]:
    first_seq = _integer(document["first_seq"])
    series = [(_text(device), _text(quantity)) for device, quantity in document["series"]]
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
