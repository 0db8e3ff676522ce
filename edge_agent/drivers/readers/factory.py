"""One reader class per protocol."""

from __future__ import annotations

from edge_agent.drivers.readers.pn532 import Pn532Reader
from edge_agent.drivers.readers.reader import BadgeReader, ReaderSettings
from edge_agent.drivers.readers.serial_line import StreamReader
from edge_agent.drivers.readers.wedge import WedgeReader
from edge_agent.profiles.readers import ReaderProtocol

__all__ = ["open_reader"]


def open_reader(settings: ReaderSettings) -> BadgeReader:
    """The reader for ``settings``' protocol; its port is opened by :meth:`BadgeReader.run`.

    ConfigError when the protocol needs a missing extra (evdev for a keyboard wedge).
    """
    protocol = settings.profile.reader.protocol
    if protocol is ReaderProtocol.PN532:
        return Pn532Reader(settings)
    if protocol is ReaderProtocol.KEYBOARD_WEDGE:
        return WedgeReader(settings)
    return StreamReader(settings)
