"""A serial port read from the event loop: pyserial and OS errors stop here.

Shared by the talk-only lines (badge readers, the Linky TIC): the port is opened
non-blocking and exclusive, its descriptor is watched with ``loop.add_reader``, and every
failure leaves as TransportError (ConfigError for a URL with nothing to watch).
"""

from __future__ import annotations

import errno
import termios

import serial

from edge_agent.errors import ConfigError, TransportError

__all__ = ["SerialPort", "explain_open_error"]

_WHERE_TO_LOOK = "ls /dev/ttyUSB* /dev/serial/by-id/"


def explain_open_error(port: str, exc: BaseException, *, where_to_look: str, group: str,
                       what: str = "reader") -> str:
    """Why ``port`` did not open, in words an installer acts on."""
    reason = str(exc)
    code = getattr(exc, "errno", None)
    if "exclusively lock" in reason or code in (errno.EBUSY, errno.EAGAIN):
        return (f"{port} is in use by another program (is `edge-agent run` using it? "
                "stop it first)")
    if code == errno.ENOENT or "No such file" in reason:
        return f"{port} does not exist: is the {what} plugged in? ({where_to_look})"
    if code == errno.EACCES or "Permission denied" in reason:
        return f"permission denied on {port}: add this user to the {group} group"
    return f"cannot open {port}: {reason}"


class SerialPort:
    """A non-blocking pyserial port; every pyserial or OS error leaves as TransportError.

    ``name`` is the configured device the errors name; ``what`` the kind of device an
    installer should check is plugged in.
    """

    def __init__(self, name: str, port: str, *, baudrate: int, parity: str = "N",
                 stopbits: float = 1, bytesize: int = 8, what: str = "reader") -> None:
        self._name = name
        self._target = port
        try:
            self._port = serial.serial_for_url(
                port, baudrate=baudrate, bytesize=bytesize, parity=parity, stopbits=stopbits,
                timeout=0, write_timeout=1, exclusive=True)
        except (OSError, ValueError, termios.error) as exc:
            raise TransportError(explain_open_error(
                port, exc, where_to_look=_WHERE_TO_LOOK, group="dialout", what=what),
                device=name) from exc
        try:
            self._fd = int(self._port.fileno())
        except (AttributeError, OSError, NotImplementedError) as exc:
            self._port.close()
            raise ConfigError(f"{port} has no descriptor to watch; give a device "
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
