"""Linky TIC (télé-information client) frames: an incremental decoder, and encoders.

The meter talks 7E1 and never listens: ``STX`` (0x02), information groups, ``ETX`` (0x03);
``EOT`` (0x04) cuts a frame short. A group is ``LF label SEP [horodate SEP] data SEP
checksum CR``; the separator says the mode (reference: lora-chirpstack-tic.md §3):

- historic (1200 baud): SP. The checksum covers the label to the last data character,
  including the SP between them and excluding the SP before the checksum (which may itself
  be a SP, so the group is cut from its end, never split on spaces).
- standard (9600 baud): HT. The checksum covers the label through the HT before the
  checksum; a horodated group carries ``SAAMMJJhhmmss`` between label and data.

``checksum = (sum & 0x3F) + 0x20``. Some meters sum with, others without, the last
separator, so both are accepted in both modes. Bytes are masked to 7 bits (a port read 8N1
sees the parity bit), and a group's characters must lie in 0x20-0x5F, the range its checksum
can take. With that rule, and the horodate required of the labels that carry one, every
single flipped bit of bits 0-6 is caught: by the sum (bits 0-5), or by the character range
and the group's structure (bit 6, which the 6-bit sum misses).

A frame is all or nothing: one bad group, or garbage between its groups, and the whole frame
is dropped and counted. A frame every one to two seconds makes a lost frame cheap, while a
wrong index that passed would poison every energy figure computed from it. Nothing a line
can carry makes the decoder raise.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Literal

from edge_agent.errors import CodecError

__all__ = [
    "EOT",
    "ETX",
    "HORODATED",
    "STX",
    "Horodate",
    "ModeSetting",
    "TicDecoder",
    "TicFrame",
    "TicGroup",
    "TicMode",
    "TicStats",
    "checksum",
    "encode_frame",
    "encode_group",
    "format_horodate",
    "parse_group",
    "parse_horodate",
    "summer_time",
]

STX, ETX, EOT = 0x02, 0x03, 0x04
_LF, _CR, _SP, _HT = 0x0A, 0x0D, 0x20, 0x09
#: Longest group kept: PJOURF+1 carries 98 characters of data.
_MAX_GROUP = 160
#: A frame that never ends is dropped past this many groups.
_MAX_GROUPS = 256
#: Enedis says 8, yet its own three-phase labels run to 9 (SMAXSN1-1).
_MAX_LABEL = 10
_SEASONS = {"H": 1, "E": 2, "h": 1, "e": 2}
#: Labels that always carry a horodate (Enedis-NOI-CPT_54E): without one, a flipped bit
#: (HT to "I", +64 to a 6-bit sum) could pass the horodate off as data.
HORODATED = frozenset({
    "DATE", "SMAXSN", "SMAXSN1", "SMAXSN2", "SMAXSN3", "SMAXSN-1", "SMAXSN1-1", "SMAXSN2-1",
    "SMAXSN3-1", "SMAXIN", "SMAXIN-1", "CCASN", "CCASN-1", "CCAIN", "CCAIN-1", "UMOY1",
    "UMOY2", "UMOY3", "DPM1", "DPM2", "DPM3", "FPM1", "FPM2", "FPM3",
})


#: How a line's mode is configured: fixed, or found by trying both speeds.
ModeSetting = Literal["auto", "historic", "standard"]


class TicMode(enum.StrEnum):
    """The meter's TIC mode, told apart by the group separator."""

    HISTORIC = "historic"
    STANDARD = "standard"

    @property
    def baudrate(self) -> int:
        """The line speed of this mode."""
        return 1200 if self is TicMode.HISTORIC else 9600

    @property
    def separator(self) -> int:
        """The byte between a group's fields."""
        return _SP if self is TicMode.HISTORIC else _HT


@dataclass(frozen=True, slots=True)
class Horodate:
    """A standard-mode timestamp as the meter wrote it."""

    #: The 13 characters, season letter first.
    text: str
    #: UTC milliseconds; None when the season is a space ("not applicable": DPMx, FPMx).
    ts_ms: int | None
    #: The season letter was lowercase: the meter's clock is degraded.
    degraded: bool


@dataclass(frozen=True, slots=True)
class TicGroup:
    """One information group that passed its checksum."""

    label: str
    value: str
    horodate: Horodate | None = None


@dataclass(frozen=True, slots=True)
class TicFrame:
    """A complete frame: every group of it passed."""

    mode: TicMode
    groups: tuple[TicGroup, ...]

    def value(self, label: str) -> str | None:
        """The data of ``label``'s group, None when the frame has none."""
        for group in self.groups:
            if group.label == label:
                return group.value
        return None

    def as_dict(self) -> dict[str, str]:
        """Label to data, in frame order."""
        return {group.label: group.value for group in self.groups}


