"""Badge reader wire formats: incremental decoders for what a port delivers, and encoders.

A decoder is fed whatever a read returned (``feed(chunk) -> frames``), keeps an unfinished
frame for the next call and drops what cannot be one, counting it in :class:`DecoderStats`.
Nothing a line can carry makes a decoder raise, and only bytes that pass the protocol's
checksum become a :class:`CardRead`. Formats (reference: access-control.md §3):

- RDM6300 / RDM630 (125 kHz EM4100): ``STX``, 10 hex digits (version byte + 4-byte tag),
  2 hex digits XOR of the 5 bytes, ``ETX``.
- EM-18: the same 12 characters without STX and ETX, so the decoder finds them by checksum.
- PN532 over UART: normal information frames, ACK and syntax-error frames (extended frames
  are never asked for and are dropped as bad frames).
- USB keyboard wedge: evdev key-down codes, one per byte, a number in a configured printed
  form (badge_numbers.py) ended by Enter.

A card's identity is its raw bytes as the card gives them (EM4100: 5 bytes including the
version byte; ISO 14443A: the 4, 7 or 10-byte UID) plus its :class:`Technology`.
"""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass

from edge_agent.codecs.badge_numbers import FORMS, parse_printed, typed_width
from edge_agent.errors import CodecError

__all__ = [
    "KEY_ENTER",
    "PN532_ACK",
    "PN532_CHIP",
    "PN532_HOST",
    "PN532_SYNTAX_ERROR",
    "PN532_WAKEUP",
    "CardRead",
    "DecoderStats",
    "Em18Decoder",
    "Frame",
    "FrameDecoder",
    "Pn532Ack",
    "Pn532Decoder",
    "Pn532ErrorFrame",
    "Pn532Frame",
    "Rdm6300Decoder",
    "Technology",
    "WedgeDecoder",
    "em18_frame",
    "in_list_passive_target",
    "in_list_passive_target_response",
    "pn532_frame",
    "rdm6300_frame",
    "rf_max_retries",
    "sam_configuration",
    "target_uid",
    "wedge_keys",
]

_STX, _ETX = 0x02, 0x03
_HEX = frozenset(b"0123456789ABCDEFabcdef")
_EM4100_CHARS = 12

#: The frame that acknowledges a host command, before its answer.
PN532_ACK = b"\x00\x00\xff\x00\xff\x00"
#: The chip's answer to a frame it could not parse.
PN532_SYNTAX_ERROR = b"\x00\x00\xff\x01\xff\x7f\x81\x00"
#: Wakes a PN532 from power-down on its UART (HSU): 0x55 0x55 then a run of zeros.
PN532_WAKEUP = b"\x55\x55\x00\x00\x00"
#: Frame identifiers: host to chip, chip to host.
PN532_HOST, PN532_CHIP = 0xD4, 0xD5
_PN532_START = b"\x00\xff"
_IN_LIST_PASSIVE_TARGET = 0x4A
_UID_LENGTHS = (4, 7, 10)

#: evdev key code of Enter, which ends a number typed by a keyboard-wedge reader.
KEY_ENTER = 28
_KP_ENTER = 96
_KEY_CHARS = {
    **{code: str(code - 1) for code in range(2, 11)}, 11: "0",
    30: "A", 48: "B", 46: "C", 32: "D", 18: "E", 33: "F",
    **dict(zip((82, 79, 80, 81, 75, 76, 77, 71, 72, 73), "0123456789", strict=True)),
}
_CHAR_KEYS = {char: code for code, char in reversed(_KEY_CHARS.items())}
_SHIFT_KEYS = frozenset({42, 54})
#: Longest number a wedge types (a 10-byte UID in hex is 20 characters).
_MAX_TYPED = 32


class Technology(enum.StrEnum):
    """The card technology a reader reads; part of a card's identity."""

    EM4100 = "em4100"
    ISO14443A = "iso14443a"


@dataclass(frozen=True, slots=True)
class CardRead:
    """A card identifier that passed the protocol's checks."""

    raw: bytes
    technology: Technology


@dataclass(frozen=True, slots=True)
class Pn532Ack:
    """The PN532 took the last command; its answer follows."""


