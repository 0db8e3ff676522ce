"""The sync's batch documents: what a push request carries, before compression. Pure.

Readings travel as one JSON document per batch, laid out for the few bits a reading carries.
A batch is the same few hundred series polled again and again, so what repeats is said once:
the series are named once, in a header grouped by device, and each record carries only its
series index (``s``, as the step from the previous record's, which a regular poll order turns
into runs of 1 that the compressor swallows). The numbers of each series then travel
together, which is where their regularity shows:

- timestamps: the first record's (``t0``), then each record's step from the record before
  it, whatever its series. The readings of one Modbus request share a timestamp (step 0) and
  the first one of a request comes a line time after the previous request, so the steps of
  one series stay close to one value, sent once (``t_base``), and only the jitter is coded;
- values, quantised to the quantity's declared resolution (device_profiles/README.md): the
  first of each series plainly (``v0``), the others as steps from the series' previous value,
  so a meter that barely moves costs a bit or two a reading.

Those small signed numbers are Rice-coded (zigzag, then the quotient in unary and ``k`` low
bits; one ``k`` per series and column in ``t_k`` and ``v_k``, -1 when every number is 0 and
takes no bit at all) into one bit stream, sent as base64 (``bits``). Decimal text cannot get
as close to what the numbers carry: on the benchmark's marina day (bench/bench_wire.py) the
value steps take 40 % fewer bytes as Rice codes than as zstd-compressed digits and commas,
and they are most of a batch. zstd or gzip then compress the header and the columns.
Non-GOOD qualities and values that cannot be quantised (NaN, infinities, finite values beyond
2**53 resolution steps) are rare and travel as sparse lists of positions (``quality``, and
``exact`` with the value's text).
Events travel as a plain list. A plain JSON form of both exists for debugging.

Every document carries the sequence number of its first record; the rest follow one by one,
in the order of ``s``. Quantisation is the only loss: a decoded value is the original rounded
to its quantity's resolution (0.1 V, 0.001 kWh …), which is what the hub stores anyway
(``quantise``). Decoding is strict: whatever is malformed raises CodecError, never another
exception.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import statistics
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

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
#: Values beyond 2**53 resolution steps are not quantised (see ``_quantisable``).
_MAX_STEPS = 2**53
#: Timestamps a decoded batch may hold: what a signed 64-bit column stores.
_MIN_TS, _MAX_TS = -(2**63), 2**63 - 1

_T = TypeVar("_T")


def _resolution(quantity: str) -> float:
    spec = lookup_quantity(quantity)
    return spec.resolution if spec is not None else _FALLBACK_RESOLUTION


def _decimals(resolution: float) -> int:
    return max(0, -math.floor(math.log10(resolution)))


def quantise(quantity: str, value: float) -> float:
    """``value`` rounded to ``quantity``'s resolution, exactly as a decoded batch gives it."""
    resolution = _resolution(quantity)
    if not _quantisable(value, resolution):
        return value
    return round(round(value / resolution) * resolution, _decimals(resolution))


def _quantisable(value: float, resolution: float) -> bool:
    """Finite and small enough that its count of resolution steps is an exact integer.

    A float64 register can hold 1e306 (a broken meter, a misdecoded word order); such values
    travel exactly, as text, instead of blocking their batch on every retry.
    """
    return math.isfinite(value) and abs(value / resolution) <= _MAX_STEPS


