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
- values, quantised to the quantity's declared resolution (device_profiles/README.md), a
  power of ten that the document states for each series as its count of decimals (``v_dec``:
  1 for 0.1 V, 3 for 0.001 kWh, -1 for 10 W), so that the receiver scales the integers back
  with the resolution the sender used, whatever its own copy of the vocabulary says: the
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
to its quantity's resolution (0.1 V, 0.001 kWh …) as the sender declares it, which is what
the hub stores anyway (``quantise``); a value that travels as text is quantised too once
parsed. Plain documents carry values unquantised and the receiver quantises them with its
own vocabulary.

Decoding is strict: whatever is malformed raises CodecError, never another exception. A
document holds at most ``MAX_RECORDS`` records, refused before any is built; every integer
must fit a signed 64-bit column; device names (128 characters at most), quantity names and
event kinds (64) must fit the hub's columns and hold no NUL and no lone surrogate, which
PostgreSQL refuses.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import math
import statistics
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from edge_agent.errors import CodecError
from edge_agent.quantities import lookup_quantity
from edge_agent.records import Event, Quality, Reading

__all__ = [
    "EVENTS_TYPE",
    "MAX_RECORDS",
    "PLAIN_TYPE",
    "READINGS_TYPE",
    "ReadingColumns",
    "decode_events",
    "decode_plain",
    "decode_reading_columns",
    "decode_readings",
    "encode_events",
    "encode_plain",
    "encode_readings",
    "quantise",
]

READINGS_TYPE = "application/vnd.ponton.readings.v1+json"
EVENTS_TYPE = "application/vnd.ponton.events.v1+json"
PLAIN_TYPE = "application/json"

#: Records a document may hold: the agent's largest ``batch_limit`` (edge_agent/config.py).
MAX_RECORDS = 100_000

#: Resolution used for a quantity outside the vocabulary (profiles never produce one).
_FALLBACK_RESOLUTION = 1e-6
#: Resolutions a document may declare, by count of decimals: 10**6 (-6) to 10**-12 (12).
_GRIDS = {decimals: float(f"1e{-decimals}") for decimals in range(-6, 13)}
#: Values beyond 2**53 resolution steps are not quantised (see ``_quantisable``).
_MAX_STEPS = 2**53
#: Integers a document may hold, timestamps included: what a signed 64-bit column stores.
_MIN_INT, _MAX_INT = -(2**63), 2**63 - 1
#: Longest names the hub's columns take (sync_server/db/schema.py).
_MAX_DEVICE, _MAX_NAME = 128, 64
#: Base64 characters of ``bits`` a record may need: 36 bytes, more than twice the worst case
#: (a timestamp step of 66 bits and a value step of 56, each with k + 1 + fewer than 4 bits).
_MAX_BITS_PER_RECORD = 48
#: What ``encode_plain`` writes for a value JSON cannot carry as a number.
_PLAIN_WORDS = ("nan", "inf", "-inf")
#: Errors that mean a malformed document, turned into CodecError.
_MALFORMED = (KeyError, IndexError, TypeError, ValueError, OverflowError)

_T = TypeVar("_T")


def _resolution(quantity: str) -> float:
    spec = lookup_quantity(quantity)
    return spec.resolution if spec is not None else _FALLBACK_RESOLUTION


def _decimals_of(quantity: str) -> int:
    """The count of decimals of ``quantity``'s resolution: 3 for 0.001.

    Every resolution of the vocabulary is a power of ten (a test says so); one that is not
    would get the finer power of ten below it, so that sender and receiver still agree.
    """
    resolution = _resolution(quantity)
    decimals = round(-math.log10(resolution))
    if _GRIDS.get(decimals) != resolution:
        decimals = -math.floor(math.log10(resolution))
    return min(max(decimals, min(_GRIDS)), max(_GRIDS))


def quantise(quantity: str, value: float) -> float:
    """``value`` rounded to ``quantity``'s resolution, exactly as a decoded batch gives it."""
    return _quantised(value, _decimals_of(quantity))


def _quantised(value: float, decimals: int) -> float:
    resolution = _GRIDS[decimals]
    if not _quantisable(value, resolution):
        return value
    return round(round(value / resolution) * resolution, max(0, decimals))


def _quantisable(value: float, resolution: float) -> bool:
    """Finite and small enough that its count of resolution steps is an exact integer.

    A float64 register can hold 1e306 (a broken meter, a misdecoded word order); such values
    travel exactly, as text, instead of blocking their batch on every retry.
    """
    return math.isfinite(value) and abs(value / resolution) <= _MAX_STEPS


