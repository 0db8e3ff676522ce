"""A Linky's TIC output on a pty: frames at line pace, and the faults a field line has.

Frames go out back to back, group by group, at the pace of the mode's baud rate (a historic
frame takes over a second at 1200 baud) scaled by ``time_scale``. The pty carries bytes at any
speed, so the simulator reads the speed the agent set on its end and, when it is not the
meter's, sends what a UART would make of the signal: garbage, a byte per eight at 1200 baud
reading 9600, eight per byte at 9600 reading 1200. Faults on demand: every Nth group with a
flipped bit (a bad checksum), every Nth frame cut by EOT, and overpower episodes.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass

from edge_agent.codecs.tic import EOT, ETX, STX, TicMode, encode_group
from edge_agent.records import now_ms
from simulators.readers.pty_port import PtyDevice
from simulators.tic.meter import LinkyMeter

__all__ = ["SentCounts", "TicSimulator"]

#: The quiet between two frames (standard mode: 16.7 to 33.4 ms).
_FRAME_GAP_S = 0.025


@dataclass(slots=True)
class SentCounts:
    """What the simulator sent, for tests to compare with what the agent counted."""

    frames: int = 0
    corrupted_groups: int = 0
    interrupted_frames: int = 0
    #: Bytes sent as garbage because the agent's end was at the wrong speed.
    garbled_bytes: int = 0


class TicSimulator(PtyDevice):
    """One simulated Linky on a pty, sending until :meth:`run` is cancelled."""

    def __init__(self, mode: TicMode, *, time_scale: float = 1.0, corrupt_every: int = 0,
                 interrupt_every: int = 0, seed: int = 0) -> None:
        super().__init__()
        self.meter = LinkyMeter(mode, seed=seed)
        self.time_scale = time_scale
        self.corrupt_every = corrupt_every
        self.interrupt_every = interrupt_every
        self.sent = SentCounts()
        self._random = random.Random(seed)
        self._groups_sent = 0
        self._frames_begun = 0

    @property
    def mode(self) -> TicMode:
        """The meter's TIC mode."""
        return self.meter.mode

    async def run(self) -> None:
        """Send frames until cancelled; the meter's clock follows the simulated time."""
        last = time.monotonic()
        while True:
            await self.send_frame()
            now = time.monotonic()
            self.meter.advance((now - last) / max(self.time_scale, 1e-3))
            last = now
            await asyncio.sleep(_FRAME_GAP_S * self.time_scale)

    async def send_frame(self) -> None:
        """One frame, group by group at line pace, with the faults asked for."""
        self._frames_begun += 1
        cut = bool(self.interrupt_every) and self._frames_begun % self.interrupt_every == 0
        groups = self.meter.groups(now_ms())
        await self._send(bytes([STX]))
        for index, (label, value, horodate) in enumerate(groups):
            if cut and index == len(groups) // 2:
                await self._send(bytes([EOT]))
                self.sent.interrupted_frames += 1
                return
            await self._send(self._group(label, value, horodate))
        await self._send(bytes([ETX]))
        self.sent.frames += 1

    def _group(self, label: str, value: str, horodate: str | None) -> bytes:
        encoded = bytearray(encode_group(label, value, self.mode, horodate=horodate))
        self._groups_sent += 1
        if self.corrupt_every and self._groups_sent % self.corrupt_every == 0:
            encoded[2] ^= 0x01  # a bit of the label: the checksum no longer matches
            self.sent.corrupted_groups += 1
        return bytes(encoded)

    async def _send(self, data: bytes) -> None:
        """Write ``data`` as the agent's UART would receive it, then wait its line time."""
        speed = self.port.baudrate()
        baudrate = self.mode.baudrate
        line_time = len(data) * 10 / baudrate
        if speed is not None and speed != baudrate:
            data = self._garble(data, speed / baudrate)
            self.sent.garbled_bytes += len(data)
        self.port.write(data)
        await asyncio.sleep(line_time * self.time_scale)

    def _garble(self, data: bytes, ratio: float) -> bytes:
        """What a UART at ``ratio`` times the meter's speed reads of ``data``."""
        count = max(1, round(len(data) * ratio))
        patterns = (0x00, 0x80, 0xF8, 0xFE, 0xE0, 0xFF, 0x78, 0x06)
        return bytes(self._random.choice(patterns) if ratio > 1 else self._random.randrange(256)
                     for _ in range(count))

    def start_overpower(self) -> None:
        """Push the load past the subscribed power until :meth:`end_overpower`."""
        self.meter.overpower = True
        self.meter.advance(0)

    def end_overpower(self) -> None:
        """Bring the load back under the subscribed power."""
        self.meter.overpower = False
        self.meter.advance(0)
