"""Badge readers: RDM6300, EM-18 and PN532 on serial lines, keyboard wedges on input devices."""

from edge_agent.drivers.readers.factory import open_reader
from edge_agent.drivers.readers.reader import (
    BadgePresented,
    BadgeReader,
    ReaderHealth,
    ReaderSettings,
)

__all__ = ["BadgePresented", "BadgeReader", "ReaderHealth", "ReaderSettings", "open_reader"]
