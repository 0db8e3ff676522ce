"""Faults a simulated device can show, as values and as command-line specs.

One fault per device at a time, set at start or switched at runtime:

``no-reply``            the device stays silent, like a dead RS-485 node
``exception=N``         every request gets Modbus exception N (e.g. 4 device failure, 6 busy)
``corrupt-crc[=P]``     with probability P (default 1) the reply's CRC is broken (RTU only)
``slow=800ms``          every reply is delayed by that long (``ms`` or ``s``)

On the command line a fault names its device: ``unit=3:no-reply``, ``unit=1:slow=0.8s``.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from pymodbus.constants import ExcCodes

__all__ = ["Fault", "FaultKind", "parse_fault"]


class FaultKind(enum.StrEnum):
    """What goes wrong; the value is the spec keyword."""

    NONE = "none"
    NO_REPLY = "no-reply"
    EXCEPTION = "exception"
    CORRUPT_CRC = "corrupt-crc"
    SLOW = "slow"


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault; build it with the class methods, which validate their argument."""

    kind: FaultKind = FaultKind.NONE
    exception_code: int = 0
    probability: float = 0.0
    delay: float = 0.0

    @classmethod
    def none(cls) -> Fault:
        """A healthy device."""
        return cls()

    @classmethod
    def no_reply(cls) -> Fault:
        """Silence: the request is ignored and nothing is sent back."""
        return cls(FaultKind.NO_REPLY)

    @classmethod
    def exception(cls, code: int) -> Fault:
        """Answer every request with Modbus exception ``code``."""
        try:
            ExcCodes(code)
        except ValueError:
            valid = ", ".join(str(int(c)) for c in ExcCodes)
            raise ValueError(f"exception code {code} is not a Modbus exception ({valid})") from None
        return cls(FaultKind.EXCEPTION, exception_code=code)

    @classmethod
    def corrupt_crc(cls, probability: float = 1.0) -> Fault:
        """Break the CRC of each reply with this probability (RTU only)."""
        if not 0.0 < probability <= 1.0:
            raise ValueError(f"corrupt-crc probability must be in (0, 1], got {probability}")
        return cls(FaultKind.CORRUPT_CRC, probability=probability)

    @classmethod
    def slow(cls, delay: float) -> Fault:
        """Delay each reply by ``delay`` seconds."""
        if not delay > 0.0:
            raise ValueError(f"slow delay must be positive, got {delay}")
        return cls(FaultKind.SLOW, delay=delay)

    def __str__(self) -> str:
        if self.kind is FaultKind.EXCEPTION:
            return f"exception={self.exception_code}"
        if self.kind is FaultKind.CORRUPT_CRC:
            return f"corrupt-crc={self.probability:g}"
        if self.kind is FaultKind.SLOW:
            return f"slow={self.delay * 1000:g}ms"
        return self.kind.value


_SPEC = re.compile(r"^unit=(?P<unit>\d+):(?P<kind>[a-z-]+)(?:=(?P<arg>[^=]+))?$")
_DURATION = re.compile(r"^(?P<number>\d+(?:\.\d+)?)(?P<suffix>ms|s)$")


def _duration(text: str) -> float:
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"slow needs a duration such as 800ms or 0.8s, got {text!r}")
    number = float(match.group("number"))
    return number / 1000 if match.group("suffix") == "ms" else number


def _fault(kind: str, arg: str | None) -> Fault:
    if kind in (FaultKind.NONE, FaultKind.NO_REPLY) and arg is None:
        return Fault(FaultKind(kind))
    if kind == FaultKind.EXCEPTION and arg is not None and arg.isdigit():
        return Fault.exception(int(arg))
    if kind == FaultKind.CORRUPT_CRC:
        try:
            return Fault.corrupt_crc(1.0 if arg is None else float(arg))
        except ValueError as exc:
            raise ValueError(f"corrupt-crc takes a probability in (0, 1]: {exc}") from None
    if kind == FaultKind.SLOW and arg is not None:
        return Fault.slow(_duration(arg))
    kinds = ", ".join(k.value for k in FaultKind)
    raise ValueError(f"unknown fault {kind}{'=' + arg if arg else ''}; faults are {kinds}")


def parse_fault(spec: str) -> tuple[int, Fault]:
    """Parse ``unit=N:FAULT`` into the unit id and the fault; ValueError says what is wrong."""
    match = _SPEC.match(spec.strip())
    if match is None:
        raise ValueError(
            f"fault {spec!r} must look like unit=3:no-reply, unit=2:exception=4, "
            "unit=1:corrupt-crc=0.5 or unit=1:slow=800ms"
        )
    unit = int(match.group("unit"))
    if not 1 <= unit <= 247:
        raise ValueError(f"fault {spec!r}: unit must be 1..247")
    return unit, _fault(match.group("kind"), match.group("arg"))
