"""TIC labels to the quantity vocabulary (pure): what a decoded frame says, in canonical units.

=======================================  ==================================  ===========
label (mode)                             quantity                            scale
=======================================  ==================================  ===========
BASE (historic), EAST (standard)         ``active_energy_import``            Wh → kWh
HCHC, HCHP (historic, off-peak option)   ``active_energy_import_1``, ``_2``  Wh → kWh
EJPHN, EJPHPM (historic, EJP)            ``active_energy_import_1``, ``_2``  Wh → kWh
BBRHCJB … BBRHPJR (historic, Tempo)      ``active_energy_import_1`` … ``_6`` Wh → kWh
EASF01 … EASF10 (supplier indexes)       ``active_energy_import_1`` … ``_10`` Wh → kWh
EASD01 … EASD04 (distributor indexes)    ``active_energy_import_11`` … ``_14`` Wh → kWh
EAIT (injected)                          ``active_energy_export``            Wh → kWh
PAPP, SINSTS                             ``apparent_power``                  VA
SINSTS1..3                               ``apparent_power_l1..3``            VA
IINST                                    ``current``                         A
IINST1..3, IRMS1..3                      ``current_l1..3``                   A
URMS1..3                                 ``voltage_l1..3``                   V
SMAXSN, SMAXSN1..3                       ``apparent_power_max(_l1..3)``      VA
ISOUSC (A), PREF (kVA)                   ``subscribed_power``                × 200, × 1000
PTEC (historic), NTARF (standard)        ``tariff_period``                   index, 1-based
CCASN                                    ``active_power``                    W
=======================================  ==================================  ===========

A historic meter with several period indexes also gets ``active_energy_import`` as their sum,
the total that EAST gives in standard mode. PTEC names the period, numbered as its index:
TH.. 1; HC.. 1, HP.. 2; HN.. 1, PM.. 2; HCJB 1, HPJB 2, HCJW 3, HPJW 4, HCJR 5, HPJR 6.

Not readings: the meter's identity (ADCO/ADSC, PRM, contract), the current tariff's label
(PTEC, LTARF) and overpower (historic ADPS or ADIR1..3 present; standard STGE bit 7), which
the line turns into events.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edge_agent.codecs.tic import TicFrame, TicMode

__all__ = ["MappedFrame", "map_frame"]

_KWH = 0.001
_HISTORIC_PERIODS = ("HCHC", "HCHP", "EJPHN", "EJPHPM", "BBRHCJB", "BBRHPJB", "BBRHCJW",
                     "BBRHPJW", "BBRHCJR", "BBRHPJR")
_PERIOD_NUMBER = {"HCHC": 1, "HCHP": 2, "EJPHN": 1, "EJPHPM": 2, "BBRHCJB": 1, "BBRHPJB": 2,
                  "BBRHCJW": 3, "BBRHPJW": 4, "BBRHCJR": 5, "BBRHPJR": 6}
_PTEC = {"TH..": 1, "HC..": 1, "HP..": 2, "HN..": 1, "PM..": 2, "HCJB": 1, "HPJB": 2,
         "HCJW": 3, "HPJW": 4, "HCJR": 5, "HPJR": 6}
_PHASES = (1, 2, 3)
_STGE_OVERPOWER = 1 << 7

#: Label → (quantity, factor to the canonical unit).
_NUMERIC: dict[str, tuple[str, float]] = {
    "BASE": ("active_energy_import", _KWH),
    "EAST": ("active_energy_import", _KWH),
    "EAIT": ("active_energy_export", _KWH),
    **{label: (f"active_energy_import_{n}", _KWH) for label, n in _PERIOD_NUMBER.items()},
    **{f"EASF{n:02d}": (f"active_energy_import_{n}", _KWH) for n in range(1, 11)},
    **{f"EASD{n:02d}": (f"active_energy_import_{10 + n}", _KWH) for n in range(1, 5)},
    "PAPP": ("apparent_power", 1.0),
    "SINSTS": ("apparent_power", 1.0),
    "IINST": ("current", 1.0),
    "SMAXSN": ("apparent_power_max", 1.0),
    **{f"SINSTS{n}": (f"apparent_power_l{n}", 1.0) for n in _PHASES},
    **{f"IINST{n}": (f"current_l{n}", 1.0) for n in _PHASES},
    **{f"IRMS{n}": (f"current_l{n}", 1.0) for n in _PHASES},
    **{f"URMS{n}": (f"voltage_l{n}", 1.0) for n in _PHASES},
    **{f"SMAXSN{n}": (f"apparent_power_max_l{n}", 1.0) for n in _PHASES},
    "ISOUSC": ("subscribed_power", 200.0),
    "PREF": ("subscribed_power", 1000.0),
    "NTARF": ("tariff_period", 1.0),
    "CCASN": ("active_power", 1.0),
}


@dataclass(frozen=True, slots=True)
class MappedFrame:
    """A frame in the vocabulary, plus what becomes events."""

    mode: TicMode
    #: Quantity → value in its canonical unit.
    values: dict[str, float] = field(default_factory=dict)
    #: Who the meter is: serial (ADCO/ADSC), prm, contract, vtic, when the frame says.
    identity: dict[str, str] = field(default_factory=dict)
    #: The current tariff period's label (PTEC, LTARF), None when the frame has none.
    tariff: str | None = None
    #: Over the subscribed power: True, False, or None when the frame does not tell.
    overpower: bool | None = None
    #: What the meter said about the overpower (ADPS amperes, STGE).
    overpower_detail: dict[str, str] = field(default_factory=dict)
    #: Labels of the table whose data is not a number.
    unreadable: tuple[str, ...] = ()


def map_frame(frame: TicFrame) -> MappedFrame:
    """The frame's values in the vocabulary; see the module docstring."""
    data = frame.as_dict()
    values: dict[str, float] = {}
    unreadable: list[str] = []
    for label, text in data.items():
        target = _NUMERIC.get(label)
        if target is None:
            continue
        if not text.isdigit():
            unreadable.append(label)
            continue
        values[target[0]] = float(text) * target[1]
    periods = [values[_NUMERIC[label][0]] for label in _HISTORIC_PERIODS
               if label in data and _NUMERIC[label][0] in values]
    if periods and "BASE" not in data:
        values["active_energy_import"] = sum(periods)
    ptec = data.get("PTEC")
    if ptec in _PTEC:
        values["tariff_period"] = float(_PTEC[ptec])
    tariff = ptec if ptec is not None else data.get("LTARF")
    overpower, detail = _overpower(frame.mode, data)
    return MappedFrame(
        mode=frame.mode, values=values, identity=_identity(frame.mode, data),
        tariff=tariff.strip() if tariff is not None else None, overpower=overpower,
        overpower_detail=detail, unreadable=tuple(unreadable))


def _identity(mode: TicMode, data: dict[str, str]) -> dict[str, str]:
    serial = data.get("ADCO" if mode is TicMode.HISTORIC else "ADSC")
    contract = data.get("OPTARIF" if mode is TicMode.HISTORIC else "NGTF")
    found = {"serial": serial, "prm": data.get("PRM"), "vtic": data.get("VTIC"),
             "contract": contract.strip() if contract is not None else None}
    return {key: value for key, value in found.items() if value}


def _overpower(mode: TicMode, data: dict[str, str]) -> tuple[bool | None, dict[str, str]]:
    if mode is TicMode.HISTORIC:
        detail = {label.lower(): data[label] for label in ("ADPS", "ADIR1", "ADIR2", "ADIR3")
                  if label in data}
        return bool(detail), detail
    stge = data.get("STGE")
    if stge is None:
        return None, {}
    try:
        bits = int(stge, 16)
    except ValueError:
        return None, {}
    return bool(bits & _STGE_OVERPOWER), {"stge": stge}
