"""A vehicle-presence loop detector wired to an input of a simulated relay board.

A real detector's presence output (access-control.md §4.1) closes while a vehicle stands
over the loop and opens when it leaves; the board sees it on a digital input, about 75 ms
later on real hardware. Here the input follows at once: tests add the delays they study.
"""

from __future__ import annotations

import asyncio
import time

from simulators.modbus.relay_board import SimulatedRelayBoard

__all__ = ["LoopDetector"]


class LoopDetector:
    """Drives input ``channel`` (1..8) of ``board`` like a presence loop."""

    def __init__(self, board: SimulatedRelayBoard, channel: int) -> None:
        board.set_input(channel, False)  # also checks the channel
        self.board = board
        self.channel = channel

    @property
    def present(self) -> bool:
        """Whether a vehicle is on the loop now."""
        return self.board.input(self.channel)

    def arrive(self) -> int:
        """A vehicle drives onto the loop; its ``time.monotonic_ns()``."""
        self.board.set_input(self.channel, True)
        return time.monotonic_ns()

    def leave(self) -> int:
        """The vehicle drives off the loop; its ``time.monotonic_ns()``."""
        self.board.set_input(self.channel, False)
        return time.monotonic_ns()

    async def vehicle(self, dwell_s: float) -> tuple[int, int]:
        """A vehicle stays on the loop for ``dwell_s``; when it arrived and left (ns)."""
        if dwell_s < 0:
            raise ValueError(f"dwell time must not be negative, got {dwell_s}")
        arrived = self.arrive()
        try:
            await asyncio.sleep(dwell_s)
        finally:
            left = self.leave()
        return arrived, left
