"""Printed card numbers and Wiegand-26: the vendors' examples, round trips, bad input."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.codecs.badge_numbers import (
    FORMS,
    parse_printed,
    printed_forms,
    typed_width,
    w26_decode,
    w26_encode,
)
from edge_agent.errors import CodecError


def test_seeed_example_in_every_form() -> None:
    assert printed_forms(bytes.fromhex("62E3086CED")) == {
        "hex": "62E3086CED",
        "8H10D": "3808980205",  # E3086CED, not the datasheet's inconsistent 60717296877
        "6H8D": "00552173",
        "3+5": "008,27885",
        "dec": "424715775213",
    }


def test_keyboard_wedge_examples_of_the_reference() -> None:
    forms = printed_forms(bytes.fromhex("01026F6C3A"))
    assert forms["hex"] == "01026F6C3A"
    assert forms["8H10D"] == "0040856634"
    assert forms["3+5"] == "111,27706"
    assert forms["dec"] == "4335823930"


def test_em18_vendor_page_number() -> None:
    assert printed_forms(bytes.fromhex("4500C5D1E9"))["8H10D"] == "0012964329"


def test_leading_zeros_are_kept() -> None:
    forms = printed_forms(bytes.fromhex("000A00000A"))
    assert forms["hex"] == "000A00000A"
    assert forms["8H10D"] == "0167772170"
    assert forms["6H8D"] == "00000010"
    assert forms["3+5"] == "000,00010"


def test_short_uids_leave_out_the_forms_they_cannot_fill() -> None:
    assert set(printed_forms(bytes.fromhex("DEAD"))) == {"hex", "dec"}
    assert set(printed_forms(bytes.fromhex("DEADBEEF"))) == set(FORMS)


@pytest.mark.parametrize(
    ("text", "form", "length", "raw"),
    [
        ("62E3086CED", "hex", 5, "62E3086CED"),
        ("62:e3:08:6c:ed", "hex", None, "62E3086CED"),
        ("0040856634", "8H10D", None, "026F6C3A"),
        ("40856634", "8H10D", 4, "026F6C3A"),
        ("07302202", "6H8D", 3, "6F6C3A"),
        ("111,27706", "3+5", None, "6F6C3A"),
        ("111 27706", "3+5", None, "6F6C3A"),
        ("11127706", "3+5", None, "6F6C3A"),
        ("004,335,823,930", "dec", 5, "01026F6C3A"),
        ("4335823930", "dec", 7, "00000102 6F6C3A"),
    ],
)
def test_parse_printed(text: str, form: str, length: int | None, raw: str) -> None:
    assert parse_printed(text, form, length=length) == bytes.fromhex(raw)


@pytest.mark.parametrize(
    ("text", "form", "length", "message"),
    [
        ("A", "hex", None, "leading zero is probably missing"),
        ("62E3086CEZ", "hex", None, "not hexadecimal"),
        ("62E3086CED", "hex", 4, "expected a 4-byte card number, but '62E3086CED' has 5"),
        ("0040856634", "8H10D", 5, "8H10D keeps only the last 4 bytes"),
        ("4294967296", "8H10D", None, "does not fit in 4 bytes"),
        ("00408566341", "8H10D", None, "a 8H10D number has at most 10"),
        ("12a45", "8H10D", None, "not a decimal 8H10D number"),
        ("256,00001", "3+5", None, "facility code is 0-255"),
        ("1,65536", "3+5", None, "card number 0-65535"),
        ("1,2,3", "3+5", None, "not a 3+5 number"),
        ("4335823930", "dec", None, "needs the card's byte length"),
        ("4335823930", "dec", 4, "does not fit in 4 bytes"),
        ("  ", "hex", None, "empty hex number"),
        ("1234", "10H", None, "unknown number form '10H'"),
        ("1234", "hex", 0, "at least one byte"),
        ("١٢٣", "8H10D", None, "not a decimal"),
    ],
)
def test_bad_printed_numbers_say_what_is_wrong(
    text: str, form: str, length: int | None, message: str
) -> None:
    with pytest.raises(CodecError, match=re.escape(message)):
        parse_printed(text, form, length=length)


@given(st.binary(min_size=1, max_size=10))
def test_every_printed_form_parses_back_to_the_bytes_it_keeps(raw: bytes) -> None:
    for form, text in printed_forms(raw).items():
        kept = FORMS[form]
        expected = raw if kept is None else raw[-kept:]
        assert parse_printed(text, form, length=len(expected)) == expected


def test_w26_reference_example() -> None:
    assert w26_encode(123, 4567) == "10111101100010001110101110"
    assert w26_decode("10111101100010001110101110") == (123, 4567)


@given(st.integers(0, 255), st.integers(0, 65535))
def test_w26_round_trip_and_parity(facility: int, card: int) -> None:
    bits = w26_encode(facility, card)
    assert len(bits) == 26
    assert bits[:13].count("1") % 2 == 0
    assert bits[13:].count("1") % 2 == 1
    assert w26_decode(bits) == (facility, card)


@given(st.integers(0, 255), st.integers(0, 65535), st.integers(0, 25))
def test_w26_any_flipped_bit_is_a_parity_error(facility: int, card: int, bit: int) -> None:
    bits = w26_encode(facility, card)
    flipped = bits[:bit] + ("1" if bits[bit] == "0" else "0") + bits[bit + 1:]
    with pytest.raises(CodecError, match="parity error"):
        w26_decode(flipped)


def test_w26_facility_and_card_are_the_3_plus_5_form() -> None:
    facility, card = w26_decode(w26_encode(111, 27706))
    assert printed_forms(bytes([facility]) + card.to_bytes(2, "big"))["3+5"] == "111,27706"


@pytest.mark.parametrize(("bits", "message"), [("1011", "26 characters"),
                                               ("2" * 26, "26 characters")])
def test_w26_malformed(bits: str, message: str) -> None:
    with pytest.raises(CodecError, match=re.escape(message)):
        w26_decode(bits)


@pytest.mark.parametrize(("facility", "card"), [(256, 1), (1, 65536), (-1, 0)])
def test_w26_out_of_range(facility: int, card: int) -> None:
    with pytest.raises(CodecError, match="facility code 0-255"):
        w26_encode(facility, card)


@pytest.mark.parametrize(("form", "length", "width"),
                         [("hex", 5, 10), ("hex", None, None), ("8H10D", None, 10),
                          ("6H8D", None, 8), ("3+5", None, 8), ("dec", 5, None)])
def test_typed_width(form: str, length: int | None, width: int | None) -> None:
    assert typed_width(form, length) == width
