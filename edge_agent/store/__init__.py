"""The agent's durable store: the SQLite outbox of records waiting for the hub."""

from edge_agent.store.models import (
    DEFAULT_STREAMS,
    Batch,
    RecordType,
    SeqRange,
    StreamSpec,
    StreamStats,
)
from edge_agent.store.outbox import Outbox
from edge_agent.store.readonly import read_stats

__all__ = [
    "DEFAULT_STREAMS",
    "Batch",
    "Outbox",
    "RecordType",
    "SeqRange",
    "StreamSpec",
    "StreamStats",
    "read_stats",
]