@dataclass(slots=True)
class TicStats:
    """What the decoder passed and dropped: each drop a sign of a noisy line or wrong speed."""

    #: Complete frames handed over.
    frames: int = 0
    #: Groups that passed their checksum (also in frames dropped later): the line is right.
    groups: int = 0
    #: Bytes outside any frame, or between the groups of one.
    garbage_bytes: int = 0
    #: Groups whose checksum was wrong.
    bad_checksums: int = 0
    #: Groups cut, too long, or with fields or characters a group cannot have.
    malformed_groups: int = 0
    #: Frames cut by EOT, by a new STX, or by the port closing.
    interrupted_frames: int = 0
    #: Frames ended by ETX but dropped for a bad group or garbage inside.
    rejected_frames: int = 0

    def as_dict(self) -> dict[str, int]:
        """Every counter by name."""
        return {field.name: getattr(self, field.name) for field in fields(self)}


class _BadChecksum(CodecError):
    """A group whose checksum character disagrees with its bytes."""


def checksum(data: bytes) -> int:
    """The checksum character of ``data``: its sum's low 6 bits plus 0x20."""
    return (sum(data) & 0x3F) + 0x20


def summer_time(ts_ms: int) -> bool:
    """Whether France is on summer time (UTC+2) at ``ts_ms``: the EU rule.

    From the last Sunday of March to the last Sunday of October, at 01:00 UTC both times.
    """
    when = dt.datetime.fromtimestamp(ts_ms / 1000, dt.UTC)

    def last_sunday(month: int) -> dt.datetime:
        last = dt.datetime(when.year, month, 31, 1, tzinfo=dt.UTC)
        return last - dt.timedelta(days=(last.weekday() + 1) % 7)

    return last_sunday(3) <= when < last_sunday(10)


def format_horodate(ts_ms: int, *, degraded: bool = False) -> str:
    """The horodate a meter writes for ``ts_ms``: season letter, then local time."""
    summer = summer_time(ts_ms)
    local = dt.datetime.fromtimestamp(ts_ms / 1000, dt.UTC) + dt.timedelta(hours=2 if summer
                                                                           else 1)
    season = "E" if summer else "H"
    return (season.lower() if degraded else season) + local.strftime("%y%m%d%H%M%S")


def parse_horodate(text: str) -> Horodate:
    """``SAAMMJJhhmmss`` to UTC (H: UTC+1, E: UTC+2; lowercase: degraded clock)."""
    season, digits = text[:1], text[1:]
    if len(text) != 13 or not (digits.isascii() and digits.isdigit()) or (
            season not in _SEASONS and season != " "):
        raise CodecError(f"'{text}' is not a horodate SAAMMJJhhmmss")
    try:
        local = dt.datetime.strptime(digits, "%y%m%d%H%M%S").replace(tzinfo=dt.UTC)
    except ValueError as exc:
        raise CodecError(f"'{text}' is not a date: {exc}") from None
    if season == " ":
        return Horodate(text, None, degraded=False)
    utc = local - dt.timedelta(hours=_SEASONS[season])
    return Horodate(text, int(utc.timestamp()) * 1000, degraded=season.islower())


def _text(raw: bytes, what: str, *, low: int = _SP) -> str:
    if any(byte < low or byte > 0x5F for byte in raw):
        raise CodecError(f"{what} '{raw!r}' has a character no TIC group carries")
    return raw.decode("ascii")


def _label(raw: bytes) -> str:
    if not 1 <= len(raw) <= _MAX_LABEL:
        raise CodecError(f"a label has 1 to {_MAX_LABEL} characters, not {len(raw)}")
    return _text(raw, "label", low=_SP + 1)


def parse_group(body: bytes) -> tuple[TicGroup, TicMode]:
    """A group's bytes between LF and CR, checked; CodecError when they are not one."""
    if _HT in body:
        return _standard_group(body), TicMode.STANDARD
    return _historic_group(body), TicMode.HISTORIC


def _historic_group(body: bytes) -> TicGroup:
    first = body.find(b" ")
    if len(body) < 4 or body[-2] != _SP or not 0 < first < len(body) - 2:
        raise CodecError("a historic group is label SP data SP checksum")
    summed = sum(body[:-2])
    if body[-1] not in ((summed & 0x3F) + 0x20, ((summed + _SP) & 0x3F) + 0x20):
        raise _BadChecksum("bad checksum")
    return TicGroup(_label(body[:first]), _text(body[first + 1:-2], "data"))


