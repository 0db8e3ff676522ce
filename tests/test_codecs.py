"""Modbus register values: golden vectors, minimalmodbus as an independent implementation,
round trips for every type and layout, and errors."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import minimalmodbus
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.codecs.modbus_values import (
    ValueType,
    WordOrder,
    decode_registers,
    encode_value,
    register_count,
)
from edge_agent.errors import CodecError

BIG, LITTLE = WordOrder.BIG, WordOrder.LITTLE

#: The four byte layouts of a 32-bit value A B C D, as (word_order, byte_swap).
LAYOUTS: dict[str, tuple[WordOrder, bool]] = {
    "ABCD": (BIG, False),
    "CDAB": (LITTLE, False),
    "BADC": (BIG, True),
    "DCBA": (LITTLE, True),
}

#: minimalmodbus's name for each layout.
MINIMALMODBUS_BYTEORDER: dict[tuple[WordOrder, bool], int] = {
    (BIG, False): minimalmodbus.BYTEORDER_BIG,
    (LITTLE, False): minimalmodbus.BYTEORDER_LITTLE_SWAP,
    (BIG, True): minimalmodbus.BYTEORDER_BIG_SWAP,
    (LITTLE, True): minimalmodbus.BYTEORDER_LITTLE,
}

INTEGER_RANGES: dict[ValueType, tuple[int, int]] = {
    ValueType.INT16: (-(2**15), 2**15 - 1),
    ValueType.UINT16: (0, 2**16 - 1),
    ValueType.INT32: (-(2**31), 2**31 - 1),
    ValueType.UINT32: (0, 2**32 - 1),
    ValueType.INT64: (-(2**63), 2**63 - 1),
    ValueType.UINT64: (0, 2**64 - 1),
}
FLOAT_WIDTHS: dict[ValueType, Literal[32, 64]] = {ValueType.FLOAT32: 32, ValueType.FLOAT64: 64}
REGISTER_TYPES = [*INTEGER_RANGES, *FLOAT_WIDTHS]

# Golden vectors: (type, value, layout, registers), worked out by hand from the byte layouts.
GOLDEN: list[tuple[ValueType, int | float, str, list[int]]] = [
    # 16-bit: word order is moot, byte swap still swaps.
    (ValueType.INT16, -2, "ABCD", [0xFFFE]),
    (ValueType.INT16, -32768, "ABCD", [0x8000]),
    (ValueType.INT16, 0x1234, "BADC", [0x3412]),
    (ValueType.UINT16, 0xABCD, "CDAB", [0xABCD]),
    (ValueType.UINT16, 0xABCD, "DCBA", [0xCDAB]),
    # -123456 = 0xFFFE1DC0
    (ValueType.INT32, -123456, "ABCD", [0xFFFE, 0x1DC0]),
    (ValueType.INT32, -123456, "CDAB", [0x1DC0, 0xFFFE]),
    (ValueType.INT32, -123456, "BADC", [0xFEFF, 0xC01D]),
    (ValueType.INT32, -123456, "DCBA", [0xC01D, 0xFEFF]),
    # An iSMA counter: 40053 (low word) = 0x5678, 40054 (high word) = 0x1234.
    (ValueType.UINT32, 0x12345678, "CDAB", [0x5678, 0x1234]),
    (ValueType.UINT32, 0x12345678, "ABCD", [0x1234, 0x5678]),
    (ValueType.UINT32, 0x12345678, "BADC", [0x3412, 0x7856]),
    (ValueType.UINT32, 0x12345678, "DCBA", [0x7856, 0x3412]),
    # An iEM3155 energy index: 12 345 678 901 Wh = 0x00000002DFDC1C35.
    (ValueType.INT64, 12_345_678_901, "ABCD", [0x0000, 0x0002, 0xDFDC, 0x1C35]),
    (ValueType.INT64, 12_345_678_901, "CDAB", [0x1C35, 0xDFDC, 0x0002, 0x0000]),
    (ValueType.INT64, -1, "ABCD", [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF]),
    (ValueType.INT64, -2, "DCBA", [0xFEFF, 0xFFFF, 0xFFFF, 0xFFFF]),
    (ValueType.UINT64, 0x0102030405060708, "ABCD", [0x0102, 0x0304, 0x0506, 0x0708]),
    (ValueType.UINT64, 0x0102030405060708, "CDAB", [0x0708, 0x0506, 0x0304, 0x0102]),
    (ValueType.UINT64, 0x0102030405060708, "BADC", [0x0201, 0x0403, 0x0605, 0x0807]),
    (ValueType.UINT64, 0x0102030405060708, "DCBA", [0x0807, 0x0605, 0x0403, 0x0201]),
    # float32(pi) = 0x40490FDB, four distinct bytes.
    (ValueType.FLOAT32, 3.1415927410125732, "ABCD", [0x4049, 0x0FDB]),
    (ValueType.FLOAT32, 3.1415927410125732, "CDAB", [0x0FDB, 0x4049]),
    (ValueType.FLOAT32, 3.1415927410125732, "BADC", [0x4940, 0xDB0F]),
    (ValueType.FLOAT32, 3.1415927410125732, "DCBA", [0xDB0F, 0x4940]),
    (ValueType.FLOAT32, -1.5, "ABCD", [0xBFC0, 0x0000]),
    # float64(pi) = 0x400921FB54442D18.
    (ValueType.FLOAT64, math.pi, "ABCD", [0x4009, 0x21FB, 0x5444, 0x2D18]),
    (ValueType.FLOAT64, math.pi, "CDAB", [0x2D18, 0x5444, 0x21FB, 0x4009]),
    (ValueType.FLOAT64, math.pi, "BADC", [0x0940, 0xFB21, 0x4454, 0x182D]),
    (ValueType.FLOAT64, math.pi, "DCBA", [0x182D, 0x4454, 0xFB21, 0x0940]),
]


def _golden_id(value: object) -> str | None:
    return value if isinstance(value, str) else None


@pytest.mark.parametrize(("value_type", "value", "layout", "registers"), GOLDEN, ids=_golden_id)
def test_golden_vector(
    value_type: ValueType, value: float, layout: str, registers: list[int]
) -> None:
    word_order, byte_swap = LAYOUTS[layout]
    assert encode_value(value, value_type, word_order, byte_swap=byte_swap) == registers
    decoded = decode_registers(registers, value_type, word_order, byte_swap=byte_swap)
    assert decoded == value
    assert type(decoded) is (float if value_type in FLOAT_WIDTHS else int)


def test_eastron_example_230_2_volts() -> None:
    # The SDM120 document gives 230.2 V as 43 66 33 34, one unit in the last place above the
    # float32 nearest to 230.2 (0x43663333): both read back as 230.2 V at 0.1 V resolution.
    assert decode_registers([0x4366, 0x3334], ValueType.FLOAT32) == pytest.approx(230.2, abs=1e-4)
    assert encode_value(230.2, ValueType.FLOAT32) == [0x4366, 0x3333]


@pytest.mark.parametrize(
    ("value_type", "count"),
    [
        (ValueType.INT16, 1), (ValueType.UINT16, 1), (ValueType.INT32, 2), (ValueType.UINT32, 2),
        (ValueType.INT64, 4), (ValueType.UINT64, 4), (ValueType.FLOAT32, 2),
        (ValueType.FLOAT64, 4), (ValueType.BOOL, 1),
    ],
)
def test_register_count(value_type: ValueType, count: int) -> None:
    assert register_count(value_type) == count


# --- minimalmodbus, an independent implementation of the same layouts ------------------------
# Its private helpers are used (2.1 renamed the 1.x ``*_bytestring`` ones to ``*_bytes``).


def _registers(raw: bytes) -> list[int]:
    return [int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw), 2)]


def _bytes(registers: list[int]) -> bytes:
    return b"".join(word.to_bytes(2, "big") for word in registers)


def _minimalmodbus_encode(
    value: float, value_type: ValueType, word_order: WordOrder, byte_swap: bool
) -> list[int]:
    count = register_count(value_type)
    byteorder = MINIMALMODBUS_BYTEORDER[(word_order, byte_swap)]
    raw: bytes
    if value_type in FLOAT_WIDTHS:
        raw = minimalmodbus._float_to_bytes(value, count, byteorder)
    elif count == 1:
        signed = value_type is ValueType.INT16
        raw = minimalmodbus._num_to_two_bytes(int(value), 0, byte_swap, signed)
    else:
        signed = value_type in (ValueType.INT32, ValueType.INT64)
        raw = minimalmodbus._long_to_bytes(int(value), signed, count, byteorder)
    return _registers(raw)


def _minimalmodbus_decode(
    registers: list[int], value_type: ValueType, word_order: WordOrder, byte_swap: bool
) -> int | float:
    count = register_count(value_type)
    byteorder = MINIMALMODBUS_BYTEORDER[(word_order, byte_swap)]
    raw = _bytes(registers)
    value: int | float
    if value_type in FLOAT_WIDTHS:
        value = minimalmodbus._bytes_to_float(raw, count, byteorder)
    elif count == 1:
        signed = value_type is ValueType.INT16
        value = minimalmodbus._two_bytes_to_num(raw[::-1] if byte_swap else raw, 0, signed)
    else:
        signed = value_type in (ValueType.INT32, ValueType.INT64)
        value = minimalmodbus._bytes_to_long(raw, signed, count, byteorder)
    return value


@pytest.mark.parametrize(("value_type", "value", "layout", "registers"), GOLDEN, ids=_golden_id)
def test_golden_vector_agrees_with_minimalmodbus(
    value_type: ValueType, value: float, layout: str, registers: list[int]
) -> None:
    word_order, byte_swap = LAYOUTS[layout]
    assert _minimalmodbus_encode(value, value_type, word_order, byte_swap) == registers
    assert _minimalmodbus_decode(registers, value_type, word_order, byte_swap) == value


layouts = st.sampled_from(list(LAYOUTS.values()))


def values_of(value_type: ValueType) -> st.SearchStrategy[float]:
    """Values the type holds exactly; floats include NaN, infinities and -0.0."""
    if value_type in FLOAT_WIDTHS:
        return st.floats(width=FLOAT_WIDTHS[value_type])
    low, high = INTEGER_RANGES[value_type]
    return st.integers(low, high)


def registers_of(value_type: ValueType) -> st.SearchStrategy[list[int]]:
    """Any registers of the type's count."""
    count = register_count(value_type)
    return st.lists(st.integers(0, 0xFFFF), min_size=count, max_size=count)


