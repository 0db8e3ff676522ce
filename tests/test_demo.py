"""The README's demo, run as a user runs it, for a few seconds: meters, hub, gate and flood."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from edge_agent.runtime import OUTBOX_FILE
from edge_agent.store import read_stats


def test_demo_runs_agent_and_hub_on_simulated_meters_and_stops_cleanly(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "simulators.demo", "--duration", "16", "--plain", "--data-dir",
         str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "COLUMNS": "300"},
    )
    assert result.returncode == 0, result.stderr
    assert "stopped. outbox:" in result.stdout
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
