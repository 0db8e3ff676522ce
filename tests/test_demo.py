"""The README's demo, run as a user runs it, for a few seconds: meters, hub, gate and flood."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from edge_agent.runtime import OUTBOX_FILE
from edge_agent.store import read_stats


def test_demo_runs_agent_and_hub_on_simulated_meters_and_stops_cleanly(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "simulators.demo", "--duration", "16", "--plain", "--data-dir",
         str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "COLUMNS": "80"},
    )
    assert result.returncode == 0, result.stderr
    assert "stopped. outbox:" in result.stdout
    # Plain output is whole lines, never wrapped mid-phrase, with each gate decision's reason.
    starts = re.compile(r"(field|hub|dashboard|agent|gate|pedestals|flood|inspect it): |stopped\. "
                        r"| +\d+ s  ")
    assert [line for line in result.stdout.splitlines() if not starts.match(line)] == []
    assert re.search(r"gate-a: badge \w+ granted \(granted\)", result.stdout), result.stdout
    assert re.search(r"gate-a: badge \w+ denied \(unknown_badge\)", result.stdout)
    stats = {s.name: s for s in read_stats(tmp_path / OUTBOX_FILE)}
    assert stats["readings"].last_seq > 100
    assert stats["readings"].acked_seq > 0, "readings reached the hub"
    last = result.stdout.splitlines()[-2]
    held = re.search(r"hub http://127\.0\.0\.1:\d+: (\d+) alarms, .*?(\d+) readings", last)
    assert held is not None, result.stdout
    assert int(held.group(2)) >= stats["readings"].acked_seq
    # The boater's card at 5 s opened the gate, and the decision (an alarm) reached the hub.
    gate = re.search(r"gate opened (\d+) times for (\d+) cards presented", last)
    assert gate is not None, result.stdout
    assert int(gate.group(1)) >= 1
    assert int(held.group(1)) >= 1
    # The water rose past the road's level: the rule closed the barrier, its alarm reached
    # the hub; the Linky and the LoRa sensors were heard.
    flood = re.search(r"road barrier closed (\d+) times by the flood rule, (\d+) LoRa uplinks",
                      last)
    assert flood is not None, result.stdout
    assert int(flood.group(1)) == 1
    assert re.search(r"rule alarms [1-9]", result.stdout), result.stdout
    assert re.search(r"car parks: P-capitainerie \d/4", last), result.stdout
    status = json.loads((tmp_path / "status.json").read_text(encoding="utf-8"))
    assert status["tic"][0]["frames"] > 0
    assert status["lora"][0]["sensors"][0]["uplinks"] > 0
    log = (tmp_path / "agent.log").read_text(encoding="utf-8")
    assert "stopped; outbox closed" in log
    assert "Traceback" not in log
    assert "Traceback" not in (tmp_path / "hub" / "hub.log").read_text(encoding="utf-8")


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (the hub and the agent of a running demo)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text(encoding="utf-8").rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _start_demo(data_dir: Path) -> tuple[subprocess.Popen[str], list[int], list[str]]:
    """The demo in a session of its own, once it prints its first progress line; its
    children and the lines it printed. Its stderr goes to ``stderr.txt`` beside its data."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir.parent / "stderr.txt").open("w", encoding="utf-8") as stderr:
        demo = subprocess.Popen(
            [sys.executable, "-m", "simulators.demo", "--plain", "--data-dir", str(data_dir)],
            stdout=subprocess.PIPE, stderr=stderr, text=True, start_new_session=True,
            env={**os.environ, "COLUMNS": "80"},
        )
    assert demo.stdout is not None
    lines = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        lines.append(demo.stdout.readline())
        if " s  outbox:" in lines[-1] or not lines[-1]:
            break
    children = _children(demo.pid)
    assert len(children) >= 2, f"hub and agent: {children} {lines}"
    return demo, children, lines


def _finish(demo: subprocess.Popen[str], data_dir: Path) -> tuple[str, str]:
    """What the demo printed after its first progress line, and its stderr, once it ends.

    Read through the same buffered reader as the first lines: ``communicate`` reads the pipe
    underneath it and would lose what that reader already holds.
    """
    assert demo.stdout is not None
    watchdog = threading.Timer(90, os.killpg, (demo.pid, signal.SIGKILL))
    watchdog.start()
    try:
        out = demo.stdout.read()
        demo.wait()
    finally:
        watchdog.cancel()
        demo.stdout.close()
    return out, (data_dir.parent / "stderr.txt").read_text(encoding="utf-8")


