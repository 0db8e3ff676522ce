"""Readers on a serial line: the talk-only readers, and a reader's port opened as its profile says.

An RDM6300 or an EM-18 only transmits: the driver opens the port and decodes what arrives.
"""

from __future__ import annotations

from edge_agent.codecs.badge_frames import Em18Decoder, FrameDecoder, Rdm6300Decoder
from edge_agent.drivers.readers.reader import BadgeReader, ReaderSettings
from edge_agent.drivers.serial_port import SerialPort
from edge_agent.profiles.readers import ReaderProtocol

__all__ = ["StreamReader", "open_serial"]


def open_serial(settings: ReaderSettings) -> SerialPort:
    """The reader's serial line, with its profile's settings."""
    line = settings.profile.line
    return SerialPort(settings.name, settings.port, baudrate=line.baudrate,
                      parity=line.parity, stopbits=line.stopbits)


_DECODERS: dict[ReaderProtocol, type[FrameDecoder]] = {
    ReaderProtocol.RDM6300: Rdm6300Decoder,
    ReaderProtocol.EM18: Em18Decoder,
}


class StreamReader(BadgeReader):
    """A reader that sends a frame per card read (RDM6300, EM-18), repeated while held."""

    def __init__(self, settings: ReaderSettings) -> None:
        super().__init__(settings, _DECODERS[settings.profile.reader.protocol]())

    def open_port(self) -> SerialPort:
        """Open the serial line."""
        return open_serial(self.settings)
