"""Readers on a serial line: the port (pyserial errors stop here) and the talk-only readers.

An RDM6300 or an EM-18 only transmits: the driver opens the port and decodes what arrives.
"""

from __future__ import annotations

import errno
import termios

import serial

from edge_agent.codecs.badge_frames import Em18Decoder, FrameDecoder, Rdm6300Decoder
from edge_agent.drivers.readers.reader import BadgeReader, ReaderSettings
from edge_agent.errors import ConfigError, TransportError
from edge_agent.profiles.readers import ReaderProtocol

__all__ = ["SerialPort", "StreamReader", "explain_open_error"]


def explain_open_error(port: str, exc: BaseException, *, where_to_look: str, group: str) -> str:
    """Why ``port`` did not open, in words an installer acts on."""
    reason = str(exc)
    code = getattr(exc, "errno", None)
    if "exclusively lock" in reason or code in (errno.EBUSY, errno.EAGAIN):
        return (f"{port} is in use by another program (is `edge-agent run` using it? "
                "stop it first)")
    if code == errno.ENOENT or "No such file" in reason:
        return f"{port} does not exist: is the reader plugged in? ({where_to_look})"
    if code == errno.EACCES or "Permission denied" in reason:
        return f"permission denied on {port}: add this user to the {group} group"
    return f"cannot open {port}: {reason}"


class SerialPort:
    """A non-blocking pyserial port; every pyserial or OS error leaves as TransportError."""

    def __init__(self, settings: ReaderSettings) -> None:
        self._name = settings.name
        self._target = settings.port
        line = settings.profile.serial
        try:
            self._port = serial.serial_for_url(
                settings.port, baudrate=line.baudrate, parity=line.parity,
                stopbits=line.stopbits, timeout=0, write_timeout=1, exclusive=True)
        except (OSError, ValueError, termios.error) as exc:
            raise TransportError(explain_open_error(
                settings.port, exc, where_to_look="ls /dev/ttyUSB* /dev/serial/by-id/",
                group="dialout"), device=self._name) from exc
        try:
            self._fd = int(self._port.fileno())
        except (AttributeError, OSError, NotImplementedError) as exc:
            self._port.close()
            raise ConfigError(f"{settings.port} has no descriptor to watch; give a device "
                              "path or a socket:// URL") from exc

    def fileno(self) -> int:
        """The port's descriptor."""
        return self._fd

    def read_available(self) -> bytes:
        """What the port holds now."""
        try:
            return bytes(self._port.read(4096))
        except (OSError, termios.error) as exc:
            raise TransportError(f"{self._target} was lost ({exc})", device=self._name) from exc

    def write(self, data: bytes) -> None:
        """Send ``data``."""
        try:
            self._port.write(data)
        except (OSError, termios.error) as exc:
            raise TransportError(f"{self._target} was lost ({exc})", device=self._name) from exc

    def close(self) -> None:
        """Close the port; safe to call twice."""
        self._port.close()


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
        return SerialPort(self.settings)
