"""From a push request's bytes to typed records: content negotiation and limits.

The decoding itself is the agent's pure codecs (edge_agent/codecs), shared so that both ends
speak exactly one format; this module picks the codec from the request's headers, turns codec
errors into the hub's HTTP errors, and bounds what decoding may cost: the body is inflated
piece by piece and its JSON elements counted as they come (sync_server/json_bounds.py), so a
few kilobytes that would inflate into millions of values are refused at the first piece past
the budget, before the parser builds any of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from edge_agent.codecs.batch import (
    EVENTS_TYPE,
    PLAIN_TYPE,
    READINGS_TYPE,
    ReadingColumns,
    decode_events,
    decode_plain,
    decode_reading_columns,
)
from edge_agent.codecs.compression import ENCODINGS, inflate
from edge_agent.errors import CodecError
from edge_agent.errors import TooLarge as BodyTooLarge
from edge_agent.records import Event
from sync_server.errors import BadRequest, TooLarge, UnsupportedMediaType
from sync_server.json_bounds import MAX_DEPTH, ElementBudget, nested_deeper_than

__all__ = ["DecodedBatch", "decode_batch"]

#: Stream names as the outbox makes them: short, lower case.
_STREAM_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")

_MAX_SEQ = 2**63 - 1


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    """A push's records, all of one type, with consecutive seqs from ``first_seq``: readings
    as columns (ingest copies them to the database without an object each), events as
    objects."""

    stream: str
    record_type: Literal["reading", "event"]
    first_seq: int
    records: ReadingColumns | list[Event]


def decode_batch(
    stream: str, body: bytes, content_type: str, content_encoding: str, *, max_decoded: int
) -> DecodedBatch:
    """Decode a push body; 415 for formats the hub does not speak, 400/413 for bad bodies."""
    if not _STREAM_NAME.fullmatch(stream):
        raise BadRequest(f"stream name {stream!r} is not valid", code="invalid_request")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type not in (READINGS_TYPE, EVENTS_TYPE, PLAIN_TYPE):
        raise UnsupportedMediaType(
            f"content type {media_type or '(none)'!r} is not one of {READINGS_TYPE}, "
            f"{EVENTS_TYPE}, {PLAIN_TYPE}")
    encoding = content_encoding.strip().lower() or "identity"
    if encoding not in ENCODINGS:
        raise UnsupportedMediaType(
            f"content encoding {encoding!r} is not one of {', '.join(ENCODINGS)}")
    try:
        document = _inflate_within_budget(body, encoding, max_decoded)
        if nested_deeper_than(document, MAX_DEPTH):
            raise BadRequest(f"batch nested deeper than {MAX_DEPTH} levels",
                             code="malformed_batch")
        first_seq, records = _decode(media_type, document)
    except BodyTooLarge as exc:
        raise TooLarge(str(exc)) from exc
    except CodecError as exc:
        raise BadRequest(str(exc), code="malformed_batch") from exc
    if not records:
        raise BadRequest("a batch must hold at least one record", code="malformed_batch")
    if not 1 <= first_seq <= _MAX_SEQ - len(records):
        raise BadRequest(f"first_seq {first_seq} is out of range", code="malformed_batch")
    if isinstance(records, ReadingColumns):
        return DecodedBatch(stream, "reading", first_seq, records)
    return DecodedBatch(stream, "event", first_seq, records)


def _inflate_within_budget(body: bytes, encoding: str, max_decoded: int) -> bytes:
    budget = ElementBudget()
    pieces = []
    for piece in inflate(body, encoding, max_bytes=max_decoded):
        budget.feed(piece)
        pieces.append(piece)
    return b"".join(pieces)


def _decode(media_type: str, document: bytes) -> tuple[int, ReadingColumns | list[Event]]:
    if media_type == READINGS_TYPE:
        columns = decode_reading_columns(document)
        return columns.first_seq, columns
    if media_type == EVENTS_TYPE:
        return decode_events(document)
    first_seq, records = decode_plain(document)
    if records and isinstance(records[0], Event):
        return first_seq, [r for r in records if isinstance(r, Event)]
    return first_seq, ReadingColumns.of(first_seq, [r for r in records if not isinstance(r, Event)])
