"""A PN532 on its UART: woken, configured, then asked for a card at every poll.

Each command is acknowledged (ACK frame), then answered. A command left without a usable
answer is counted and aborted (an ACK from the host cancels it), and the next poll goes on;
after a few such in a row the chip is taken as lost and the port reopened, which wakes and
configures it again.
"""

from __future__ import annotations

import asyncio
import logging

from edge_agent.codecs.badge_frames import (
    PN532_ACK,
    PN532_CHIP,
    PN532_WAKEUP,
    CardRead,
    Frame,
    Pn532Ack,
    Pn532Decoder,
    Pn532Frame,
    Technology,
    in_list_passive_target,
    rf_max_retries,
    sam_configuration,
    target_uid,
)
from edge_agent.drivers.readers.reader import BadgeReader, Port, ReaderSettings
from edge_agent.drivers.readers.serial_line import open_serial
from edge_agent.drivers.serial_port import SerialPort
from edge_agent.errors import CodecError, TransportError

__all__ = ["Pn532Reader"]

log = logging.getLogger("edge_agent.readers")

#: Unanswered commands in a row after which the chip is taken as lost.
_MAX_UNANSWERED = 3
_SAM_CONFIGURATION, _RF_CONFIGURATION, _IN_LIST_PASSIVE_TARGET = 0x14, 0x32, 0x4A


class Pn532Reader(BadgeReader):
    """Polls a PN532 for ISO 14443A cards; a card held in the field is one presentation."""

    def __init__(self, settings: ReaderSettings) -> None:
        super().__init__(settings, Pn532Decoder())
        spec = settings.profile.reader
        self.poll_interval_s = spec.poll_interval_s
        self.response_timeout_s = spec.response_timeout_s
        self._frames: asyncio.Queue[tuple[Frame, int]] = asyncio.Queue()
        self._unanswered = 0

    def open_port(self) -> SerialPort:
        """Open the serial line."""
        return open_serial(self.settings)

    def _on_frame(self, frame: Frame, received_ns: int) -> None:
        self._frames.put_nowait((frame, received_ns))

    async def _conversation(self, port: Port) -> None:
        """Wake and configure the chip, then look for a card every poll interval."""
        self._unanswered = 0
        await self._command(port, PN532_WAKEUP + sam_configuration(), _SAM_CONFIGURATION)
        # One quick search per command: "no card" comes back at once instead of never.
        await self._command(port, rf_max_retries(1), _RF_CONFIGURATION)
        while True:
            answer = await self._command(port, in_list_passive_target(), _IN_LIST_PASSIVE_TARGET)
            if answer is not None:
                self._target(*answer)
            await asyncio.sleep(self.poll_interval_s)

    def _target(self, frame: Pn532Frame, received_ns: int) -> None:
        try:
            uid = target_uid(frame)
        except CodecError as exc:
            self.health.drops.bad_checksums += 1  # garbled inside a valid frame
            log.debug("reader %s: %s", self.name, exc)
            return
        if uid is not None:
            self._card(CardRead(uid, Technology.ISO14443A), received_ns)

    async def _command(self, port: Port, frame: bytes, code: int
                       ) -> tuple[Pn532Frame, int] | None:
        """Send ``frame``; its answer (and when it arrived), or None when there was none."""
        while not self._frames.empty():
            self._frames.get_nowait()  # late answers to an aborted command
        port.write(frame)
        acked = await self._next(self.response_timeout_s)
        answer = None
        if acked is not None and isinstance(acked[0], Pn532Ack):
            answer = await self._next(self.response_timeout_s)
        if answer is not None:
            reply, received_ns = answer
            if isinstance(reply, Pn532Frame) and (reply.tfi, reply.code) == (PN532_CHIP,
                                                                              code + 1):
                self._unanswered = 0
                return reply, received_ns
        self.health.timeouts += 1
        self._unanswered += 1
        port.write(PN532_ACK)  # abort whatever the chip is still doing
        self.decoder.discard()
        if self._unanswered >= _MAX_UNANSWERED:
            raise TransportError(
                f"the PN532 on {self.settings.port} does not answer: check TX/RX wiring, the "
                "interface switches (HSU) and the baud rate", device=self.name)
        return None

    async def _next(self, timeout: float) -> tuple[Frame, int] | None:
        try:
            async with asyncio.timeout(timeout):
                return await self._frames.get()
        except TimeoutError:
            return None
