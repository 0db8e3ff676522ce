"""A USB keyboard-wedge reader, read from its Linux input device and grabbed exclusively.

The reader types the card number and Enter; grabbing the device keeps those keystrokes from
a console or a desktop session. python-evdev is an optional extra, imported only here.
"""

from __future__ import annotations

import contextlib
import importlib
from types import ModuleType
from typing import Any

from edge_agent.codecs.badge_frames import WedgeDecoder
from edge_agent.drivers.readers.reader import BadgeReader, ReaderSettings
from edge_agent.drivers.serial_port import explain_open_error
from edge_agent.errors import ConfigError, TransportError

__all__ = ["WedgeReader", "import_evdev"]

_EV_KEY = 1
_KEY_DOWN = 1


def import_evdev() -> ModuleType:
    """python-evdev, or ConfigError with the command that installs it."""
    try:
        return importlib.import_module("evdev")
    except ImportError as exc:
        raise ConfigError("a keyboard-wedge reader needs python-evdev: "
                          "pip install 'ponton[wedge]'") from exc


class InputPort:
    """An input device grabbed for this process, read as key-down codes, one per byte."""

    def __init__(self, evdev: ModuleType, settings: ReaderSettings) -> None:
        self._name = settings.name
        self._path = settings.port
        try:
            self._device: Any = evdev.InputDevice(settings.port)
        except OSError as exc:
            raise TransportError(explain_open_error(
                settings.port, exc, where_to_look="ls /dev/input/by-id/", group="input"),
                device=self._name) from exc
        try:
            self._device.grab()
        except OSError as exc:
            self._device.close()
            raise TransportError(f"{settings.port} is grabbed by another program (is "
                                 "`edge-agent run` using it? stop it first)",
                                 device=self._name) from exc

    def fileno(self) -> int:
        """The device's descriptor."""
        return int(self._device.fd)

    def read_available(self) -> bytes:
        """Key-down codes that arrived (codes above 255 become 0, which no number uses)."""
        try:
            events = list(self._device.read())
        except BlockingIOError:
            return b""
        except OSError as exc:
            raise TransportError(f"{self._path} was lost ({exc})", device=self._name) from exc
        return bytes(event.code if event.code < 256 else 0 for event in events
                     if event.type == _EV_KEY and event.value == _KEY_DOWN)

    def write(self, data: bytes) -> None:
        """A keyboard takes nothing."""
        raise TransportError(f"{self._path} is an input device; nothing is sent to it",
                             device=self._name)

    def close(self) -> None:
        """Release the grab and close the device; safe to call twice."""
        with contextlib.suppress(OSError):  # gone with the device, or released already
            self._device.ungrab()
        self._device.close()


class WedgeReader(BadgeReader):
    """Numbers typed by a keyboard wedge, in the profile's number format."""

    #: Wedges type a key every few milliseconds; a number unfinished after this is dropped.
    idle_s = 1.0

    def __init__(self, settings: ReaderSettings) -> None:
        spec = settings.profile.reader
        assert spec.number_format is not None  # the profile model requires it for a wedge
        super().__init__(settings, WedgeDecoder(spec.number_format, spec.technology,
                                                length=spec.card_bytes))
        self._evdev = import_evdev()

    def open_port(self) -> InputPort:
        """Open and grab the input device."""
        return InputPort(self._evdev, self.settings)
