"""Simulated badge readers: an RDM6300 or EM-18 that sends frames, a PN532 that answers.

Each can misbehave on demand, as field lines do: noise, bad checksums, cut frames, and for
the PN532 silence or garbled answers.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from edge_agent.codecs.badge_frames import (
    PN532_ACK,
    PN532_CHIP,
    PN532_HOST,
    PN532_SYNTAX_ERROR,
    Pn532Decoder,
    Pn532Frame,
    em18_frame,
    in_list_passive_target_response,
    pn532_frame,
    rdm6300_frame,
)
from simulators.readers.pty_port import PtyDevice, PtyPort

__all__ = ["CardReaderSimulator", "Pn532Simulator", "StreamProtocol"]

StreamProtocol = Literal["rdm6300", "em18"]

#: GetFirmwareVersion answer of a PN532 v1.6: IC 0x32, version 1, revision 6, support 7.
_FIRMWARE = b"\x32\x01\x06\x07"


class CardReaderSimulator(PtyDevice):
    """An RDM6300 or EM-18: sends a frame per read, repeated while the card is held."""

    def __init__(self, protocol: StreamProtocol, *, repeat_interval_s: float = 0.1) -> None:
        super().__init__()
        self.protocol = protocol
        self.repeat_interval_s = repeat_interval_s

    def frame(self, raw: bytes) -> bytes:
        """What this reader sends for card ``raw`` (5 bytes)."""
        return rdm6300_frame(raw) if self.protocol == "rdm6300" else em18_frame(raw)

    async def present(self, raw: bytes, repeats: int = 1) -> None:
        """Hold card ``raw`` in the field for ``repeats`` frames at the repeat interval."""
        for count in range(repeats):
            if count:
                await asyncio.sleep(self.repeat_interval_s)
            self.port.write(self.frame(raw))

    def send(self, data: bytes) -> None:
        """Put ``data`` on the line as it is: noise, or a frame built by hand."""
        self.port.write(data)

    def send_bad_checksum(self, raw: bytes) -> None:
        """A frame for ``raw`` whose checksum digits are wrong."""
        frame = bytearray(self.frame(raw))
        at = 11 if self.protocol == "rdm6300" else 10
        frame[at] = ord("0") if frame[at] != ord("0") else ord("1")
        self.port.write(bytes(frame))

    def send_partial(self, raw: bytes) -> None:
        """The first half of a frame for ``raw``, as when the card leaves mid-read."""
        frame = self.frame(raw)
        self.port.write(frame[:len(frame) // 2])


class Pn532Simulator:
    """A PN532 on its UART answering the host: ACK, then the command's answer.

    ``card`` is the UID in the field (None: no card). ``silent`` makes it answer nothing,
    and ``garble`` answers that many commands with a wrong data checksum.
    """

    def __init__(self) -> None:
        self.port = PtyPort()
        self.card: bytes | None = None
        self.silent = False
        self.garble = 0
        #: Command codes received, in order.
        self.commands: list[int] = []
        self._decoder = Pn532Decoder()

    @property
    def path(self) -> str:
        """The tty the agent opens."""
        return self.port.path

    def open(self) -> None:
        """Create the pty and answer what arrives (call from the event loop)."""
        self.port.open()
        self.port.watch(self._received)

    def close(self) -> None:
        """Close the pty (the agent sees its port vanish)."""
        self.port.close()

    async def present(self, uid: bytes, hold_s: float) -> None:
        """Hold a card in the field for ``hold_s`` seconds."""
        self.card = uid
        await asyncio.sleep(hold_s)
        self.card = None

    def _received(self, data: bytes) -> None:
        for frame in self._decoder.feed(data):
            if isinstance(frame, Pn532Frame) and frame.tfi == PN532_HOST:
                self.commands.append(frame.code)
                self._answer(frame)

    def _answer(self, command: Pn532Frame) -> None:
        if self.silent:
            return
        answers = {
            0x02: pn532_frame(PN532_CHIP, 0x03, _FIRMWARE),
            0x14: pn532_frame(PN532_CHIP, 0x15),
            0x32: pn532_frame(PN532_CHIP, 0x33),
            0x4A: in_list_passive_target_response(self.card),
        }
        answer = answers.get(command.code)
        if answer is None:
            self.port.write(PN532_SYNTAX_ERROR)
            return
        if self.garble:
            self.garble -= 1
            corrupted = bytearray(answer)
            corrupted[-2] ^= 0x5A  # the data checksum
            answer = bytes(corrupted)
        self.port.write(PN532_ACK + answer)
