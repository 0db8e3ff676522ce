"""Channel payloads: a run of records, each a key then data of a length the key implies.

Pure, no I/O. Two vendor formats, one parser:

- Milesight: ``[channel_id][channel_type][data]``, little-endian data. The length of an
  unknown channel is unknown, so the rest of the payload cannot be read: an error.
- Elsys: ``[type][data]``, big-endian data. Elsys specifies that a decoder stops at a type it
  does not know; the values read so far are kept.

Every Milesight device sends the same ``0xFF`` attribute channels (versions, serial number,
power-on) when it joins; they are known to the format, so a profile need not repeat them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from edge_agent.codecs.lora_payload import (
    ByteOrder,
    DecodedValue,
    FieldCodec,
    PayloadDecoder,
    Plan,
    decode_fields,
)
from edge_agent.errors import CodecError

__all__ = ["MILESIGHT_ATTRIBUTES", "Channel", "ChannelFormat", "ChannelLayout"]


class ChannelFormat(enum.StrEnum):
    """The record framing of a channel payload."""

    MILESIGHT = "milesight"
    ELSYS = "elsys"

    @property
    def key_bytes(self) -> int:
        """Bytes before the data: channel id and type (Milesight), or type (Elsys)."""
        return 2 if self is ChannelFormat.MILESIGHT else 1

    @property
    def byte_order(self) -> ByteOrder:
        """Byte order of the data."""
        return ByteOrder.LITTLE if self is ChannelFormat.MILESIGHT else ByteOrder.BIG

    @property
    def stops_at_unknown(self) -> bool:
        """Whether an unknown key ends the payload quietly (Elsys) or is an error."""
        return self is ChannelFormat.ELSYS


#: Milesight device attributes (channel 0xFF): type → data length. From the vendors' payload
#: tables (reference lora-chirpstack-tic.md §2.2 B', the WS301 manual for the 6-byte SN).
MILESIGHT_ATTRIBUTES: dict[int, int] = {
    0x01: 1, 0x08: 6, 0x09: 2, 0x0A: 2, 0x0B: 1, 0x0F: 1, 0x16: 8, 0xFE: 1, 0xFF: 2,
}


@dataclass(frozen=True, slots=True)
class Channel:
    """One record kind: its key (``channel << 8 | type`` for Milesight), length and values."""

    key: int
    length: int
    fields: tuple[FieldCodec, ...] = ()


class ChannelLayout(PayloadDecoder):
    """A channel payload compiled to a table keyed by the record key."""

    __slots__ = ("_format", "_table")

    def __init__(self, channel_format: ChannelFormat, channels: Iterable[Channel]) -> None:
        self._format = channel_format
        table: dict[int, tuple[int, tuple[Plan, ...]]] = {}
        if channel_format is ChannelFormat.MILESIGHT:
            table.update({0xFF00 | kind: (length, ()) for kind, length in
                          MILESIGHT_ATTRIBUTES.items()})
        for channel in channels:
            if any(field.end > channel.length for field in channel.fields):
                raise CodecError(f"channel 0x{channel.key:X}: a value ends past its "
                                 f"{channel.length} bytes")
            table[channel.key] = (channel.length, tuple(f.plan for f in channel.fields))
        self._table = table

    def decode(self, data: bytes) -> list[DecodedValue]:
        """Every record's values, in payload order."""
        milesight = self._format is ChannelFormat.MILESIGHT
        table, size, index = self._table, len(data), 0
        out: list[DecodedValue] = []
        while index < size:
            if milesight:
                if index + 2 > size:
                    raise CodecError(f"payload truncated at byte {size}: channel 0x"
                                     f"{data[index]:02X} has no type")
                key = data[index] << 8 | data[index + 1]
                start = index + 2
            else:
                key = data[index]
                start = index + 1
            entry = table.get(key)
            if entry is None:
                if self._format.stops_at_unknown:
                    break
                raise CodecError(f"unknown channel 0x{key >> 8:02X} type 0x{key & 0xFF:02X} "
                                 f"at byte {index}")
            length, plans = entry
            end = start + length
            if end > size:
                raise CodecError(f"payload truncated at byte {size}: {self._describe(key)} at "
                                 f"byte {index} needs {length} bytes of data")
            if plans:
                decode_fields(plans, data, start, out)
            index = end
        return out

    def _describe(self, key: int) -> str:
        if self._format is ChannelFormat.MILESIGHT:
            return f"channel 0x{key >> 8:02X} type 0x{key & 0xFF:02X}"
        return f"type 0x{key:02X}"
