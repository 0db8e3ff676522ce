"""What the demo shows: a live screen that fits 80×24, or plain lines for a pipe or a log.

Both are built from the two reports the demo polls (the gateway's status, the hub's operator
API), so they can be drawn from recorded reports in tests. The live screen keeps one line per
concern and tables without boxes, so the gate decisions and the hub's values stay on a Pi's
console; plain lines are never wrapped by rich (a pipe gets whole phrases, however long).
"""

from __future__ import annotations

from typing import Any

from rich.box import SIMPLE_HEAD
from rich.console import Group
from rich.table import Table

__all__ = ["decision_lines", "live_screen"]

#: The hub values shown per berth meter, with the unit and format each takes on screen.
_BERTH_VALUES = (("voltage", "V", "{:.1f}"), ("active_power", "power W", "{:.0f}"),
                 ("active_energy_import", "energy kWh", "{:.2f}"))


def _compact(*columns: str, title: str) -> Table:
    """A table without borders: a header line, then one line per row."""
    return Table(*columns, title=title, title_justify="left", box=SIMPLE_HEAD,
                 show_edge=False, pad_edge=False, padding=(0, 1), title_style="bold")


def _field_line(report: dict[str, Any]) -> str:
    """Devices in one or two lines: how many online, and which are not (and why in short)."""
    devices = report["devices"]
    online = sum(1 for d in devices if d["online"])
    down = [d["name"] for d in devices if d["online"] is False]
    tic = report.get("tic") or []
    lora = [s for source in report.get("lora") or [] for s in source["sensors"]]
    heard = sum(1 for s in lora if s["online"])
    return (f"devices: {online}/{len(devices)} online"
            + (f", [red]offline: {', '.join(down)}[/]" if down else "")
            + f"; LoRa {heard}/{len(lora)} heard"
            + "".join(f"; {line['name']} {line['frames']} frames" for line in tic))


def _outbox_line(report: dict[str, Any]) -> str:
    """What waits in the outbox and how far behind the hub is."""
    waiting = ", ".join(f"{s['depth']} {s['name']}" for s in report["streams"]) or "empty"
    sync = report["sync"]
    lag = sync["lag_ms"]
    failures = sync["consecutive_failures"]
    return (f"outbox: {waiting}; lag {'-' if lag is None else f'{lag / 1000:.0f} s'}"
            + (f"; [red]{failures} failed pushes[/] {sync['last_error']}" if failures else ""))


def _gate_table(hub: dict[str, Any]) -> Table:
    """The newest gate decisions the hub holds, with their reasons."""
    table = _compact("gate", "decision", "reason", "badge (pseudonym)",
                     title="gate decisions at the hub")
    for event in hub.get("decisions", []):
        attrs = event["attrs"]
        granted = event["kind"] == "access.granted"
        table.add_row(event["device"], "[green]granted[/]" if granted else "[red]denied[/]",
                      attrs.get("reason", ""), attrs.get("badge", "-")[:16])
    return table


def _values_table(hub: dict[str, Any]) -> Table:
    """The newest values of each berth meter at the hub, one line per meter."""
    table = _compact("meter", *(label for _, label, _ in _BERTH_VALUES), "age",
                     title="newest values at the hub")
    now = hub.get("gateway", {}).get("last_seen_ms") or 0
    rows: dict[str, dict[str, Any]] = {}
    for value in hub.get("latest", []):
        if value["device"].startswith("berth"):
            rows.setdefault(value["device"], {})[value["quantity"]] = value
    for device in sorted(rows):
        values = rows[device]
        cells = [fmt.format(values[q]["value"]) if q in values and values[q]["value"] is not None
                 else "-" for q, _, fmt in _BERTH_VALUES]
        newest = max(v["ts_ms"] for v in values.values())
        table.add_row(device, *cells, f"{max(0, now - newest) / 1000:.0f} s")
    return table


def _hub_line(hub: dict[str, Any], url: str) -> str:
    """What the hub holds, its rule alarms and car parks, in one line."""
    acked = hub.get("gateway", {}).get("acked", {})
    held = ", ".join(f"{count} {stream}" for stream, count in sorted(acked.items()))
    alarms = hub.get("alarms", [])
    open_now = [a["rule"] for a in alarms if a["cleared_ms"] is None]
    parks = ", ".join(f"{p['car_park']} {p['occupancy']}/{p['capacity']}"
                      + (" [red]full[/]" if p["full"] else "") for p in hub.get("car_parks", []))
    return (f"hub {url}: {held or 'nothing yet'}; alarms open: "
            f"{', '.join(open_now) or 'none'}; car park {parks or '-'}")


def live_screen(title: str, report: dict[str, Any], hub: dict[str, Any], url: str) -> Group:
    """The demo's screen: about 20 lines, so it fits 80×24 with the decisions and values."""
    return Group(title, _field_line(report), _outbox_line(report), _hub_line(hub, url),
                 _gate_table(hub), _values_table(hub))


def decision_lines(report: dict[str, Any], after_ms: int) -> list[tuple[int, str]]:
    """The gate decisions the agent took after ``after_ms``, as (time, line) oldest first."""
    access = report.get("access") or {}
    lines = []
    for gate, stats in (access.get("gates") or {}).items():
        last = stats["last"]
        if last and last["ts_ms"] > after_ms:
            verdict = "granted" if last["granted"] else "denied"
            lines.append((last["ts_ms"], f"{gate}: badge {last.get('badge', '')[:8]} "
                                         f"{verdict} ({last['reason']})"))
    return sorted(lines)
