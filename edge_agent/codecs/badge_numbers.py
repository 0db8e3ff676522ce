"""The numbers printed on badges, and the Wiegand-26 bit string.

A card is identified by its raw bytes (see badge_frames.py); vendors print or type other
numbers derived from them, and installers register cards from those. Each form below is
named as readers and card sellers name it:

=========  ============================================================  ===================
form       what it is                                                    62E3086CED gives
=========  ============================================================  ===================
``hex``    every byte as two hex digits, leading zeros kept ("10H")      ``62E3086CED``
``8H10D``  the last 4 bytes in decimal, 10 zero-padded digits            ``3808980205``
``6H8D``   the last 3 bytes in decimal, 8 zero-padded digits             ``00552173``
``3+5``    3rd-from-last byte (3 digits), last 2 bytes (5 digits):       ``008,27885``
           the Wiegand-26 facility code and card number
``dec``    every byte as one big-endian decimal number, no padding       ``424715775213``
=========  ============================================================  ===================

A form that keeps fewer bytes than the card has cannot give them back: ``8H10D`` of an
EM4100 card loses its version byte, so a card registered from it matches only readers that
report the same 4 bytes.
"""

from __future__ import annotations

import re

from edge_agent.errors import CodecError

__all__ = ["FORMS", "parse_printed", "printed_forms", "typed_width", "w26_decode", "w26_encode"]

#: Printed forms, with the number of trailing card bytes each keeps (None: all of them).
FORMS: dict[str, int | None] = {"hex": None, "8H10D": 4, "6H8D": 3, "3+5": 3, "dec": None}

_DIGITS = {"8H10D": 10, "6H8D": 8}
_SEPARATORS = re.compile(r"[\s,.:-]")


def printed_forms(raw: bytes) -> dict[str, str]:
    """Every form ``raw`` can be printed in, by form name (forms needing more bytes left out)."""
    forms = {"hex": raw.hex().upper()}
    for form, digits in _DIGITS.items():
        kept = FORMS[form]
        if kept is not None and len(raw) >= kept:
            forms[form] = f"{int.from_bytes(raw[-kept:], 'big'):0{digits}d}"
    if len(raw) >= 3:
        forms["3+5"] = f"{raw[-3]:03d},{int.from_bytes(raw[-2:], 'big'):05d}"
    if raw:
        forms["dec"] = str(int.from_bytes(raw, "big"))
    return forms


def typed_width(form: str, length: int | None = None) -> int | None:
    """How many characters a reader types for a number in ``form`` (None: not fixed).

    A reader always types the full width, so a shorter number is a lost keystroke, not a
    card; people registering a card may leave out leading zeros, which parse_printed allows.
    """
    if form == "hex":
        return 2 * length if length is not None else None
    if form == "3+5":
        return 8
    return _DIGITS.get(form)


def parse_printed(text: str, form: str, *, length: int | None = None) -> bytes:
    """The card bytes a printed number stands for; CodecError saying what is wrong.

    ``length`` is the number of bytes expected: required for ``dec`` (a decimal number does
    not say how many leading zero bytes it had), checked against the others.
    """
    if form not in FORMS:
        raise CodecError(f"unknown number form '{form}'; use one of {', '.join(FORMS)}")
    if length is not None and length < 1:
        raise CodecError(f"a card has at least one byte, not {length}")
    cleaned = text.strip()
    if not cleaned:
        raise CodecError(f"empty {form} number")
    if form == "hex":
        raw = _parse_hex(cleaned)
    elif form == "3+5":
        raw = _parse_facility_card(cleaned)
    elif form == "dec":
        if length is None:
            raise CodecError("a dec number needs the card's byte length "
                             "(5 for EM4100, 4, 7 or 10 for a MIFARE UID)")
        raw = _to_bytes(_parse_decimal(cleaned, form), length, form)
    else:
        kept = FORMS[form]
        assert kept is not None
        raw = _to_bytes(_parse_decimal(cleaned, form, _DIGITS[form]), kept, form)
    if length is not None and len(raw) != length:
        kept = FORMS[form]
        why = (f"{form} keeps only the last {kept} bytes" if kept
               else f"'{text}' has {len(raw)} bytes")
        raise CodecError(f"expected a {length}-byte card number, but {why}")
    return raw


def _parse_hex(text: str) -> bytes:
    digits = _SEPARATORS.sub("", text)
    if not re.fullmatch(r"[0-9A-Fa-f]+", digits):
        raise CodecError(f"'{text}' is not hexadecimal (digits 0-9 and A-F)")
    if len(digits) % 2:
        raise CodecError(f"'{text}' has an odd number of hex digits; a leading zero is "
                         "probably missing (every byte is two digits: 0A, not A)")
    return bytes.fromhex(digits)


def _parse_decimal(text: str, form: str, max_digits: int | None = None) -> int:
    digits = _SEPARATORS.sub("", text)
    if not digits.isascii() or not digits.isdigit():
        raise CodecError(f"'{text}' is not a decimal {form} number")
    if max_digits is not None and len(digits) > max_digits:
        raise CodecError(f"'{text}' has {len(digits)} digits; a {form} number has at most "
                         f"{max_digits}")
    return int(digits)


def _to_bytes(value: int, length: int, form: str) -> bytes:
    if value >= 256**length:
        raise CodecError(f"{value} does not fit in {length} bytes, the size of a {form} number")
    return value.to_bytes(length, "big")


def _parse_facility_card(text: str) -> bytes:
    parts = [part for part in _SEPARATORS.split(text) if part]
    if len(parts) == 1 and parts[0].isdigit() and len(parts[0]) == 8:
        parts = [parts[0][:3], parts[0][3:]]
    if len(parts) != 2 or not all(part.isascii() and part.isdigit() for part in parts):
        raise CodecError(f"'{text}' is not a 3+5 number: facility code and card number, "
                         "e.g. 111,27706")
    facility, card = int(parts[0]), int(parts[1])
    if facility > 255 or card > 65535:
        raise CodecError(f"'{text}': the facility code is 0-255 and the card number 0-65535")
    return bytes([facility]) + card.to_bytes(2, "big")


def w26_encode(facility: int, card: int) -> str:
    """The 26 bits a Wiegand-26 reader sends, as a string of 0 and 1.

    Even parity over the first 12 data bits, then 8 facility bits and 16 card bits, then odd
    parity over the last 12 data bits.
    """
    if not 0 <= facility <= 255 or not 0 <= card <= 65535:
        raise CodecError(f"Wiegand-26 carries a facility code 0-255 and a card number "
                         f"0-65535, not {facility} and {card}")
    data = f"{facility:08b}{card:016b}"
    even = data[:12].count("1") % 2
    odd = 1 - data[12:].count("1") % 2
    return f"{even}{data}{odd}"


def w26_decode(bits: str) -> tuple[int, int]:
    """Facility code and card number of a Wiegand-26 bit string; CodecError on bad parity."""
    if len(bits) != 26 or set(bits) - {"0", "1"}:
        raise CodecError(f"a Wiegand-26 message is 26 characters 0 or 1, not '{bits}'")
    if w26_encode(int(bits[1:9], 2), int(bits[9:25], 2)) != bits:
        raise CodecError(f"Wiegand-26 parity error in {bits}: a bit was lost or added")
    return int(bits[1:9], 2), int(bits[9:25], 2)