@dataclass(frozen=True, slots=True)
class ReadingColumns:
    """A batch of readings as columns: what the hub stores, with no object per reading.

    Reading ``i`` (seq ``first_seq + i``) is series ``series[order[i]]``, taken at
    ``ts_ms[i]``, worth ``values[i]`` (quantised as ``decode_readings`` gives it), of
    quality ``qualities.get(i, GOOD)``.
    """

    first_seq: int
    series: list[tuple[str, str]]
    order: list[int]
    ts_ms: list[int]
    values: list[float]
    qualities: dict[int, Quality]

    def __len__(self) -> int:
        return len(self.order)

    def reading(self, position: int) -> Reading:
        """Reading ``position`` as an object (a replay compares a few with what is stored)."""
        device, quantity = self.series[self.order[position]]
        return Reading(device, quantity, self.ts_ms[position], self.values[position],
                       self.qualities.get(position, Quality.GOOD))

    def readings(self) -> list[Reading]:
        """Every reading as an object."""
        return [self.reading(position) for position in range(len(self.order))]

    @classmethod
    def of(cls, first_seq: int, readings: Sequence[Reading]) -> ReadingColumns:
        """``readings`` (seq ``first_seq`` on) as columns."""
        index: dict[tuple[str, str], int] = {}
        order = [index.setdefault((r.device, r.quantity), len(index)) for r in readings]
        return cls(first_seq, list(index), order, [r.ts_ms for r in readings],
                   [r.value for r in readings],
                   {p: r.quality for p, r in enumerate(readings) if r.quality is not Quality.GOOD})


def encode_readings(first_seq: int, readings: Sequence[Reading]) -> bytes:
    """``readings`` (seq ``first_seq``, ``first_seq + 1`` …) as one columnar document."""
    devices: dict[str, dict[str, None]] = {}
    for reading in readings:
        devices.setdefault(reading.device, {})[reading.quantity] = None
    keys = [(device, quantity) for device, quantities in devices.items()
            for quantity in quantities]
    index = {key: i for i, key in enumerate(keys)}
    decimals = [_decimals_of(quantity) for _, quantity in keys]
    resolutions = [_GRIDS[d] for d in decimals]
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
        # A step between two 64-bit timestamps may need 65 bits; its base may not.
        base = min(max(statistics.median_low(steps), _MIN_INT), _MAX_INT) if steps else 0
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
        "v_dec": decimals,
        "v0": [series_values[0] for series_values in values],
        "v_k": v_k,
        "bits": bits.getvalue(),
        "quality": qualities,
        "exact": exact,
    }
    return _dump(document)


def decode_readings(data: bytes) -> tuple[int, list[Reading]]:
    """The first sequence number and the readings of a columnar document; CodecError if bad."""
    columns = decode_reading_columns(data)
    return columns.first_seq, columns.readings()


def decode_reading_columns(data: bytes) -> ReadingColumns:
    """A columnar document as columns, without an object per reading; CodecError if bad."""
    document = _parse(data)
    with _malformed("readings"):
        return _columns(document)


def encode_events(first_seq: int, events: Sequence[Event]) -> bytes:
    """``events`` (seq ``first_seq``, ``first_seq + 1`` …) as one document."""
    return _dump({"first_seq": first_seq, "events": [_event_object(e) for e in events]})


def decode_events(data: bytes) -> tuple[int, list[Event]]:
    """The first sequence number and the events of a document; CodecError if malformed."""
    return _events(_parse(data))


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
        return _events(document)
    with _malformed("readings"):
        first_seq = _integer(document["first_seq"])
        return first_seq, [_plain_reading(row)
                           for row in _records(document["readings"], "readings")]


@contextlib.contextmanager
def _malformed(what: str) -> Iterator[None]:
    try:
        yield
    except _MALFORMED as exc:
        raise CodecError(f"malformed {what} batch: {type(exc).__name__}: {exc}") from exc


