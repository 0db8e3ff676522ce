"""The agent's one exception tree.

Third-party exceptions (pymodbus, pyserial, sqlite3, msgspec) are translated into these at
the layer that owns the I/O, so callers and the CLI only ever catch ``EdgeError``::

    EdgeError
    ├── ConfigError                 a gateway TOML file is wrong
    ├── ProfileError                a device profile is wrong or unknown
    ├── CodecError                  bytes or registers that cannot be decoded
    │   └── TooLarge                a body that inflates beyond its limit (compression bomb)
    ├── DeviceError                 a field device misbehaved (carries device and bus)
    │   ├── DeviceTimeout           no answer within the timeout
    │   ├── DeviceException         a Modbus exception response (carries the code)
    │   ├── FrameError              a garbled or CRC-failed frame
    │   └── TransportError          the port or connection itself failed
    ├── StoreError                  the outbox cannot be opened or written
    │   └── StoreCorrupt            the database file failed its integrity check
    ├── BundleError                 a signed bundle is tampered, expired, rolled back or foreign
    ├── PolicyError                 an access policy's content is malformed (the gateway denies)
    ├── ControlError                the running agent refused or did not answer a command
    └── SyncError                   the hub could not take or give what was asked
        ├── HubUnreachable          no answer: network down, DNS, timeout, connection cut
        ├── HubUntrusted            TLS refused: the hub's certificate, or the hub ours
        ├── HubRejected             the hub answered with an error (carries status and code)
        └── HubAnswerTooLarge       an answer beyond its size limit (raw or inflated), dropped
"""

from __future__ import annotations

__all__ = [
    "BundleError",
    "CodecError",
    "ConfigError",
    "ControlError",
    "DeviceError",
    "DeviceException",
    "DeviceTimeout",
    "EdgeError",
    "FrameError",
    "HubAnswerTooLarge",
    "HubRejected",
    "HubUnreachable",
    "HubUntrusted",
    "PolicyError",
    "ProfileError",
    "StoreCorrupt",
    "StoreError",
    "SyncError",
    "TooLarge",
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


class TooLarge(CodecError):
    """A compressed body would inflate beyond the allowed size; refused before it fills memory."""


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


class BundleError(EdgeError):
    """A signed bundle was refused: bad signature, expired, older version, other territory."""


class PolicyError(EdgeError):
    """An access policy does not parse or contradicts itself; every decision is then a deny."""


class ControlError(EdgeError):
    """A command for the running agent (``gate open``) was refused or got no answer."""


class SyncError(EdgeError):
    """An exchange with the hub failed; the records stay in the outbox."""


class HubUnreachable(SyncError):
    """The hub did not answer: network down, name not resolved, timeout or connection cut."""


class HubUntrusted(SyncError):
    """The TLS handshake failed on a certificate: the hub's did not verify, or the hub refused
    the gateway's. Not a network fault: it lasts until an installer fixes a CA bundle or a
    certificate, so it is told apart from HubUnreachable and reported as such.
    """


class HubRejected(SyncError):
    """The hub answered with an error status.

    ``status`` is the HTTP status and ``code`` the hub's stable error code (``seq_conflict``,
    ``invalid_token`` …), so callers decide on codes, never on message text.
    """

    def __init__(self, message: str, *, status: int, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class HubAnswerTooLarge(SyncError):
    """The hub's answer exceeded the limit of its kind, raw or once inflated; it was dropped.

    A hub never sends that much: this is a broken or hostile hub (or one in between), and the
    gateway must not let it fill its memory.
    """


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
