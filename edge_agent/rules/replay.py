"""The dry run behind ``edge-agent rules test``: readings from a CSV file through the rules.

The file has one reading per line, ``ts,device,quantity,value``, with ``ts`` in ISO 8601
(with its time zone) or UTC milliseconds, and an optional header line. Lines must be in time
order: durations, rates and silences are measured on these timestamps. Nothing is sent
anywhere.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

from edge_agent.errors import ConfigError
from edge_agent.quantities import lookup_quantity, suggest_quantity
from edge_agent.records import Quality, Reading
from edge_agent.rules.engine import RuleEngine
from edge_agent.rules.intents import Transition
from edge_agent.rules.models import RuleConfig

__all__ = ["COLUMNS", "read_readings", "replay"]

COLUMNS = ("ts", "device", "quantity", "value")


def read_readings(path: Path) -> list[Reading]:
    """Every reading of the CSV file; ConfigError names the line and what to fix."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    readings: list[Reading] = []
    for number, row in _rows(text):
        if not readings and row and row[0].strip().lower() == "ts":
            continue
        reading = _reading(row, f"{path.name}:{number}")
        if readings and reading.ts_ms < readings[-1].ts_ms:
            raise ConfigError(f"{path.name}:{number}: ts {row[0].strip()} is before the line "
                              f"above; sort the file by ts")
        readings.append(reading)
    if not readings:
        raise ConfigError(f"{path}: no readings; expected lines of {','.join(COLUMNS)}")
    return readings


def replay(rules: Iterable[RuleConfig], readings: list[Reading]) -> Iterator[Transition]:
    """Every transition, in time order; silences and durations end at their exact time.

    The clock starts at the first reading. Between two readings the engine is ticked at
    each moment something falls due (a silence long enough, a duration complete), rather
    than every second: a day of readings replays in milliseconds.
    """
    engine = RuleEngine(rules, readings[0].ts_ms)
    for reading in readings:
        while (due := engine.next_due()) is not None and due <= reading.ts_ms:
            yield from engine.tick(due)
        yield from engine.feed([reading])


def _rows(text: str) -> Iterator[tuple[int, list[str]]]:
    """Numbered CSV rows, blank lines and ``#`` comments left out."""
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            yield number, next(csv.reader([line]))


def _reading(row: list[str], where: str) -> Reading:
    if len(row) != len(COLUMNS):
        raise ConfigError(f"{where}: expected {len(COLUMNS)} columns ({','.join(COLUMNS)}), "
                          f"got {len(row)}")
    ts_text, device, quantity, value_text = (cell.strip() for cell in row)
    if not device:
        raise ConfigError(f"{where}: the device is empty")
    if lookup_quantity(quantity) is None:
        close = suggest_quantity(quantity)
        hint = f"; did you mean '{close}'?" if close else ""
        raise ConfigError(f"{where}: '{quantity}' is not in the quantity vocabulary{hint}")
    try:
        value = float(value_text)
    except ValueError:
        raise ConfigError(f"{where}: value '{value_text}' is not a number") from None
    quality = Quality.GOOD if math.isfinite(value) else Quality.INVALID
    return Reading(device, quantity, _timestamp(ts_text, where), value, quality)


def _timestamp(text: str, where: str) -> int:
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{where}: ts '{text}' is neither ISO 8601 "
                          f"(2026-12-03T10:15:00Z) nor milliseconds") from None
    if moment.tzinfo is None:
        raise ConfigError(f"{where}: ts '{text}' has no time zone; add Z or +01:00")
    return int(moment.timestamp() * 1000)
