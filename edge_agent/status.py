"""What a gateway is doing, read from its data directory by another process.

``edge-agent status`` and the demo show this: the outbox counters read from disk, the
device health and sync counters the running agent publishes in ``status.json`` every few
seconds, and the hub the gateway was provisioned for. Backlog and lag come from the outbox
itself, so they are right even when the agent is not running.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from edge_agent.errors import ConfigError, StoreError
from edge_agent.records import now_ms
from edge_agent.runtime import LOCK_FILE, OUTBOX_FILE, STATUS_FILE, lock_is_held, stats_as_dict
from edge_agent.store import StreamStats, read_stats
from edge_agent.sync.identity import load_identity, not_provisioned
from edge_agent.sync.loop import backlog_and_lag
from edge_agent.tables import fitting_table

__all__ = ["gateway_report", "report_view"]

#: A status file older than this means the agent is not running.
_STALE_AFTER_MS = 10_000


def gateway_report(data_dir: Path, config: Path | None = None) -> dict[str, Any]:
    """Outbox statistics read from disk, plus the running agent's last status file.

    ``config`` is the gateway file, named in the hints (``edge-agent provision --config ...``).
    """
    outbox_path = data_dir / OUTBOX_FILE
    stats: list[StreamStats] = []
    note = ""
    try:
        if outbox_path.exists():
            stats = read_stats(outbox_path)
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
        "agent_has_run": bool(running) or outbox_path.exists(),
        "status_age_ms": age_ms,
        "streams": [stats_as_dict(s) for s in stats],
        "note": note,
        "devices": running.get("devices", []),
        "sync": _sync_report(data_dir, stats, running.get("sync") or {}, config),
        "access": running.get("access"),
        "rules": running.get("rules"),
        "tic": running.get("tic", []),
        "lora": running.get("lora", []),
        "car_parks": running.get("car_parks"),
    }


def _sync_report(data_dir: Path, stats: list[StreamStats], published: dict[str, Any],
                 config: Path | None) -> dict[str, Any]:
    """The hub from ``identity.json``, backlog and lag from disk, counters from the agent."""
    backlog, lag_ms = backlog_and_lag(stats, now_ms())
    report: dict[str, Any] = {"last_success_ms": None, "last_error": "",
                              "consecutive_failures": 0, "note": "", **published,
                              "hub": None, "backlog": backlog, "lag_ms": lag_ms}
    try:
        identity = load_identity(data_dir)
    except ConfigError as exc:
        report["note"] = str(exc)
        return report
    if identity is None:
        report["note"] = not_provisioned(config)
    else:
        report["hub"] = identity.hub_url
    return report


def _age(ms: float) -> str:
    """A duration as a person reads it: ``42 s``, ``17 min``, ``5.2 h``, ``12.0 d``."""
    seconds = ms / 1000
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} d"


def _sync_view(sync: dict[str, Any], now: int) -> list[RenderableType]:
    table = fitting_table("hub", "backlog", "lag", "last success", "failures", "last error",
                          title="sync")
    success = sync["last_success_ms"]
    error = sync["last_error"] or "-"
    failures = sync["consecutive_failures"]
    table.add_row(
        sync["hub"] or "-",
        str(sync["backlog"]),
        _age(sync["lag_ms"]) if sync["lag_ms"] is not None else "-",
        f"{_age(now - success)} ago" if success is not None else "never",
        f"[red]{failures}[/]" if failures else "0",
        error if failures else f"[dim]{error}[/]",
    )
    parts: list[RenderableType] = [table]
    if sync["note"]:
        parts.append(f"[yellow]{sync['note']}[/]")
    return parts


def report_view(report: dict[str, Any]) -> Group:
    """The status report as tables: outbox streams, sync and devices (also the demo's view)."""
    now = now_ms()
    streams = fitting_table("stream", "priority", "waiting", "oldest", "last seq", "acked seq",
                            "evicted", title="outbox")
    for s in report["streams"]:
        oldest = s["oldest_ts_ms"]
        age = f"{_age(now - oldest)} ago" if oldest is not None else "-"
        streams.add_row(s["name"], str(s["priority"]), str(s["depth"]), age,
                        str(s["last_seq"]), str(s["acked_seq"]), str(s["evicted_total"]))
    parts: list[RenderableType] = [streams]
    if report["note"]:
        parts.append(f"[yellow]{report['note']}[/]")
    parts += _sync_view(report["sync"], now)
    if not report["agent_running"]:
        age = report["status_age_ms"]
        parts.append("[yellow]agent not running[/]" + (
            f" (last status {age / 1000:.0f} s ago)" if age is not None else ""))
    devices = fitting_table("device", "bus", "unit", "state", "polls", "failed", "late",
                            "errors", title="devices")
    why: list[str] = []
    for d in report["devices"]:
        state = {True: "[green]online[/]", False: "[red]offline[/]",
                 None: "not polled yet"}[d["online"]]
        devices.add_row(d["name"], d["bus"], str(d["unit"]), state, str(d["polls"]),
                        str(d["failed_polls"]), str(d.get("late", 0)), _device_errors(d))
        if d["online"] is False and d["last_error"]:
            why.append(f"{d['name']}: {d['last_error']}")
    parts.append(devices)
    parts += [Text(line, style="red") for line in why]  # a sentence wraps between words
    if report.get("access"):
        parts += _access_view(report["access"], now)
    if report.get("rules") and report["rules"]["rules"]:
        parts.append(_rules_view(report["rules"], now))
    if report.get("tic"):
        parts.append(_tic_view(report["tic"], now))
    for source in report.get("lora") or []:
        parts.append(_lora_view(source, now))
    if report.get("car_parks"):
        parts.append(_car_parks_view(report["car_parks"]))
    return Group(*parts)


def _device_errors(device: dict[str, Any]) -> str:
    """A device's failures by kind, only those that happened: ``4 timeouts, 1 bad frame``."""
    counts = (("timeouts", device["timeouts"]), ("exceptions", sum(device["exceptions"].values())),
              ("bad frames", device["frame_errors"]), ("port errors", device["transport_errors"]))
    return ", ".join(f"{count} {kind}" for kind, count in counts if count) or "-"


def _car_parks_view(parks: list[dict[str, Any]]) -> Table:
    """Occupancy per car park and the counters that tell drift (fits 80 columns)."""
    table = fitting_table("car park", "occupied", "free", "state", "in", "out", "clamps", "resets",
                  "spots", title="car parks")
    for park in parks:
        state = "[red]full[/]" if park["full"] else "[green]available[/]"
        spots = (f"{park['spots_occupied']}/{park['spots_known']}" if park["spots"] else "-")
        table.add_row(park["name"], f"{park['occupancy']}/{park['capacity']}",
                      str(park["free"]), state, str(park["entries"]), str(park["exits"]),
                      str(park["clamps"]), str(park["resets"]), spots)
    return table


def _rules_view(rules: dict[str, Any], now: int) -> Table:
    """Each rule's state, raised alarms first in red; latches and failed actions below."""
    actions = rules["actions"]
    latches = ", ".join(f"{latch['board']}/{latch['channel']} {'on' if latch['on'] else 'off'}"
                        for latch in rules["latches"]) or "none"
    table = fitting_table("rule", "kind", "watches", "state", "since", "value", "raised", "cleared",
                  title="rules", caption=f"latches held: {latches}; actions: "
                  f"{actions['performed']} done, {actions['failures']} failed, "
                  f"{actions['no_lora_source']} without a LoRa source")
    for rule in sorted(rules["rules"], key=lambda r: r["state"] == "ok"):
        state = rule["state"]
        colour = {"raised": "red", "clearing": "red", "pending": "yellow"}.get(state, "green")
        since = rule["raised_ms"]
        table.add_row(rule["name"], rule["kind"],
                      f"{rule['device']} {rule['quantity'] or ''}".strip(),
                      f"[{colour}]{state}[/]", f"{_age(now - since)} ago" if since else "-",
                      "-" if rule["value"] is None else f"{rule['value']:g}",
                      str(rule["raises"]), str(rule["clears"]))
    return table


def _lora_view(source: dict[str, Any], now: int) -> Table:
    """Per LoRa sensor: heard or silent, uplinks, decode errors; the broker's counters below."""
    broker = "[green]connected[/]" if source["connected"] else (
        f"[red]not connected[/] {source['last_error']}")
    table = fitting_table("sensor", "state", "uplinks", "errors", "RSSI", "battery", "last uplink",
                  title=f"LoRa {source['name']}: {source['broker']}",
                  caption=f"broker {broker}; messages {source['messages']}, unknown devices "
                  f"{source['unknown_devices']}, malformed {source['malformed']}, duplicates "
                  f"{source['duplicates']}")
    for sensor in source["sensors"]:
        state = "[green]heard[/]" if sensor["online"] else "[red]silent[/]"
        last = sensor["last_seen_ms"] if sensor["uplinks"] else None
        table.add_row(sensor["name"], state, str(sensor["uplinks"]),
                      str(sensor["decode_errors"]),
                      "-" if sensor["rssi"] is None else f"{sensor['rssi']:.0f}",
                      "[red]low[/]" if sensor["battery_low"] else "ok",
                      f"{_age(now - last)} ago" if last else "never")
    return table


def _tic_view(lines: list[dict[str, Any]], now: int) -> Table:
    """Per Linky: the mode found, the frames, and what the line dropped."""
    table = fitting_table("TIC", "state", "mode", "frames", "dropped", "last frame",
                          title="Linky TIC")
    for line in lines:
        state = "[green]open[/]" if line["online"] else f"[red]closed[/] {line['last_error']}"
        mode = f"{line['mode'] or '?'} {line['baudrate'] or '?'} Bd"
        last = line["last_frame_ms"]
        dropped = (f"{line['bad_checksums']} bad sums, {line['interrupted_frames']} cut, "
                   f"{line['garbage_bytes']} B garbage")
        table.add_row(line["name"], state, mode, str(line["frames"]), dropped,
                      f"{_age(now - last)} ago" if last else "never")
    return table


def _access_view(access: dict[str, Any], now: int) -> list[RenderableType]:
    """Policy in force, and per gate the counts and the last decision with its reason."""
    policy = access["policy"]
    if policy is None:
        line = f"[red]no access policy[/]: {access['problem']} (every badge is denied)"
    else:
        expired = now >= policy["expires_at_ms"]
        state = "[red]expired: gates in fail mode[/]" if expired else "valid"
        line = (f"access policy version {policy['version']}, {state}, {policy['badges']} "
                f"badges, {policy['gates']} gates")
    gates = fitting_table("gate", "granted", "denied", "relay failures", "last decision", "when",
                  title="access")
    for name, stats in access["gates"].items():
        last = stats["last"]
        decision = "-"
        if last:
            colour = "green" if last["granted"] else "red"
            decision = f"[{colour}]{last['reason']}[/] {last.get('badge', '')[:8]}"
        when = f"{_age(now - last['ts_ms'])} ago" if last else "-"
        gates.add_row(name, str(stats["granted"]), str(stats["denied"]),
                      str(stats["actuator_failures"]), decision, when)
    parts: list[RenderableType] = [line, gates]
    for session in access["sessions"]:
        parts.append(f"session at {session['pedestal']}: badge {session['badge'][:8]} since "
                     f"{_age(now - session['started_ms'])}")
    return parts
