"""When the next daily reset falls, in UTC milliseconds, from a local wall-clock time. Pure.

Local time follows the zone's rules: a reset at 04:00 Europe/Paris is 02:00 UTC in summer
and 03:00 UTC in winter. A time the spring change skips (02:30 on the last Sunday of March)
falls an hour later on that day; one the autumn change repeats falls once, at its first
occurrence.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

__all__ = ["next_reset_ms"]


def next_reset_ms(after_ms: int, at: dt.time, zone: str) -> int:
    """The first instant strictly after ``after_ms`` whose local time in ``zone`` is ``at``."""
    tz = zoneinfo.ZoneInfo(zone)
    local = dt.datetime.fromtimestamp(after_ms / 1000, dt.UTC).astimezone(tz)
    day = local.date() - dt.timedelta(days=1)
    while True:
        candidate = dt.datetime.combine(day, at, tzinfo=tz)
        utc_ms = int(candidate.timestamp() * 1000)
        if utc_ms > after_ms:
            return utc_ms
        day += dt.timedelta(days=1)