@dataclass(frozen=True, slots=True)
class Pn532ErrorFrame:
    """The PN532 could not parse the last frame it was sent."""


@dataclass(frozen=True, slots=True)
class Pn532Frame:
    """A PN532 information frame: ``tfi`` says its direction, ``code`` the command."""

    tfi: int
    code: int
    data: bytes


Frame = CardRead | Pn532Ack | Pn532ErrorFrame | Pn532Frame


@dataclass(slots=True)
class DecoderStats:
    """What a decoder dropped: each a sign of a noisy line, a wrong baud rate or a bad card."""

    #: Bytes that could not start or belong to a frame.
    garbage_bytes: int = 0
    #: Complete frames whose checksum (or printed number) was wrong.
    bad_checksums: int = 0
    #: Frames cut short: a new start before the end, too long a run, or the line went quiet.
    partial_frames: int = 0


class FrameDecoder(abc.ABC):
    """An incremental decoder for one reader protocol."""

    def __init__(self) -> None:
        self.stats = DecoderStats()

    @abc.abstractmethod
    def feed(self, data: bytes) -> list[Frame]:
        """The frames ``data`` completes, in order; never raises."""

    @abc.abstractmethod
    def discard(self) -> None:
        """Drop an unfinished frame (the port closed, an answer timed out), counting it."""


def _xor(data: bytes) -> int:
    check = 0
    for byte in data:
        check ^= byte
    return check


def _em4100(chars: bytes | bytearray) -> CardRead | None:
    """The card in 12 hex characters (5 data bytes and their XOR), or None if they disagree."""
    raw = bytes.fromhex(chars[:10].decode("ascii"))
    if _xor(raw) != int(chars[10:12], 16):
        return None
    return CardRead(raw, Technology.EM4100)


def _em4100_text(raw: bytes) -> bytes:
    if len(raw) != 5:
        raise CodecError(f"an EM4100 identifier is 5 bytes, not {len(raw)}")
    return f"{raw.hex().upper()}{_xor(raw):02X}".encode("ascii")


def rdm6300_frame(raw: bytes) -> bytes:
    """The 14 bytes an RDM6300 sends for a card."""
    return bytes([_STX]) + _em4100_text(raw) + bytes([_ETX])


def em18_frame(raw: bytes) -> bytes:
    """The 12 characters an EM-18 sends for a card."""
    return _em4100_text(raw)


class Rdm6300Decoder(FrameDecoder):
    """RDM6300 frames: STX, 12 hex characters, ETX."""

    def __init__(self) -> None:
        super().__init__()
        self._body: bytearray | None = None

    def feed(self, data: bytes) -> list[Frame]:
        """The frames ``data`` completes; see the module docstring."""
        frames: list[Frame] = []
        stats = self.stats
        for byte in data:
            body = self._body
            if body is None:
                if byte == _STX:
                    self._body = bytearray()
                else:
                    stats.garbage_bytes += 1
            elif byte == _ETX:
                self._body = None
                card = _em4100(body) if len(body) == _EM4100_CHARS else None
                if card is not None:
                    frames.append(card)
                elif len(body) == _EM4100_CHARS:
                    stats.bad_checksums += 1
                else:
                    stats.partial_frames += 1
            elif byte == _STX:
                stats.partial_frames += 1
                self._body = bytearray()
            elif byte in _HEX and len(body) < _EM4100_CHARS:
                body.append(byte)
            else:  # not a hex digit, or one too many: the frame was not one
                stats.partial_frames += 1
                stats.garbage_bytes += 1
                self._body = None
        return frames

    def discard(self) -> None:
        """Drop a frame begun but not ended."""
        if self._body is not None:
            self.stats.partial_frames += 1
            self._body = None


