"""A single-phase Linky on an off-peak contract (HC/HP), as its frames describe it.

The load wanders between a few hundred VA and most of the subscribed power; the index of the
current tariff period grows with it. An overpower episode pushes the load past the
subscribed power: historic frames then carry ADPS, standard frames set STGE bit 7.
"""

from __future__ import annotations

import random

from edge_agent.codecs.tic import TicMode, format_horodate

__all__ = ["Group", "LinkyMeter"]

#: (label, data, horodate) of one group, before encoding.
Group = tuple[str, str, str | None]

_MSG1 = "PAS DE          MESSAGE         "
_LTARF = {1: "  HEURE  CREUSE ", 2: "  HEURE  PLEINE "}
_PTEC = {1: "HC..", 2: "HP.."}
_STANDARD_MODE_BIT = 1 << 17
_OVERPOWER_BIT = 1 << 7


class LinkyMeter:
    """The meter's state: indexes in Wh, load in VA, tariff period (1 off-peak, 2 peak)."""

    def __init__(self, mode: TicMode, *, subscribed_kva: int = 6, seed: int = 0) -> None:
        self.mode = mode
        self.subscribed_kva = subscribed_kva
        self.serial = "041876097465"
        self.prm = "09312300926695"
        self.indexes = {1: 10_956_910.0, 2: 21_433_012.0}
        self.period = 2
        self.load_va = 1_500.0
        self.day_max_va = self.load_va
        self.overpower = False
        self._random = random.Random(seed)

    @property
    def subscribed_va(self) -> float:
        """The subscribed apparent power."""
        return self.subscribed_kva * 1000.0

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass: the load moves, the current period's index grows."""
        if self.overpower:
            self.load_va = self.subscribed_va * 1.25
        else:
            step = self._random.gauss(0, 150) * max(seconds, 0.05) ** 0.5
            self.load_va = min(max(self.load_va + step, 200.0), self.subscribed_va * 0.85)
        self.indexes[self.period] += self.load_va * seconds / 3600
        self.day_max_va = max(self.day_max_va, self.load_va)

    def switch_tariff(self) -> None:
        """Off-peak to peak, or back."""
        self.period = 3 - self.period

    def groups(self, ts_ms: int) -> list[Group]:
        """The groups of the frame sent at ``ts_ms``."""
        if self.mode is TicMode.HISTORIC:
            return self._historic()
        return self._standard(ts_ms)

    def _historic(self) -> list[Group]:
        current = round(self.load_va / 200)
        groups: list[Group] = [
            ("ADCO", self.serial, None), ("OPTARIF", "HC..", None),
            ("ISOUSC", f"{self.subscribed_kva * 5:02d}", None),
            ("HCHC", f"{int(self.indexes[1]):09d}", None),
            ("HCHP", f"{int(self.indexes[2]):09d}", None),
            ("PTEC", _PTEC[self.period], None), ("IINST", f"{current:03d}", None),
        ]
        if self.overpower:
            groups.append(("ADPS", f"{current:03d}", None))
        groups += [("IMAX", "090", None),
                   ("PAPP", f"{round(self.load_va, -1):05.0f}", None),
                   ("HHPHC", "A", None), ("MOTDETAT", "000000", None)]
        return groups

    def _standard(self, ts_ms: int) -> list[Group]:
        now = format_horodate(ts_ms)
        east = sum(self.indexes.values())
        stge = (_STANDARD_MODE_BIT | (self.period - 1) << 10
                | (_OVERPOWER_BIT if self.overpower else 0))
        easf = [self.indexes[1], self.indexes[2], *[0.0] * 8]
        return [
            ("ADSC", self.serial, None), ("VTIC", "02", None), ("DATE", "", now),
            ("NGTF", "H PLEINE/CREUSE ", None),
            ("LTARF", _LTARF[self.period], None), ("EAST", f"{int(east):09d}", None),
            *[(f"EASF{n:02d}", f"{int(value):09d}", None) for n, value in enumerate(easf, 1)],
            ("EASD01", f"{int(self.indexes[1]):09d}", None),
            ("EASD02", f"{int(self.indexes[2]):09d}", None),
            ("EASD03", "000000000", None), ("EASD04", "000000000", None),
            ("IRMS1", f"{round(self.load_va / 230):03d}", None), ("URMS1", "231", None),
            ("PREF", f"{self.subscribed_kva:02d}", None),
            ("PCOUP", f"{self.subscribed_kva:02d}", None),
            ("SINSTS", f"{round(self.load_va):05d}", None),
            ("SMAXSN", f"{round(self.day_max_va):05d}", now),
            ("SMAXSN-1", "04120", format_horodate(ts_ms - 86_400_000)),
            ("CCASN", f"{round(self.load_va * 0.9):05d}", now),
            ("UMOY1", "230", now), ("STGE", f"{stge:08X}", None),
            ("MSG1", _MSG1, None), ("PRM", self.prm, None), ("RELAIS", "000", None),
            ("NTARF", f"{self.period:02d}", None), ("NJOURF", "00", None),
            ("NJOURF+1", "00", None),
            ("PJOURF+1", "00008002 06008001 22008002 NONUTILE NONUTILE NONUTILE NONUTILE "
                         "NONUTILE NONUTILE NONUTILE NONUTILE", None),
        ]
