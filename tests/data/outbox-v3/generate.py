"""Writes outbox.sqlite and records.json with the agent of commit 3254eed^ (schema v3).

That commit is the last one before schema step 4 (``create_deliveries``). Run it against
that commit's code, never this one's, so the file is what a gateway of that release wrote:

    git archive 3254eed^ edge_agent | tar -x -C /tmp/old-ponton
    PYTHONPATH=/tmp/old-ponton .venv/bin/python tests/data/outbox-v3/generate.py
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from edge_agent.records import Event, Quality, Reading
from edge_agent.store import Outbox

HERE = Path(__file__).parent
T0 = 1_796_000_000_000  # 2026-12-01, a gateway with a synchronised clock


def main() -> None:
    path = HERE / "outbox.sqlite"
    path.unlink(missing_ok=True)
    with Outbox.open(path) as outbox:
        outbox.append_readings([
            Reading(f"berth-{n % 3}", "energy_import_wh", T0 + n * 1000, 1000.0 + n * 0.25,
                    Quality.GOOD if n % 7 else Quality.SUSPECT)
            for n in range(300)])
        outbox.append_events([Event("access.granted", "gate-a", T0 + n, {
            "badge": f"p{n:04x}", "gate": "Quai d'Honneur – ponton B"}) for n in range(20)])
        outbox.append_events([
            Event("alarm.raised", "level-d982", T0, {"rule": "crue", "level_m": 2.5}),
            Event("alarm.cleared", "level-d982", T0 + 60_000, {"rule": "crue"})],
            stream="alarms")
        outbox.ack("readings", 100)  # the hub took the first hundred
        outbox.ack("events", 5)
        waiting = {}
        for stream in ("alarms", "events", "readings"):
            batch = outbox.next_batch(stream=stream, limit=10_000)
            assert batch is not None
            waiting[stream] = [[seq, type(record).__name__, dataclasses.asdict(record)]
                               for seq, record in batch.records]
    (HERE / "records.json").write_text(json.dumps(waiting, ensure_ascii=False, indent=0) + "\n",
                                       encoding="utf-8")


if __name__ == "__main__":
    main()
