"""The agent's one exception tree.

Third-party exceptions (pymodbus, pyserial, sqlite3, pydantic) are translated into these at
the layer that owns the I/O, so callers and the CLI only ever catch ``EdgeError``::

    EdgeError
    ├── ConfigError                 a gateway TOML file is wrong
    ├── ProfileError                a device profile is wrong or unknown
    ├── CodecError                  bytes or registers that cannot be decoded
    ├── DeviceError                 a field device misbehaved (carries device and bus)
    │   ├── DeviceTimeout           no answer within the timeout
    │   ├── DeviceException         a Modbus exception response (carries the code)
    │   ├── FrameError              a garbled or CRC-failed frame
    │   └── TransportError          the port or connection itself failed
    └── StoreError                  the outbox cannot be opened or written
        └── StoreCorrupt            the database file failed its integrity check
"""

from __future__ import annotations

__all__ = [
    "CodecError",
    "ConfigError",
    "DeviceError",
    "DeviceException",
    "DeviceTimeout",
    "EdgeError",
    "FrameError",
    "ProfileError",
    "StoreCorrupt",
    "StoreError",
    "TransportError",
    "first_edge_error",
]


class EdgeError(Exception):
    """Root of every error the agent raises on purpose."""


class ConfigError(EdgeError):
    """A gateway configuration file is invalid; the message names the file and the field."""


class ProfileError(EdgeError):
    """A device profile is invalid or missing; the message names the file and the field."""


class CodecError(EdgeError):
    """Registers or bytes that do not decode to the declared value type."""


class DeviceError(EdgeError):
    """A field device did not answer as expected.

    ``device`` is the configured device name (or ``unit N`` for ad-hoc reads) and ``bus``
    the bus it sits on, so a log line always says where to look.
    """

    def __init__(self, message: str, *, device: str = "", bus: str = "") -> None:
        super().__init__(message)
        self.device = device
        self.bus = bus

    @property
    def reason(self) -> str:
        """What went wrong, without the device and bus (for tables that show those already)."""
        return super().__str__()

    def __str__(self) -> str:
        where = " on ".join(part for part in (self.device, self.bus) if part)
        return f"{where}: {self.reason}" if where else self.reason


class DeviceTimeout(DeviceError):
    """No answer within the timeout: device off, wrong unit id, wrong baud rate or wiring."""


class DeviceException(DeviceError):
    """The device answered with a Modbus exception response."""

    def __init__(self, message: str, *, code: int, device: str = "", bus: str = "") -> None:
        super().__init__(message, device=device, bus=bus)
        self.code = code


class FrameError(DeviceError):
    """A reply arrived but was garbled (bad CRC, wrong length, wrong unit id)."""


class TransportError(DeviceError):
    """The serial port or TCP connection could not be opened or was lost."""


class StoreError(EdgeError):
    """The outbox could not be opened, migrated or written."""


class StoreCorrupt(StoreError):
    """The outbox file failed SQLite's integrity check."""


def first_edge_error(group: BaseExceptionGroup[BaseException]) -> EdgeError | None:
    """The first EdgeError inside a (nested) exception group from a task group, if any."""
    for exc in group.exceptions:
        if isinstance(exc, EdgeError):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            found = first_edge_error(exc)
            if found is not None:
                return found
    return None
