"""A simulated RS-485 segment: two pseudo-terminal pairs joined by a byte pump.

The Modbus server opens one slave end (:attr:`PtyBridge.server_path`), the client the other
(:attr:`PtyBridge.client_path`); the bridge copies bytes between the two master ends from the
event loop. Both slave ends stay open in the bridge too, so a client may close and reopen its
port (as agents do on errors) without the master side seeing a hang-up, and both are in raw
mode so no byte is translated or echoed before a program configures the port.

With ``line_timing`` each chunk reaches the other side only when its last bit would have left
the wire at the line's baud rate and format, on one half-duplex line. A request reaches the
server a t3.5 gap later still, because an RTU slave finds the end of a frame by that silence;
a reply reaches the client as its bytes arrive, and the client must itself keep t3.5 of
silence before its next request: a frame started sooner is delayed to a silent line and
counted in :attr:`PtyBridge.gap_violations` (on a real line it would collide). So a request and
its reply cost what they would on a real bus, and a client that rushes is caught. asyncio
timers wake up to a millisecond late (epoll's resolution), which at 9600 baud would add 5 %
to every transaction: the bridge wakes slightly early and yields to the loop until the exact
time instead. Without ``line_timing`` bytes pass straight through. With ``echo`` the client
also reads back every byte it sends, as through an adapter without direction control.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty

from simulators.modbus.timing import LineSettings

__all__ = ["PtyBridge"]

_CHUNK = 4096
#: How early a delivery timer fires, to absorb the event loop's timer resolution.
_TIMER_SLACK = 0.0012


class PtyBridge:
    """Two pty pairs, one for the server and one for the client, pumped by the event loop.

    A bridge is opened once and closed once.
    """

    def __init__(self, line: LineSettings, *, line_timing: bool = False, echo: bool = False
                 ) -> None:
        self.line = line
        self.line_timing = line_timing
        self.echo = echo
        self._fds: list[int] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._masters: tuple[int, int] | None = None
        self._closed = False
        self._server_path = ""
        self._client_path = ""
        # The wire: when the last bit of the latest chunk leaves it, and which way it went.
        self._wire_end = float("-inf")
        self._last_source = -1
        #: Frames the client started before the line had been silent for t3.5.
        self.gap_violations = 0

    @property
    def server_path(self) -> str:
        """The tty the Modbus server opens."""
        return self._server_path

    @property
    def client_path(self) -> str:
        """The tty a client (the agent, a test) opens, e.g. ``/dev/pts/7``."""
        return self._client_path

    def open(self) -> None:
        """Create the ptys and start pumping; call from the event loop that will run it."""
        if self._loop is not None or self._closed:
            raise RuntimeError("a bridge is opened once")
        loop = asyncio.get_running_loop()
        try:
            server_master, server_slave = os.openpty()
            self._fds += [server_master, server_slave]
            client_master, client_slave = os.openpty()
            self._fds += [client_master, client_slave]
            for slave in (server_slave, client_slave):
                tty.setraw(slave)
            for master in (server_master, client_master):
                os.set_blocking(master, False)
            self._server_path = os.ttyname(server_slave)
            self._client_path = os.ttyname(client_slave)
        except OSError:
            self._close_fds()
            raise
        self._loop = loop
        self._masters = (server_master, client_master)
        loop.add_reader(client_master, self._pump, client_master, server_master)
        loop.add_reader(server_master, self._pump, server_master, client_master)

    def close(self) -> None:
        """Stop pumping and close every pty end; bytes still in flight are lost."""
        self._closed = True
        if self._loop is not None and self._masters is not None:
            for master in self._masters:
                self._loop.remove_reader(master)
        self._masters = None
        self._close_fds()

    def _close_fds(self) -> None:
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = []

    def _pump(self, source: int, sink: int) -> None:
        try:
            data = os.read(source, _CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return  # a pty error (EIO) loses this chunk, as line noise would; keep pumping
        if not data:
            return
        if self.echo and self._masters is not None and source == self._masters[1]:
            _send(source, data)
        if not self.line_timing or self._loop is None:
            _send(sink, data)
            return
        now = self._loop.time()
        gap = self.line.frame_gap
        to_server = self._masters is not None and sink == self._masters[0]
        if source == self._last_source and now < self._wire_end + gap:
            start = max(now, self._wire_end)  # the rest of the frame on the wire
        else:
            if to_server and now < self._wire_end + gap:
                self.gap_violations += 1
            start = max(now, self._wire_end + gap)  # a new frame waits for a silent line
        self._last_source = source
        self._wire_end = start + len(data) * self.line.char_time
        when = self._wire_end + (gap if to_server else 0.0)
        self._loop.call_at(when - _TIMER_SLACK, self._deliver, sink, data, when)

    def _deliver(self, sink: int, data: bytes, when: float) -> None:
        if self._closed or self._loop is None:
            return
        if self._loop.time() < when:
            self._loop.call_soon(self._deliver, sink, data, when)
            return
        _send(sink, data)


def _send(fd: int, data: bytes) -> None:
    """Write what the pty takes; a full buffer means nobody reads, and the bytes are lost."""
    with contextlib.suppress(BlockingIOError, InterruptedError):
        os.write(fd, data)