def _dump(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _parse(text: bytes) -> dict[str, Any]:
    try:
        document = json.loads(text)
    # JSONDecodeError, UnicodeDecodeError, and an integer of more than 4,300 digits
    except (ValueError, RecursionError) as exc:
        raise CodecError(f"batch is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise CodecError("batch must be a JSON object")
    return document


def _records(value: object, what: str) -> list[Any]:
    """The list of a document's records, refused before anything is built if too long."""
    records = _list(value, what)
    if len(records) > MAX_RECORDS:
        raise ValueError(f"{len(records)} {what} in one batch, more than {MAX_RECORDS}")
    return records


def _events(document: dict[str, Any]) -> tuple[int, list[Event]]:
    with _malformed("events"):
        first_seq = _integer(document["first_seq"])
        return first_seq, [_event(item) for item in _records(document["events"], "events")]


def _event_object(event: Event) -> dict[str, Any]:
    return {"kind": event.kind, "device": event.device, "ts_ms": event.ts_ms,
            "attrs": event.attrs}


def _event(item: Any) -> Event:
    if not isinstance(item, dict):
        raise TypeError(f"an event must be an object, got {item!r}")
    attrs = item.get("attrs", {})
    if not isinstance(attrs, dict):
        raise TypeError(f"event attrs must be an object, got {attrs!r}")
    return Event(_name(item["kind"], "event kind", _MAX_NAME),
                 _name(item["device"], "device", _MAX_DEVICE), _integer(item["ts_ms"]), attrs)


def _plain_reading(row: Any) -> Reading:
    if not isinstance(row, dict):
        raise TypeError(f"a reading must be an object, got {row!r}")
    quantity = _name(row["quantity"], "quantity", _MAX_NAME)
    raw = row["value"]
    if isinstance(raw, str):
        if raw not in _PLAIN_WORDS:
            raise ValueError(f"a plain value as text is nan, inf or -inf, got {raw[:32]!r}")
        value = float(raw)
    elif isinstance(raw, int | float) and not isinstance(raw, bool):
        value = float(raw)
    else:
        raise TypeError(f"value must be a number, got {raw!r}")
    return Reading(_name(row["device"], "device", _MAX_DEVICE), quantity,
                   _integer(row["ts_ms"]), quantise(quantity, value),
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


def _name(value: object, what: str, limit: int) -> str:
    """A device name, quantity or event kind, as the hub's columns can store it."""
    text = _text(value)
    if len(text) > limit:
        raise ValueError(f"{what} {text[:limit]!r}... is longer than {limit} characters")
    if "\x00" in text:
        raise ValueError(f"{what} {text!r} contains NUL, which the hub cannot store")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{what} {text!r} contains a lone surrogate, which is not "
                             "Unicode text") from None
    return text


def _columns(document: dict[str, Any]) -> ReadingColumns:
    first_seq = _integer(document["first_seq"])
    index_steps = _records(document["s"], "s")
    series = _series_header(document["series"])
    order = _series_order(index_steps, len(series))
    sizes = [0] * len(series)
    for index in order:
        sizes[index] += 1
    if 0 in sizes:
        raise ValueError(f"series {sizes.index(0)} has no record")
    t_base, t_k, decimals, v0, v_k = (_integers(document[key], key, len(series))
                                      for key in ("t_base", "t_k", "v_dec", "v0", "v_k"))
    for d in decimals:
        if d not in _GRIDS:
            raise ValueError(f"v_dec {d}: a resolution of 1e{-d} is not one of "
                             f"1e{-max(_GRIDS)} to 1e{-min(_GRIDS)}")
    text = _text(document["bits"])
    if len(text) > _MAX_BITS_PER_RECORD * len(order) + 8:
        raise ValueError(f"bit stream of {len(text)} characters for {len(order)} records")
    bits = _BitReader(text)
    ts_steps: list[Iterator[int]] = []
    values: list[Iterator[float]] = []
    for i, size in enumerate(sizes):
        steps = bits.read(size - (i == order[0]), t_k[i])  # the first record has t0
        ts_steps.append(iter([t_base[i] + step for step in steps]))
        resolution, digits = _GRIDS[decimals[i]], max(0, decimals[i])
        values.append(iter([round(q * resolution, digits) for q in
                            itertools.accumulate(bits.read(size - 1, v_k[i]), initial=v0[i])]))
    bits.finish()
    qualities = _sparse(document["quality"], "quality", len(order), lambda q: Quality(_integer(q)))
    exact = _sparse(document["exact"], "exact", len(order), _exact_value)
    # Column by column, each series' iterator taken in record order: no loop in Python.
    ts = list(itertools.accumulate(map(next, map(ts_steps.__getitem__, order[1:])),
                                   initial=_integer(document["t0"])))
    if min(ts) < _MIN_INT or max(ts) > _MAX_INT:
        position = next(p for p, t in enumerate(ts) if not _MIN_INT <= t <= _MAX_INT)
        _in_range(ts[position], "timestamp", position)
    column = list(map(next, map(values.__getitem__, order)))
    for position, value in exact.items():  # parsed text, quantised like the others
        column[position] = _quantised(value, decimals[order[position]])
    return ReadingColumns(first_seq, series, order, ts, column, qualities)


def _series_order(steps: list[Any], count: int) -> list[int]:
    order = []
    index = 0
    for position, step in enumerate(steps):
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
        if len(series) + len(names) > MAX_RECORDS:  # every series has a record
            raise ValueError(f"more than {MAX_RECORDS} series")
        device = _name(device, "device", _MAX_DEVICE)
        series += [(device, _name(quantity, "quantity", _MAX_NAME)) for quantity in names]
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
    return _in_range(value, "integer")


def _in_range(number: int, what: str, position: int | None = None) -> int:
    """``number`` if a signed 64-bit column can store it: every integer of every document."""
    if not _MIN_INT <= number <= _MAX_INT:
        shown = number if number.bit_length() <= 128 else f"of {number.bit_length()} bits"
        where = "" if position is None else f" at position {position}"
        raise ValueError(f"{what} {shown} out of range (signed 64 bits){where}")
    return number