def encode_readings(first_seq: int, readings: Sequence[Reading]) -> bytes:
    """``readings`` (seq ``first_seq``, ``first_seq + 1`` …) as one columnar document."""
    devices: dict[str, dict[str, None]] = {}
    for reading in readings:
        devices.setdefault(reading.device, {})[reading.quantity] = None
    keys = [(device, quantity) for device, quantities in devices.items()
            for quantity in quantities]
    index = {key: i for i, key in enumerate(keys)}
    resolutions = [_resolution(quantity) for _, quantity in keys]
    ts_steps: list[list[int]] = [[] for _ in keys]
    values: list[list[int]] = [[] for _ in keys]
    index_steps, qualities, exact = [], [], []
    previous_index = 0
    previous_ts = readings[0].ts_ms if readings else 0
    for position, reading in enumerate(readings):
        series = index[reading.device, reading.quantity]
        index_steps.append(series - previous_index)
        previous_index = series
        if position:  # the first record's timestamp is t0
            ts_steps[series].append(reading.ts_ms - previous_ts)
        previous_ts = reading.ts_ms
        if _quantisable(reading.value, resolutions[series]):
            values[series].append(round(reading.value / resolutions[series]))
        else:
            # Repeats the series' previous value: a step of 0, the cheapest thing to send.
            values[series].append(values[series][-1] if values[series] else 0)
            exact.append([position, repr(reading.value)])
        if reading.quality is not Quality.GOOD:
            qualities.append([position, int(reading.quality)])
    bits = _BitWriter()
    t_base, t_k, v_k = [], [], []
    for steps, series_values in zip(ts_steps, values, strict=True):
        base = statistics.median_low(steps) if steps else 0
        t_base.append(base)
        t_k.append(bits.write([step - base for step in steps]))
        v_k.append(bits.write([after - before
                               for before, after in itertools.pairwise(series_values)]))
    document = {
        "first_seq": first_seq,
        "series": [[device, list(quantities)] for device, quantities in devices.items()],
        "s": index_steps,
        "t0": readings[0].ts_ms if readings else 0,
        "t_base": t_base,
        "t_k": t_k,
        "v0": [series_values[0] for series_values in values],
        "v_k": v_k,
        "bits": bits.getvalue(),
        "quality": qualities,
        "exact": exact,
    }
    return _dump(document)


def decode_readings(data: bytes) -> tuple[int, list[Reading]]:
    """The first sequence number and the readings of a columnar document; CodecError if bad."""
    document = _parse(data)
    try:
        return _rebuild(document)
    except (KeyError, IndexError, TypeError, ValueError, OverflowError) as exc:
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
        value = _exact_value(raw)
    elif isinstance(raw, int | float) and not isinstance(raw, bool):
        value = quantise(quantity, float(raw))
    else:
        raise TypeError(f"value must be a number, got {raw!r}")
    return Reading(_text(row["device"]), quantity, _integer(row["ts_ms"]), value,
                   Quality(_integer(row.get("quality", 0))))


def _exact_value(text: object) -> float:
    """A value sent as text: ``nan``, ``inf``, ``-inf`` or a float too big to quantise."""
    raw = _text(text)
    if len(raw) > 32:
        raise ValueError(f"value text too long: {raw[:32]!r}...")
    return float(raw)


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def _rebuild(document: dict[str, Any]) -> tuple[int, list[Reading]]:
    first_seq = _integer(document["first_seq"])
    series = _series_header(document["series"])
    order = _series_order(document["s"], len(series))
    sizes = [0] * len(series)
    for index in order:
        sizes[index] += 1
    if 0 in sizes:
        raise ValueError(f"series {sizes.index(0)} has no record")
    t_base, t_k, v0, v_k = (_integers(document[key], key, len(series))
                            for key in ("t_base", "t_k", "v0", "v_k"))
    bits = _BitReader(_text(document["bits"]))
    ts_steps: list[Iterator[int]] = []
    values: list[Iterator[int]] = []
    for i, size in enumerate(sizes):
        steps = bits.read(size - (i == order[0]), t_k[i])  # the first record has t0
        ts_steps.append(iter([t_base[i] + step for step in steps]))
        values.append(itertools.accumulate(bits.read(size - 1, v_k[i]), initial=v0[i]))
    bits.finish()
    qualities = _sparse(document["quality"], "quality", len(order), lambda q: Quality(_integer(q)))
    exact = _sparse(document["exact"], "exact", len(order), _exact_value)
    scales = [(resolution, _decimals(resolution))
              for resolution in (_resolution(quantity) for _, quantity in series)]
    ts = _integer(document["t0"])
    readings = []
    for position, index in enumerate(order):
        if position:
            ts += next(ts_steps[index])
        if not _MIN_TS <= ts <= _MAX_TS:
            raise ValueError(f"timestamp {ts} out of range at position {position}")
        quantised = next(values[index])
        resolution, decimals = scales[index]
        value = exact.get(position, round(quantised * resolution, decimals))
        readings.append(Reading(*series[index], ts, value, qualities.get(position, Quality.GOOD)))
    return first_seq, readings


