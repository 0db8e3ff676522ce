"""Writer process for the outbox crash test: appends until it is killed.

Run as ``python outbox_writer.py OUTBOX_PATH SEED``. Record content is a pure function of
its seq (``reading_for``, ``event_for``), so the test can check every record after a kill
without knowing what the writer did. After each call returns, one line goes to stdout,
flushed: ``R <last seq>`` for readings, ``E <last seq>`` for events, ``A <seq>`` for an ack
of readings. A line on stdout therefore means "this is on disk".
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from edge_agent.records import Event, Quality, Reading
from edge_agent.store import Outbox

__all__ = ["BASE_TS_MS", "event_for", "main", "reading_for"]

#: 2026-11-25T00:00:00Z, so timestamps look like real ones.
BASE_TS_MS = 1_795_564_800_000
_QUANTITIES = ("active_energy_import", "active_power", "voltage_l1", "water_volume")


def reading_for(seq: int) -> Reading:
    """The reading the writer stores under ``seq`` of the readings stream."""
    return Reading(
        device=f"meter-{seq % 37:03d}",
        quantity=_QUANTITIES[seq % len(_QUANTITIES)],
        ts_ms=BASE_TS_MS + seq * 10,
        value=seq * 0.25 - 1000.0,
        quality=Quality(seq % len(Quality)),
    )


def event_for(seq: int) -> Event:
    """The event the writer stores under ``seq`` of the events stream."""
    return Event(
        kind="access.granted" if seq % 2 else "device.offline",
        device=f"gate-{seq % 5}",
        ts_ms=BASE_TS_MS + seq,
        attrs={"seq": seq, "badge": f"{seq * 7919:08x}", "zones": [seq % 3, "pontoon-é"]},
    )


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(path: Path, seed: int) -> None:
    """Append random-sized batches of readings and events forever, acking readings now and then."""
    rng = random.Random(seed)
    with Outbox.open(path) as outbox:
        last = {stat.name: stat.last_seq for stat in outbox.stats()}
        _say("ready")
        while True:
            first = last["readings"] + 1
            count = rng.randint(1, 400)
            rng_r = outbox.append_readings([reading_for(s) for s in range(first, first + count)])
            if (rng_r.first, rng_r.last) != (first, first + count - 1):
                sys.exit(f"readings got seqs {rng_r}, expected {first}..{first + count - 1}")
            last["readings"] = rng_r.last
            _say(f"R {rng_r.last}")
            if rng.random() < 0.5:
                first = last["events"] + 1
                count = rng.randint(1, 20)
                rng_e = outbox.append_events([event_for(s) for s in range(first, first + count)])
                if (rng_e.first, rng_e.last) != (first, first + count - 1):
                    sys.exit(f"events got seqs {rng_e}, expected {first}..{first + count - 1}")
                last["events"] = rng_e.last
                _say(f"E {rng_e.last}")
            if rng.random() < 0.2:
                # Mostly recent seqs, as a hub keeping up would send, sometimes stale ones.
                up_to = rng.randint(max(0, last["readings"] - 3000), last["readings"])
                outbox.ack("readings", up_to)
                _say(f"A {up_to}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
