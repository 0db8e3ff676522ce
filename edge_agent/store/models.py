"""Value types of the outbox API: stream specifications, sequence ranges, batches, stats."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from edge_agent.records import Event, Reading

__all__ = [
    "DEFAULT_STREAMS",
    "Batch",
    "RecordType",
    "SeqRange",
    "StreamSpec",
    "StreamStats",
]

#: What a stream holds: ``Reading`` or ``Event`` records, never both.
RecordType = Literal["reading", "event"]


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """One stream of the outbox.

    Lower ``priority`` numbers leave first. Only ``evictable`` streams lose records when the
    disk quota is reached; the rest are kept whatever it costs.
    """

    name: str
    priority: int
    record_type: RecordType
    evictable: bool


#: Alarms jump every queue, events follow, bulk readings leave last and give way under quota.
DEFAULT_STREAMS: tuple[StreamSpec, ...] = (
    StreamSpec("alarms", 0, "event", evictable=False),
    StreamSpec("events", 1, "event", evictable=False),
    StreamSpec("readings", 9, "reading", evictable=True),
)


@dataclass(frozen=True, slots=True)
class SeqRange:
    """Sequence numbers given to one append, ``first`` to ``last`` inclusive.

    An empty append returns ``first == last + 1`` (the seq the next record will get), so
    ``len(rng)`` is 0 and the range is falsy.
    """

    stream: str
    first: int
    last: int

    def __len__(self) -> int:
        return max(0, self.last - self.first + 1)


@dataclass(frozen=True, slots=True)
class Batch:
    """Records of one stream waiting for the hub, in seq order, as ``(seq, record)`` pairs.

    Seqs inside a batch are contiguous: ``first_seq`` to ``last_seq``. A batch stays in the
    outbox until ``Outbox.ack`` removes it, so asking again returns the same records.
    """

    stream: str
    records: list[tuple[int, Reading | Event]]
    first_seq: int
    last_seq: int

    def __len__(self) -> int:
        return len(self.records)


@dataclass(frozen=True, slots=True)
class StreamStats:
    """Counters of one stream, read without scanning records.

    ``depth`` counts records waiting for the hub, ``oldest_ts_ms`` is the timestamp of the
    next record to leave (``None`` when empty), ``acked_seq`` the hub's high-water mark and
    ``evicted_total`` the records dropped by the disk quota before the hub acknowledged them.
    """

    name: str
    priority: int
    depth: int
    oldest_ts_ms: int | None
    last_seq: int
    acked_seq: int
    evicted_total: int