class Em18Decoder(FrameDecoder):
    """EM-18 frames: 12 hex characters found by their checksum.

    Any other byte ends a run of hex characters. When 12 characters fail the checksum, that
    is one bad frame; the decoder then slides one character at a time (counted as garbage)
    until 12 characters agree, so a frame following noise or a bad frame is still found.
    """

    def __init__(self) -> None:
        super().__init__()
        self._run = bytearray()
        self._resyncing = False

    def feed(self, data: bytes) -> list[Frame]:
        """The frames ``data`` completes; see the class docstring."""
        frames: list[Frame] = []
        run = self._run
        for byte in data:
            if byte not in _HEX:
                self.discard()
                self.stats.garbage_bytes += 1
                continue
            run.append(byte)
            if len(run) < _EM4100_CHARS:
                continue
            card = _em4100(run)
            if card is not None:
                frames.append(card)
                run.clear()
                self._resyncing = False
                continue
            if self._resyncing:
                self.stats.garbage_bytes += 1
            else:
                self.stats.bad_checksums += 1
                self._resyncing = True
            del run[0]
        return frames

    def discard(self) -> None:
        """Drop an unfinished run: a cut frame, or the rest of a bad one."""
        if self._run:
            if self._resyncing:
                self.stats.garbage_bytes += len(self._run)
            else:
                self.stats.partial_frames += 1
            self._run.clear()
        self._resyncing = False


def pn532_frame(tfi: int, code: int, data: bytes = b"") -> bytes:
    """A normal information frame: preamble, start code, LEN, LCS, TFI, code, data, DCS."""
    body = bytes([tfi, code]) + data
    if len(body) > 255:
        raise CodecError(f"a normal PN532 frame carries at most 255 bytes, not {len(body)}")
    return (b"\x00\x00\xff" + bytes([len(body), -len(body) & 0xFF]) + body
            + bytes([-sum(body) & 0xFF, 0]))


def sam_configuration() -> bytes:
    """SAMConfiguration: normal mode, 1 s virtual-card timeout, IRQ used."""
    return pn532_frame(PN532_HOST, 0x14, b"\x01\x14\x01")


def rf_max_retries(passive_activation: int) -> bytes:
    """RFConfiguration MaxRetries: how often InListPassiveTarget looks for a card.

    The factory value (0xFF) waits for a card forever; a small one makes the chip answer
    "no card" at once, so a poll never blocks the line.
    """
    return pn532_frame(PN532_HOST, 0x32, bytes([0x05, 0xFF, 0x01, passive_activation]))


def in_list_passive_target(max_targets: int = 1, baud: int = 0) -> bytes:
    """InListPassiveTarget: look for ``max_targets`` cards (baud 0: ISO 14443A, 106 kbps)."""
    return pn532_frame(PN532_HOST, _IN_LIST_PASSIVE_TARGET, bytes([max_targets, baud]))


def in_list_passive_target_response(uid: bytes | None, *, atqa: bytes = b"\x00\x04",
                                    sak: int = 0x08) -> bytes:
    """The chip's answer to InListPassiveTarget: no card, or one card with ``uid``."""
    if uid is None:
        return pn532_frame(PN532_CHIP, _IN_LIST_PASSIVE_TARGET + 1, b"\x00")
    if len(uid) not in _UID_LENGTHS:
        raise CodecError(f"an ISO 14443A UID is 4, 7 or 10 bytes, not {len(uid)}")
    return pn532_frame(PN532_CHIP, _IN_LIST_PASSIVE_TARGET + 1,
                       b"\x01\x01" + atqa + bytes([sak, len(uid)]) + uid)


def target_uid(frame: Pn532Frame) -> bytes | None:
    """The UID in an InListPassiveTarget answer, None when no card; CodecError if malformed."""
    if (frame.tfi, frame.code) != (PN532_CHIP, _IN_LIST_PASSIVE_TARGET + 1):
        raise CodecError(f"not an InListPassiveTarget answer: TFI {frame.tfi:#04x}, "
                         f"code {frame.code:#04x}")
    data = frame.data
    if data[:1] == b"\x00":
        return None
    if len(data) < 6 or data[5] not in _UID_LENGTHS or len(data) < 6 + data[5]:
        raise CodecError(f"malformed InListPassiveTarget answer {data.hex(' ')}")
    return data[6:6 + data[5]]


