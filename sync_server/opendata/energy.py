"""Monthly energy per site as CSV: active energy imported (kWh) by each site's meters, over
the last twelve ended months of the territory's time zone.

A meter is a device with ``active_energy_import`` readings (Modbus meters, a Linky's base
index); per-phase and per-tariff indexes (``_l1``, ``_1`` …) are parts of it and are not
added again. A month's energy is the rise of the meter's index: its highest value of the
month minus its highest value of the month before (minus its lowest of the month, for the
first month it was read, or when the index went down: a meter replaced). Ended months only:
a published figure never changes.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime

from sqlalchemy import Connection

from edge_agent.records import now_ms
from sync_server.access.policy import territory_timezone
from sync_server.access.reports import month_range
from sync_server.queries import Scope, gateway_health, latest_values, time_series

__all__ = ["ENERGY_QUANTITY", "MONTHS", "ended_months", "energy_csv"]

ENERGY_QUANTITY = "active_energy_import"
MONTHS = 12


def ended_months(now: datetime, count: int) -> list[str]:
    """The ``count`` months before ``now``'s, oldest first, as ``YYYY-MM``."""
    index = now.year * 12 + now.month - 1
    return [f"{m // 12:04d}-{m % 12 + 1:02d}" for m in range(index - count, index)]


def energy_csv(conn: Connection, territory: int) -> str:
    """``site,month,kwh,meters``: one line per site and month some meter was read in."""
    scope = Scope(territory)
    timezone = territory_timezone(conn, territory)
    months = ended_months(datetime.fromtimestamp(now_ms() / 1000, timezone), MONTHS + 1)
    site_of = {row["gateway"]: row["site"] for row in gateway_health(conn, territory)}
    totals: dict[tuple[str, str], list[float]] = {}
    for meter in latest_values(conn, scope, gateway=None, device=None,
                               quantity=ENERGY_QUANTITY):
        previous_max: float | None = None
        for month in months:
            start, end = month_range(month, timezone)
            # One bucket over the whole month: wider than any timestamp since 1970.
            buckets = time_series(conn, scope, gateway=meter["gateway"], device=meter["device"],
                                  quantity=ENERGY_QUANTITY, from_ms=start, to_ms=end,
                                  bucket_s=end // 1000 + 1)
            if not buckets:
                previous_max = None
                continue
            low, high = float(buckets[0]["min"]), float(buckets[0]["max"])
            rise = high - (previous_max if previous_max is not None and previous_max <= high
                           else low)
            previous_max = high
            if month == months[0]:
                continue  # read only as the base of the first published month
            total = totals.setdefault((site_of.get(meter["gateway"], ""), month), [0.0, 0])
            total[0] += rise
            total[1] += 1
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(("site", "month", "kwh", "meters"))
    for (site, month), (kwh, meters) in sorted(totals.items()):
        writer.writerow((site, month, f"{kwh:.3f}", int(meters)))
    return out.getvalue()
