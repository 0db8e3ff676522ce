"""Pydantic models of a badge reader profile: which protocol a reader speaks, and how."""

from __future__ import annotations

import enum
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge_agent.codecs.badge_frames import Technology
from edge_agent.codecs.badge_numbers import FORMS
from edge_agent.profiles.models import SerialDefaults

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


class ReaderSpec(BaseModel):
    """The reader's protocol, the cards it reads, and the settings of its protocol."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    protocol: ReaderProtocol
    technology: Technology
    poll_interval_ms: float = Field(
        default=150, ge=20, le=5000,
        description="PN532: time between two looks for a card.")
    response_timeout_ms: float = Field(
        default=100, ge=10, le=2000,
        description="PN532: how long to wait for the chip's acknowledgement, then its answer.")
    number_format: str | None = Field(
        default=None, description="Keyboard wedge: the printed form it types (8H10D, hex ...).")
    card_bytes: int | None = Field(
        default=None, ge=1, le=10,
        description="Keyboard wedge: card length in bytes, required for the dec form.")

    @model_validator(mode="after")
    def _check(self) -> Self:
        wedge = self.protocol is ReaderProtocol.KEYBOARD_WEDGE
        expected = _TECHNOLOGY.get(self.protocol)
        if expected is not None and self.technology is not expected:
            raise ValueError(f"a {self.protocol} reader reads {expected} cards, "
                             f"not {self.technology}")
        if not wedge and {"number_format", "card_bytes"} & self.model_fields_set:
            raise ValueError("number_format and card_bytes are for keyboard_wedge readers")
        if self.protocol is not ReaderProtocol.PN532 and (
                {"poll_interval_ms", "response_timeout_ms"} & self.model_fields_set):
            raise ValueError("poll_interval_ms and response_timeout_ms are for pn532 readers")
        if wedge and self.number_format not in FORMS:
            raise ValueError(f"a keyboard_wedge needs number_format, one of {', '.join(FORMS)}"
                             + (f", not '{self.number_format}'" if self.number_format else ""))
        if self.number_format == "dec" and self.card_bytes is None:
            raise ValueError("number_format dec needs card_bytes (5 for EM4100, 4, 7 or 10 "
                             "for a MIFARE UID)")
        return self


class ReaderProfile(BaseModel):
    """A badge reader model: identity, serial line settings and protocol."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    manufacturer: str
    model: str
    category: Literal["badge_reader"]
    description: str = ""
    serial: SerialDefaults = Field(
        default=SerialDefaults(), description="Line settings; not used by a keyboard wedge.")
    reader: ReaderSpec

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.reader.protocol is ReaderProtocol.KEYBOARD_WEDGE and (
                "serial" in self.model_fields_set):
            raise ValueError("a keyboard wedge is an input device, not a serial line; "
                             "remove serial")
        return self
