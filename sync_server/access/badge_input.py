"""A badge as an operator types it, checked and turned into what the hub stores. Pure.

The card number becomes the territory's pseudonym at once and is dropped: the hub stores,
publishes and reports only pseudonyms (docs/access-hub.md). Dates are ISO 8601; without an
offset they are read in the territory's time zone, and a date alone means the whole day
(``valid_until`` 2026-12-31 admits until midnight at the end of that day).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from edge_agent.codecs.badge_numbers import FORMS, parse_printed
from edge_agent.codecs.pseudonyms import pseudonym
from edge_agent.errors import CodecError
from sync_server.errors import InvalidField

__all__ = ["MAX_LABEL", "BadgeFields", "BadgeText", "card_bytes", "resolve_badge"]

MAX_LABEL = 128
_TRUE = frozenset({"true", "yes", "1", "y", "oui"})
_FALSE = frozenset({"", "false", "no", "0", "n", "non"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_FORMS = {name.lower(): name for name in FORMS}
_MAX_CARD_BYTES = 16


@dataclass(frozen=True, slots=True)
class BadgeText:
    """One badge as typed (a CSV line, CLI options, an API body): every field still text."""

    number: str
    category: str
    form: str = "hex"
    valid_from: str = ""
    valid_until: str = ""
    master: str = ""
    label: str = ""
    #: The card's byte count, for printed forms that do not say it (``dec``).
    length: str = ""


@dataclass(frozen=True, slots=True)
class BadgeFields:
    """A badge as the registry stores it: a pseudonym, never the number."""

    pseudonym: bytes
    category: str
    valid_from_s: int | None
    valid_until_s: int | None
    master: bool
    label: str | None


def card_bytes(number: str, form: str, length: str = "") -> bytes:
    """The card's identifier from its printed ``number``; InvalidField says what is wrong.

    ``form`` is one of edge_agent.codecs.badge_numbers' forms (case does not matter, hex
    when empty); ``length`` is the card's byte count, needed for ``dec`` only.
    """
    name = _FORMS.get((form.strip() or "hex").lower())
    if name is None:
        raise InvalidField("form", f"unknown number form {form!r}; use one of "
                                   f"{', '.join(FORMS)}")
    size = None
    if length.strip():
        if not length.strip().isdigit() or not 1 <= int(length) <= _MAX_CARD_BYTES:
            raise InvalidField("length", f"a card has 1 to {_MAX_CARD_BYTES} bytes, "
                                         f"not {length!r}")
        size = int(length)
    try:
        raw = parse_printed(number, name, length=size)
    except CodecError as exc:
        raise InvalidField("number", str(exc)) from None
    if len(raw) > _MAX_CARD_BYTES:
        raise InvalidField("number", f"a card number has at most {_MAX_CARD_BYTES} bytes")
    return raw


def resolve_badge(
    text: BadgeText, *, key: bytes, categories: tuple[str, ...], timezone: ZoneInfo
) -> BadgeFields:
    """The stored form of ``text`` for a territory with ``key``, ``categories`` and time zone."""
    raw = card_bytes(text.number, text.form, text.length)
    category = text.category.strip()
    if category not in categories:
        known = ", ".join(categories) or "none yet"
        raise InvalidField("category", f"{category!r} is not a category of the policy rules "
                                       f"(known: {known})")
    valid_from = _instant("valid_from", text.valid_from, timezone, end_of_day=False)
    valid_until = _instant("valid_until", text.valid_until, timezone, end_of_day=True)
    if valid_from is not None and valid_until is not None and valid_until <= valid_from:
        raise InvalidField("valid_until", "must be after valid_from")
    return BadgeFields(pseudonym(key, raw), category, valid_from, valid_until,
                       _flag(text.master), _label(text.label))


def _instant(field: str, text: str, timezone: ZoneInfo, *, end_of_day: bool) -> int | None:
    """UTC seconds of an ISO 8601 date or date-time; None for an empty field."""
    text = text.strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidField(field, f"{text!r} is not an ISO 8601 date (2026-12-31) or date-time "
                                  "(2026-12-31T18:00, 2026-12-31T17:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone)
    if not 1970 <= moment.year <= 2105:  # what the policy's 32-bit seconds can hold
        raise InvalidField(field, f"{text!r} is outside 1970-2105")
    if end_of_day and _is_date(text):  # a date alone: valid to the end of that day
        moment = datetime.combine(moment.date() + timedelta(days=1), time(), timezone)
    return max(1, int(moment.timestamp()))


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _flag(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidField("master", f"{text!r} is not true or false (yes/no, 1/0 also work)")


def _label(text: str) -> str | None:
    label = text.strip()
    if len(label) > MAX_LABEL:
        raise InvalidField("label", f"at most {MAX_LABEL} characters, got {len(label)}")
    if _CONTROL.search(label):
        raise InvalidField("label", "holds control characters")
    return label or None