@pytest.mark.parametrize(("signum", "to_group"), [
    (signal.SIGINT, True),  # Ctrl-C in a terminal: the whole foreground group
    (signal.SIGHUP, True),  # the terminal closed
    (signal.SIGTERM, False),  # kill PID
], ids=["ctrl-c", "hangup", "kill"])
def test_a_stop_signal_stops_every_child_prints_the_summary_and_exits_0(
    tmp_path: Path, signum: signal.Signals, to_group: bool
) -> None:
    demo, children, _ = _start_demo(tmp_path / "demo")
    if to_group:
        os.killpg(demo.pid, signum)
    else:
        demo.send_signal(signum)
    out, err = _finish(demo, tmp_path / "demo")
    assert demo.returncode == 0, err
    assert "stopped. outbox:" in out
    assert "Traceback" not in err
    time.sleep(0.5)
    assert [pid for pid in children if _alive(pid)] == []


def test_an_agent_that_dies_first_stops_the_hub_too(tmp_path: Path) -> None:
    demo, children, _ = _start_demo(tmp_path / "demo")
    agent = next(pid for pid in children
                 if b"edge_agent" in Path(f"/proc/{pid}/cmdline").read_bytes())
    os.kill(agent, signal.SIGKILL)
    out, err = _finish(demo, tmp_path / "demo")
    assert demo.returncode == 1, err
    assert "the agent stopped (exit -9)" in out, err
    assert "stopped. outbox:" in out
    time.sleep(0.5)
    assert [pid for pid in children if _alive(pid)] == []


def test_the_demo_prints_the_dashboard_and_a_one_time_sign_in_link(tmp_path: Path) -> None:
    demo, _, lines = _start_demo(tmp_path / "demo")
    try:
        found = next(re.fullmatch(r"dashboard: (\S+) - sign in once with (\S+)\n", line)
                     for line in lines if line.startswith("dashboard: "))
        assert found is not None, lines
        dashboard, link = found.groups()
        with httpx.Client(timeout=30) as browser:
            assert browser.get(dashboard).headers["location"] == "/ui/signin"
            assert browser.get(link).status_code == 303
            assert "demo-marina" in browser.get(dashboard).text
            browser.cookies.clear()
            assert browser.get(link).status_code == 401  # once
    finally:
        os.killpg(demo.pid, signal.SIGINT)
        _finish(demo, tmp_path / "demo")
    assert demo.returncode == 0


def test_the_live_screen_fits_80_by_24_with_gate_decisions_and_hub_values(
    tmp_path: Path,
) -> None:
    from rich.console import Console

    from edge_agent.status import gateway_report
    from simulators.demo_screen import live_screen

    report = gateway_report(tmp_path)
    report["devices"] = [{"name": f"berth-a{unit}", "online": unit != 5} for unit in range(1, 6)]
    report["lora"] = [{"sensors": [{"online": True}] * 5}]
    report["tic"] = [{"name": "linky-office", "frames": 12}]
    now = 1_764_000_000_000
    hub = {
        "gateway": {"acked": {"readings": 1200, "events": 4, "alarms": 3}, "last_seen_ms": now},
        "latest": [{"device": f"berth-a{unit}", "quantity": quantity, "value": 230.1 + unit,
                    "ts_ms": now - 2000}
                   for unit in range(1, 5)
                   for quantity in ("voltage", "active_power", "active_energy_import")],
        "decisions": [{"device": "gate-a", "kind": kind, "ts_ms": now,
                       "attrs": {"reason": reason, "badge": "f5f697d3c0ffee11"}}
                      for kind, reason in (("access.denied", "revoked"),
                                           ("access.denied", "unknown_badge"),
                                           ("access.granted", "granted"))],
        "alarms": [{"rule": "flood-harbour-road", "cleared_ms": None}],
        "car_parks": [{"car_park": "P-capitainerie", "occupancy": 4, "capacity": 4,
                       "full": True}],
    }
    title = ("[bold]Ponton demo[/] 125 s (Ctrl-C to stop): berth A4 cable [red]cut[/] "
             "(cut 20-35 s), A5 absent; gate opened 12 times; water 0.61 m below the sensor, "
             "road [red]closed[/]")
    console = Console(width=80, height=24, record=True, force_terminal=True)
    console.print(live_screen(title, report, hub, "http://127.0.0.1:40123"))
    lines = console.export_text().splitlines()
    assert len(lines) <= 24, "\n".join(lines)
    assert all(len(line) <= 80 for line in lines)
    screen = "\n".join(lines)
    for reason in ("revoked", "unknown_badge", "granted"):
        assert reason in screen
    assert "berth-a4" in screen
    assert "234.1" in screen
    assert "offline: berth-a5" in screen
