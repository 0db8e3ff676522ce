"""The live streams' shared reads: one database read per key and round serves every stream
of the process (sync_server/ui/live.py), and an answer is never older than asked."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from sync_server.ui.live import Rows, changes, shared


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


def test_a_part_is_sent_again_only_when_it_changes() -> None:
    sent: dict[str, str | Rows] = {}
    assert changes("alarms", "<li>a</li>", sent) == [("alarms", "<li>a</li>")]
    assert changes("alarms", "<li>a</li>", sent) == []
    assert changes("alarms", "<li>b</li>", sent) == [("alarms", "<li>b</li>")]


def test_a_table_sends_its_changed_rows_and_is_whole_again_when_rows_come_or_go() -> None:
    sent: dict[str, str | Rows] = {}
    first = Rows("<table>a1 b1</table>", {"gw-a": "<tr>a1</tr>", "gw-b": "<tr>b1</tr>"})
    assert changes("gateways", first, sent) == [("gateways", first.whole)]
    same = Rows("<table>a1 b1</table>", dict(first.rows))
    assert changes("gateways", same, sent) == []
    one_row = Rows("<table>a1 b2</table>", {"gw-a": "<tr>a1</tr>", "gw-b": "<tr>b2</tr>"})
    assert changes("gateways", one_row, sent) == [("gw-b", "<tr>b2</tr>")]
    grown = Rows("<table>a1 b2 c1</table>", {**one_row.rows, "gw-c": "<tr>c1</tr>"})
    assert changes("gateways", grown, sent) == [("gateways", grown.whole)]
    moved = Rows("<table>b2 a1 c1</table>", {k: grown.rows[k] for k in ("gw-b", "gw-a", "gw-c")})
    assert changes("gateways", moved, sent) == [("gateways", moved.whole)]