class Pn532Decoder(FrameDecoder):
    """PN532 frames in either direction (the simulator decodes the host's with it).

    Zeros outside frames are preambles, postambles and wake-up filler, not garbage. After
    a bad length or data checksum only the start code is dropped, so a frame that begins
    inside a garbled one is still found.
    """

    def __init__(self) -> None:
        super().__init__()
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        """The frames ``data`` completes; see the class docstring."""
        buffer = self._buffer
        buffer += data
        frames: list[Frame] = []
        while True:
            start = buffer.find(_PN532_START)
            if start < 0:
                self._drop(len(buffer) - (1 if buffer.endswith(b"\x00") else 0))
                return frames
            self._drop(start)
            if len(buffer) < 4:
                return frames
            length, lcs = buffer[2], buffer[3]
            if (length, lcs) == (0x00, 0xFF):
                frames.append(Pn532Ack())
                del buffer[:4]
                continue
            if length == 0 or (length + lcs) & 0xFF:
                self.stats.bad_checksums += 1
                del buffer[:2]
                continue
            if len(buffer) < 5 + length:
                return frames
            body = bytes(buffer[4:4 + length])
            if (sum(body) + buffer[4 + length]) & 0xFF:
                self.stats.bad_checksums += 1
                del buffer[:2]
                continue
            del buffer[:5 + length]
            if body == b"\x7f":
                frames.append(Pn532ErrorFrame())
            elif length >= 2 and body[0] in (PN532_HOST, PN532_CHIP):
                frames.append(Pn532Frame(body[0], body[1], body[2:]))
            else:
                self.stats.garbage_bytes += 5 + length

    def _drop(self, count: int) -> None:
        self.stats.garbage_bytes += sum(1 for byte in self._buffer[:count] if byte)
        del self._buffer[:count]

    def discard(self) -> None:
        """Drop a frame whose end never came."""
        if self._buffer.startswith(_PN532_START):
            self.stats.partial_frames += 1
            self._buffer.clear()
        else:
            self._drop(len(self._buffer))


def wedge_keys(text: str) -> bytes:
    """The key codes a keyboard wedge types for ``text`` (digits and A-F), then Enter."""
    try:
        return bytes(_CHAR_KEYS[char] for char in text.upper()) + bytes([KEY_ENTER])
    except KeyError as exc:
        raise CodecError(f"a keyboard wedge types digits and A-F, not {exc}") from None


class WedgeDecoder(FrameDecoder):
    """Numbers typed by a keyboard-wedge reader, in one printed form (badge_numbers.py).

    Fed evdev key-down codes, one per byte. A number that does not parse in the form, or is
    not typed at the form's full width, counts as a bad checksum (the wedge has none; a bad
    number is what a corrupt read or a lost keystroke looks like).
    """

    def __init__(self, form: str, technology: Technology, *, length: int | None = None
                 ) -> None:
        super().__init__()
        if form not in FORMS:
            raise CodecError(f"unknown number form '{form}'; use one of {', '.join(FORMS)}")
        self.form = form
        self.technology = technology
        self.length = length
        self._width = typed_width(form, length)
        self._typed: list[str] | None = []

    def feed(self, data: bytes) -> list[Frame]:
        """The numbers ``data`` ends with Enter; see the class docstring."""
        frames: list[Frame] = []
        for code in data:
            if code in (KEY_ENTER, _KP_ENTER):
                card = self._finish()
                if card is not None:
                    frames.append(card)
            elif code in _SHIFT_KEYS:
                continue
            elif code not in _KEY_CHARS:
                self.stats.garbage_bytes += 1
            elif self._typed is not None:
                self._typed.append(_KEY_CHARS[code])
                if len(self._typed) > _MAX_TYPED:
                    self.stats.partial_frames += 1
                    self._typed = None  # skip the rest, up to the next Enter
        return frames

    def _finish(self) -> CardRead | None:
        typed, self._typed = self._typed, []
        if typed is None:
            return None
        if not typed:
            self.stats.garbage_bytes += 1
            return None
        if self._width is not None and len(typed) != self._width:
            self.stats.bad_checksums += 1
            return None
        try:
            raw = parse_printed("".join(typed), self.form, length=self.length)
        except CodecError:
            self.stats.bad_checksums += 1
            return None
        return CardRead(raw, self.technology)

    def discard(self) -> None:
        """Drop a number typed without its Enter."""
        if self._typed:
            self.stats.partial_frames += 1
        self._typed = []
