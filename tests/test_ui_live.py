"""The live streams' shared reads: one database read per key and round serves every stream
of the process (sync_server/ui/live.py), and an answer is never older than asked."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from sync_server.ui.live import shared


class Reads:
    """Counts the reads and answers with their number."""

    def __init__(self, pause_s: float = 0.0) -> None:
        self.count = 0
        self._pause_s = pause_s
        self._lock = threading.Lock()

    def __call__(self) -> dict[str, str]:
        time.sleep(self._pause_s)
        with self._lock:
            self.count += 1
            return {"part": f"read {self.count}"}


def test_streams_with_the_same_key_share_one_read_per_round() -> None:
    reads = Reads()
    first = shared(("test-same", 1), reads, max_age_s=30.0)
    second = shared(("test-same", 1), reads, max_age_s=30.0)
    assert first() == second() == {"part": "read 1"}
    assert reads.count == 1


def test_an_answer_older_than_asked_is_read_again() -> None:
    reads = Reads()
    stream = shared(("test-age", 1), reads, max_age_s=0.05)
    assert stream() == {"part": "read 1"}
    time.sleep(0.1)
    assert stream() == {"part": "read 2"}


def test_different_keys_never_see_each_others_answers() -> None:
    ours, theirs = Reads(), Reads()
    assert shared(("test-keys", "fr"), ours, max_age_s=30.0)() == {"part": "read 1"}
    assert shared(("test-keys", "en"), theirs, max_age_s=30.0)() == {"part": "read 1"}
    assert (ours.count, theirs.count) == (1, 1)


def test_streams_asking_at_once_wait_for_the_one_read() -> None:
    reads = Reads(pause_s=0.2)
    stream = shared(("test-concurrent", 1), reads, max_age_s=30.0)
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: stream(), range(8)))
    assert answers == [{"part": "read 1"}] * 8
    assert reads.count == 1