def _series_order(steps: object, count: int) -> list[int]:
    order = []
    index = 0
    for position, step in enumerate(_list(steps, "s")):
        index += _integer(step)
        if not 0 <= index < count:
            raise ValueError(f"series index {index} out of range at position {position}")
        order.append(index)
    return order


def _series_header(header: object) -> list[tuple[str, str]]:
    series: list[tuple[str, str]] = []
    for item in _list(header, "series"):
        device, quantities = _list(item, "a series entry")
        names = _list(quantities, "a device's quantities")
        if not names:
            raise ValueError(f"device {device!r} lists no quantity")
        series += [(_text(device), _text(quantity)) for quantity in names]
    if len(set(series)) != len(series):
        raise ValueError("a series is listed twice")
    return series


def _sparse(items: object, key: str, length: int, convert: Callable[[Any], _T]
            ) -> dict[int, _T]:
    found: dict[int, _T] = {}
    for item in _list(items, key):
        position, value = _list(item, f"a {key} entry")
        position = _integer(position)
        if not 0 <= position < length or position in found:
            raise ValueError(f"{key} position {position} out of range or listed twice")
        found[position] = convert(value)
    return found


def _list(value: object, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"{what} must be a list, got {value!r}")
    return value


def _integers(value: object, what: str, length: int) -> list[int]:
    numbers = [_integer(item) for item in _list(value, what)]
    if len(numbers) != length:
        raise ValueError(f"{what} has {len(numbers)} entries for {length} series")
    return numbers


def _zigzag(number: int) -> int:
    return number << 1 if number >= 0 else ((-number) << 1) - 1


def _unzigzag(code: int) -> int:
    return -((code + 1) >> 1) if code & 1 else code >> 1


class _BitWriter:
    """Rice codes of signed numbers, appended to one bit stream."""

    def __init__(self) -> None:
        self._chunks: list[str] = []

    def write(self, numbers: list[int]) -> int:
        """Append ``numbers``; the Rice parameter used, -1 when all are 0 (nothing written)."""
        codes = [_zigzag(number) for number in numbers]
        if not any(codes):
            return -1
        # k near the mean code's bit length, the shortest of four. 2**k is then more than a
        # quarter of the mean, so the unary parts add up to less than 4 bits a number
        # whatever the outliers (a glitch costs its series k + 1 bits a reading, not 2**k).
        guess = (sum(codes) // len(codes)).bit_length()
        k = min(range(max(0, guess - 2), guess + 2),
                key=lambda k: sum(code >> k for code in codes) + len(codes) * (k + 1))
        low = (1 << k) - 1
        # bin((1 << k) | r) is "0b1" then r on k bits: the unary stop bit and the low bits.
        self._chunks += ["0" * (code >> k) + bin((1 << k) | (code & low))[2:] for code in codes]
        return k

    def getvalue(self) -> str:
        """The stream as base64, padded with 0 bits to a whole byte."""
        stream = "".join(self._chunks)
        if not stream:
            return ""
        stream += "0" * (-len(stream) % 8)
        return base64.b64encode(int(stream, 2).to_bytes(len(stream) // 8, "big")).decode()


class _BitReader:
    """The numbers a ``_BitWriter`` wrote, read back in the same order; ValueError if short."""

    def __init__(self, text: str) -> None:
        raw = base64.b64decode(text, validate=True)
        self._bits = bin(int.from_bytes(raw, "big") | (1 << 8 * len(raw)))[3:]
        self._position = 0

    def read(self, count: int, k: int) -> list[int]:
        if k < -1:
            raise ValueError(f"Rice parameter {k} is not -1 or more")
        if k == -1:
            return [0] * count
        bits, position, numbers = self._bits, self._position, []
        for _ in range(count):
            stop = bits.find("1", position)
            if stop < 0 or stop + 1 + k > len(bits):
                raise ValueError("the bit stream ends inside a code")
            low = int(bits[stop + 1 : stop + 1 + k], 2) if k else 0
            numbers.append(_unzigzag(((stop - position) << k) | low))
            position = stop + 1 + k
        self._position = position
        return numbers

    def finish(self) -> None:
        rest = self._bits[self._position :]
        if len(rest) >= 8 or "1" in rest:
            raise ValueError(f"{len(rest)} bits left after the last code")


def _integer(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected an integer, got {value!r}")
    return value