def _standard_group(body: bytes) -> TicGroup:
    fields = body.split(b"\t")
    if len(fields) not in (3, 4) or len(fields[-1]) != 1:
        raise CodecError("a standard group is label HT [horodate HT] data HT checksum")
    summed = sum(body[:-1])
    if body[-1] not in ((summed & 0x3F) + 0x20, ((summed - _HT) & 0x3F) + 0x20):
        raise _BadChecksum("bad checksum")
    label = _label(fields[0])
    horodate = None
    if len(fields) == 4:
        horodate = parse_horodate(fields[1].decode("ascii"))
    elif label in HORODATED:
        raise CodecError(f"{label} carries a horodate")
    return TicGroup(label, _text(fields[-2], "data"), horodate)


def encode_group(label: str, value: str, mode: TicMode, *, horodate: str | None = None,
                 last_separator: bool | None = None) -> bytes:
    """One group, LF to CR, as a meter sends it.

    The checksum follows the specification of ``mode`` unless ``last_separator`` says
    whether to sum the separator before the checksum (the other method some meters use).
    """
    if horodate is not None and mode is TicMode.HISTORIC:
        raise CodecError("historic groups carry no horodate")
    sep = bytes([mode.separator])
    fields = [label, *([horodate] if horodate is not None else []), value]
    body = sep.join(field.encode("ascii") for field in fields) + sep
    if last_separator is None:
        last_separator = mode is TicMode.STANDARD
    summed = body if last_separator else body[:-1]
    return b"\n" + body + bytes([checksum(summed)]) + b"\r"


def encode_frame(groups: Iterable[bytes]) -> bytes:
    """A frame around encoded groups."""
    return bytes([STX]) + b"".join(groups) + bytes([ETX])


class TicDecoder:
    """Frames from whatever the port delivers, fed in any chunks; see the module docstring.

    :attr:`mode` is the mode of the last frame decoded, None before the first.
    """

    def __init__(self) -> None:
        self.stats = TicStats()
        self.mode: TicMode | None = None
        #: The groups of the frame in progress; None outside a frame.
        self._groups: list[TicGroup] | None = None
        #: The bytes of the group in progress; None between groups.
        self._group: bytearray | None = None
        self._frame_mode: TicMode | None = None
        #: The frame in progress lost a group or held garbage: it will be rejected.
        self._spoiled = False

    def feed(self, data: bytes) -> list[TicFrame]:
        """The frames ``data`` completes, in order; never raises."""
        frames: list[TicFrame] = []
        stats = self.stats
        for raw in data:
            byte = raw & 0x7F
            if byte == STX:
                self.discard()
                self._groups = []
            elif self._groups is None:
                stats.garbage_bytes += 1
            elif byte == EOT:
                self.discard()
            elif byte == ETX:
                frame = self._finish()
                if frame is not None:
                    frames.append(frame)
            elif byte == _LF:
                if self._group is not None:
                    self._bad_group()
                self._group = bytearray()
            elif self._group is None:
                stats.garbage_bytes += 1
                self._spoiled = True
            elif byte == _CR:
                self._end_group(bytes(self._group))
            elif len(self._group) >= _MAX_GROUP:
                self._bad_group()
            else:
                self._group.append(byte)
        return frames

    def discard(self) -> None:
        """Drop a frame begun but not ended (EOT, a new STX, the port closed), counting it."""
        if self._groups is not None:
            self.stats.interrupted_frames += 1
        self._reset()

    def _reset(self) -> None:
        self._groups = None
        self._group = None
        self._frame_mode = None
        self._spoiled = False

    def _bad_group(self) -> None:
        self.stats.malformed_groups += 1
        self._group = None
        self._spoiled = True

    def _end_group(self, body: bytes) -> None:
        self._group = None
        try:
            group, mode = parse_group(body)
        except _BadChecksum:
            self.stats.bad_checksums += 1
            self._spoiled = True
            return
        except CodecError:
            self._bad_group()
            return
        if self._frame_mode not in (None, mode):
            self._bad_group()  # a group of the other mode: not from this meter's frame
            return
        self.stats.groups += 1
        self._frame_mode = mode
        assert self._groups is not None
        self._groups.append(group)
        if len(self._groups) > _MAX_GROUPS:
            self.discard()

    def _finish(self) -> TicFrame | None:
        if self._group is not None:
            self._bad_group()
        groups, mode = self._groups, self._frame_mode
        if self._spoiled or not groups or mode is None:
            self.stats.rejected_frames += 1
            self._reset()
            return None
        self._reset()
        self.stats.frames += 1
        self.mode = mode
        return TicFrame(mode, tuple(groups))
