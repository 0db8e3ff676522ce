"""The hub's answers, read within bounds: the bytes received and the bytes inflated.

An HTTP client that inflates for its caller does so without limit (httpx turned a fake hub's
521,845-byte answer into 512 MiB in a gateway), so the client reads answers raw (as
``sync.http`` streams them) and inflates them here, 64 KiB at a time,
dropping an answer the moment either count passes the limit of its kind. Memory then stays
within the limit whatever the hub sends. The hub sends plain answers; gzip is understood
because a proxy in front of it may compress.
"""

from __future__ import annotations

import zlib

from edge_agent.errors import HubAnswerTooLarge, HubUnreachable
from edge_agent.sync.http import Streamed

__all__ = ["ACCEPT_ENCODING", "read_answer"]

#: What the client asks for: the encodings ``read_answer`` inflates within bounds.
ACCEPT_ENCODING = "gzip"
_STEP = 64 * 1024
_NEVER = "dropped: a hub never sends that much"


async def read_answer(streamed: Streamed, limit: int, where: str) -> bytes:
    """The body of ``streamed``, inflated; HubAnswerTooLarge past ``limit`` bytes, sent or
    inflated, HubUnreachable if it does not decode. ``where`` starts every message."""
    declared = streamed.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HubAnswerTooLarge(f"{where} with {declared} bytes, beyond its limit of {limit}; "
                                "dropped unread")
    encoding = streamed.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in {"identity", "gzip"}:
        raise HubUnreachable(f"{where} with a body that does not decode: encoding "
                             f"{encoding!r}, which the gateway did not ask for")
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS) if encoding == "gzip" else None
    body = bytearray()
    received = 0
    async for chunk in streamed.aiter_raw():
        received += len(chunk)
        if received > limit:
            raise HubAnswerTooLarge(f"{where} with more than {limit} bytes; {_NEVER}")
        if inflater is None:
            body += chunk
        else:
            _inflate(inflater, chunk, body, limit, where)
    if inflater is not None and not inflater.eof:
        raise HubUnreachable(f"{where} with a body that does not decode: gzip cut short")
    return bytes(body)


def _inflate(inflater: zlib._Decompress, data: bytes, body: bytearray, limit: int,
             where: str) -> None:
    """Append what ``data`` inflates to, a step at a time, stopping past ``limit``."""
    while data:
        try:
            body += inflater.decompress(data, _STEP)
        except zlib.error as exc:
            raise HubUnreachable(f"{where} with a body that does not decode: {exc}") from None
        if len(body) > limit:
            raise HubAnswerTooLarge(f"{where} with more than {limit} bytes once inflated "
                                    f"(gzip); {_NEVER}")
        data = inflater.unconsumed_tail
