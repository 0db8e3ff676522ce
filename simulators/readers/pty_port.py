"""A pseudo-terminal standing in for a reader's serial line.

The simulated reader writes the master end; the agent opens :attr:`PtyPort.path`. The slave
end stays open here too, so the agent may close and reopen its port without the master
seeing a hang-up, and it is in raw mode so no byte is translated or echoed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import termios
import tty
from collections.abc import Callable

__all__ = ["PtyDevice", "PtyPort"]

_SPEEDS = {getattr(termios, f"B{rate}"): rate for rate in (
    1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)}


class PtyPort:
    """One pty pair; opened once, closed once (closing hangs up the agent's side)."""

    def __init__(self) -> None:
        self._master = -1
        self._slave = -1
        self._loop: asyncio.AbstractEventLoop | None = None
        self.path = ""

    def open(self) -> None:
        """Create the pty; :attr:`path` is then the tty to give the agent."""
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)

    def baudrate(self) -> int | None:
        """The speed the agent set on its end (a pty carries any; a simulated device uses
        this to garble what a real UART would at a wrong speed). None when unknown."""
        if self._slave < 0:
            return None
        speed = termios.tcgetattr(self._slave)[5]
        return _SPEEDS.get(speed)

    def write(self, data: bytes) -> None:
        """Send ``data`` to the agent; lost when nobody reads and the pty buffer is full."""
        with contextlib.suppress(BlockingIOError, InterruptedError):
            os.write(self._master, data)

    def watch(self, on_data: Callable[[bytes], None]) -> None:
        """Call ``on_data`` with what the agent sends, from the running event loop."""
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._master, self._readable, on_data)

    def _readable(self, on_data: Callable[[bytes], None]) -> None:
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return  # EIO while the agent has the port closed: nothing was sent
        if data:
            on_data(data)

    def close(self) -> None:
        """Close both ends: the agent's open port sees a hang-up, as when a cable is pulled."""
        if self._loop is not None:
            self._loop.remove_reader(self._master)
            self._loop = None
        for fd in (self._master, self._slave):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = -1


class PtyDevice:
    """A simulated device behind a pty: the agent opens :attr:`path`."""

    def __init__(self) -> None:
        self.port = PtyPort()

    @property
    def path(self) -> str:
        """The tty the agent opens."""
        return self.port.path

    def open(self) -> None:
        """Create the pty."""
        self.port.open()

    def close(self) -> None:
        """Close the pty (the agent sees its port vanish)."""
        self.port.close()
