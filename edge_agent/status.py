"""What a gateway is doing, read from its data directory by another process.

``edge-agent status`` and the demo show this: the outbox counters read from disk, and the
device health the running agent publishes in ``status.json`` every few seconds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table

from edge_agent.errors import StoreError
from edge_agent.records import now_ms
from edge_agent.runtime import LOCK_FILE, OUTBOX_FILE, STATUS_FILE, lock_is_held, stats_as_dict
from edge_agent.store import read_stats

__all__ = ["gateway_report", "report_view"]

#: A status file older than this means the agent is not running.
_STALE_AFTER_MS = 10_000


def gateway_report(data_dir: Path) -> dict[str, Any]:
    """Outbox statistics read from disk, plus the running agent's last status file."""
    outbox_path = data_dir / OUTBOX_FILE
    streams: list[dict[str, Any]] = []
    note = ""
    try:
        if outbox_path.exists():
            streams = [stats_as_dict(s) for s in read_stats(outbox_path)]
    except StoreError:
        if not lock_is_held(data_dir / LOCK_FILE):
            raise
        note = "the agent is opening (or upgrading) the outbox"
    status_path = data_dir / STATUS_FILE
    running: dict[str, Any] = {}
    if status_path.exists():
        running = json.loads(status_path.read_text(encoding="utf-8"))
    age_ms = now_ms() - running["updated_ms"] if running else None
    fresh = age_ms is not None and age_ms < _STALE_AFTER_MS
    return {
        "agent_running": fresh and not running.get("stopped", False),
        "status_age_ms": age_ms,
        "streams": streams,
        "note": note,
        "devices": running.get("devices", []),
    }


def report_view(report: dict[str, Any]) -> Group:
    """The status report as two tables, outbox streams and devices (also the demo's view)."""
    now = now_ms()
    streams = Table("stream", "priority", "waiting", "oldest", "last seq", "acked seq",
                    "evicted", title="outbox")
    for s in report["streams"]:
        oldest = s["oldest_ts_ms"]
        age = f"{(now - oldest) / 1000:.0f} s ago" if oldest is not None else "-"
        streams.add_row(s["name"], str(s["priority"]), str(s["depth"]), age,
                        str(s["last_seq"]), str(s["acked_seq"]), str(s["evicted_total"]))
    parts: list[RenderableType] = [streams]
    if report["note"]:
        parts.append(f"[yellow]{report['note']}[/]")
    if not report["agent_running"]:
        age = report["status_age_ms"]
        parts.append("[yellow]agent not running[/]" + (
            f" (last status {age / 1000:.0f} s ago)" if age is not None else ""))
    devices = Table(title="devices")
    for header in ("device", "bus", "unit", "state"):
        devices.add_column(header, no_wrap=True)
    for header in ("polls", "failed", "timeouts", "exceptions", "bad frames", "port errors"):
        devices.add_column(header, justify="right")
    devices.add_column("why not online", ratio=1)
    for d in report["devices"]:
        state = {True: "[green]online[/]", False: "[red]offline[/]",
                 None: "not polled yet"}[d["online"]]
        exceptions = sum(d["exceptions"].values())
        counts = (d["polls"], d["failed_polls"], d["timeouts"], exceptions, d["frame_errors"],
                  d["transport_errors"])
        devices.add_row(d["name"], d["bus"], str(d["unit"]), state, *map(str, counts),
                        "" if d["online"] else d["last_error"])
    parts.append(devices)
    return Group(*parts)
