"""The models of a badge reader profile: which protocol a reader speaks, and how."""

from __future__ import annotations

import enum
from typing import Annotated, Literal

from msgspec import Meta

from edge_agent.codecs.badge_frames import Technology
from edge_agent.codecs.badge_numbers import FORMS
from edge_agent.profiles.models import SerialDefaults
from edge_agent.schema import Strict

__all__ = ["READER_CATEGORY", "ReaderProfile", "ReaderProtocol", "ReaderSpec"]

#: The ``category`` that makes a profile a badge reader rather than a Modbus device.
READER_CATEGORY = "badge_reader"


class ReaderProtocol(enum.StrEnum):
    """How a reader hands over a card; each has one decoder in codecs/badge_frames.py."""

    RDM6300 = "rdm6300"
    EM18 = "em18"
    PN532 = "pn532"
    KEYBOARD_WEDGE = "keyboard_wedge"


#: The technology each serial protocol reads; a keyboard wedge may read either.
_TECHNOLOGY = {
    ReaderProtocol.RDM6300: Technology.EM4100,
    ReaderProtocol.EM18: Technology.EM4100,
    ReaderProtocol.PN532: Technology.ISO14443A,
}


#: PN532 polling when the profile does not set it: a look for a card, and the chip's answer.
_POLL_INTERVAL_MS = 150
_RESPONSE_TIMEOUT_MS = 100


class ReaderSpec(Strict, frozen=True, kw_only=True):
    """The reader's protocol, the cards it reads, and the settings of its protocol.

    Settings of one protocol are left unset (None) by the others, so a profile that gives
    one to the wrong protocol is caught.
    """

    protocol: ReaderProtocol
    technology: Technology
    poll_interval_ms: Annotated[float, Meta(
        ge=20, le=5000, description="PN532: time between two looks for a card (150).")
    ] | None = None
    response_timeout_ms: Annotated[float, Meta(
        ge=10, le=2000, description="PN532: how long to wait for the chip's acknowledgement, "
        "then its answer (100).")] | None = None
    number_format: Annotated[str, Meta(
        description="Keyboard wedge: the printed form it types (8H10D, hex ...).")] | None = None
    card_bytes: Annotated[int, Meta(
        ge=1, le=10,
        description="Keyboard wedge: card length in bytes, required for the dec form.")
    ] | None = None

    @property
    def poll_interval_s(self) -> float:
        """PN532: seconds between two looks for a card."""
        return (self.poll_interval_ms or _POLL_INTERVAL_MS) / 1000

    @property
    def response_timeout_s(self) -> float:
        """PN532: seconds to wait for the chip's acknowledgement, then its answer."""
        return (self.response_timeout_ms or _RESPONSE_TIMEOUT_MS) / 1000

    def __post_init__(self) -> None:
        wedge = self.protocol is ReaderProtocol.KEYBOARD_WEDGE
        expected = _TECHNOLOGY.get(self.protocol)
        if expected is not None and self.technology is not expected:
            raise ValueError(f"a {self.protocol} reader reads {expected} cards, "
                             f"not {self.technology}")
        if not wedge and (self.number_format, self.card_bytes) != (None, None):
            raise ValueError("number_format and card_bytes are for keyboard_wedge readers")
        if self.protocol is not ReaderProtocol.PN532 and (
                (self.poll_interval_ms, self.response_timeout_ms) != (None, None)):
            raise ValueError("poll_interval_ms and response_timeout_ms are for pn532 readers")
        if wedge and self.number_format not in FORMS:
            raise ValueError(f"a keyboard_wedge needs number_format, one of {', '.join(FORMS)}"
                             + (f", not '{self.number_format}'" if self.number_format else ""))
        if self.number_format == "dec" and self.card_bytes is None:
            raise ValueError("number_format dec needs card_bytes (5 for EM4100, 4, 7 or 10 "
                             "for a MIFARE UID)")


class ReaderProfile(Strict, frozen=True, kw_only=True):
    """A badge reader model: identity, serial line settings and protocol."""

    id: Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9-]*$")]
    manufacturer: str
    model: str
    category: Literal["badge_reader"]
    description: str = ""
    serial: Annotated[SerialDefaults, Meta(
        description="Line settings; not used by a keyboard wedge.")] | None = None
    reader: ReaderSpec

    @property
    def line(self) -> SerialDefaults:
        """The serial line's settings: the profile's, or the factory defaults."""
        return self.serial or SerialDefaults()

    def __post_init__(self) -> None:
        if self.reader.protocol is ReaderProtocol.KEYBOARD_WEDGE and self.serial is not None:
            raise ValueError("a keyboard wedge is an input device, not a serial line; "
                             "remove serial")
