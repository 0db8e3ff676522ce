"""The README's demo, run as a user runs it, for a few seconds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from edge_agent.runtime import OUTBOX_FILE
from edge_agent.store import read_stats


def test_demo_runs_the_agent_on_simulated_meters_and_stops_cleanly(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "simulators.demo", "--duration", "8", "--plain", "--data-dir",
         str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "stopped. outbox:" in result.stdout
    depth = {s.name: s.depth for s in read_stats(tmp_path / OUTBOX_FILE)}
    assert depth["readings"] > 100
    log = (tmp_path / "agent.log").read_text(encoding="utf-8")
    assert "stopped; outbox closed" in log
    assert "Traceback" not in log