def _same(a: float, b: float) -> bool:
    """Equal, treating every NaN as equal and telling -0.0 from 0.0."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


by_type = pytest.mark.parametrize("value_type", REGISTER_TYPES)


@by_type
@given(data=st.data(), layout=layouts)
def test_encode_agrees_with_minimalmodbus(
    value_type: ValueType, data: st.DataObject, layout: tuple[WordOrder, bool]
) -> None:
    value, (word_order, byte_swap) = data.draw(values_of(value_type)), layout
    ours = encode_value(value, value_type, word_order, byte_swap=byte_swap)
    theirs = _minimalmodbus_encode(value, value_type, word_order, byte_swap)
    if math.isnan(value):
        # NaN payloads may differ between the two packers; both must still decode to NaN.
        assert math.isnan(decode_registers(theirs, value_type, word_order, byte_swap=byte_swap))
        assert math.isnan(decode_registers(ours, value_type, word_order, byte_swap=byte_swap))
    else:
        assert ours == theirs


@by_type
@given(data=st.data(), layout=layouts)
def test_decode_agrees_with_minimalmodbus(
    value_type: ValueType, data: st.DataObject, layout: tuple[WordOrder, bool]
) -> None:
    registers, (word_order, byte_swap) = data.draw(registers_of(value_type)), layout
    ours = decode_registers(registers, value_type, word_order, byte_swap=byte_swap)
    theirs = _minimalmodbus_decode(registers, value_type, word_order, byte_swap)
    assert _same(ours, theirs)


# --- round trips ----------------------------------------------------------------------------


@by_type
@given(data=st.data(), layout=layouts)
def test_value_round_trip(
    value_type: ValueType, data: st.DataObject, layout: tuple[WordOrder, bool]
) -> None:
    value, (word_order, byte_swap) = data.draw(values_of(value_type)), layout
    registers = encode_value(value, value_type, word_order, byte_swap=byte_swap)
    assert len(registers) == register_count(value_type)
    assert all(0 <= word <= 0xFFFF for word in registers)
    assert _same(decode_registers(registers, value_type, word_order, byte_swap=byte_swap), value)


@by_type
@given(data=st.data(), layout=layouts)
def test_register_round_trip(
    value_type: ValueType, data: st.DataObject, layout: tuple[WordOrder, bool]
) -> None:
    registers, (word_order, byte_swap) = data.draw(registers_of(value_type)), layout
    value = decode_registers(registers, value_type, word_order, byte_swap=byte_swap)
    again = encode_value(value, value_type, word_order, byte_swap=byte_swap)
    if math.isnan(value):
        # A NaN's payload need not survive the trip through a Python float; NaN-ness does.
        assert math.isnan(decode_registers(again, value_type, word_order, byte_swap=byte_swap))
    else:
        assert again == registers


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value_type", "registers"),
    [
        (ValueType.INT16, []),
        (ValueType.UINT16, [1, 2]),
        (ValueType.INT32, [1]),
        (ValueType.FLOAT32, [1, 2, 3]),
        (ValueType.INT64, [1, 2]),
        (ValueType.FLOAT64, [1, 2, 3, 4, 5]),
    ],
)
def test_decode_wrong_register_count(value_type: ValueType, registers: list[int]) -> None:
    with pytest.raises(CodecError, match=f"{value_type} needs {register_count(value_type)}"):
        decode_registers(registers, value_type)


@pytest.mark.parametrize("registers", [[0x10000, 0], [0, -1]])
def test_decode_register_out_of_16_bits(registers: list[int]) -> None:
    with pytest.raises(CodecError, match=r"0\.\.65535"):
        decode_registers(registers, ValueType.UINT32)


@pytest.mark.parametrize(
    ("value_type", "value"),
    [
        (ValueType.INT16, 32768),
        (ValueType.INT16, -32769),
        (ValueType.UINT16, 65536),
        (ValueType.UINT16, -1),
        (ValueType.INT32, 2**31),
        (ValueType.UINT32, -1),
        (ValueType.INT64, 2**63),
        (ValueType.UINT64, 2**64),
        (ValueType.FLOAT32, 1e39),
    ],
)
def test_encode_out_of_range(value_type: ValueType, value: float) -> None:
    with pytest.raises(CodecError, match=f"does not fit in {value_type}"):
        encode_value(value, value_type)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_encode_non_finite_into_integer(value: float) -> None:
    with pytest.raises(CodecError):
        encode_value(value, ValueType.INT32)


@pytest.mark.parametrize(
    "call",
    [
        lambda: decode_registers([1], ValueType.BOOL),
        lambda: encode_value(1, ValueType.BOOL),
    ],
    ids=["decode", "encode"],
)
def test_bool_is_not_a_register_type(call: Callable[[], object]) -> None:
    with pytest.raises(CodecError, match="bool values"):
        call()
