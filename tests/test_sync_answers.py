"""The gateway trusts nothing about a hub's answer, its size included.

A fake hub (a real HTTP server on 127.0.0.1) sends compression bombs and oversize answers;
the client reads each answer raw and inflates it itself, both bounded by the limit of its
kind, and drops what goes beyond with HubAnswerTooLarge and a counter. Memory is checked by
the peak of Python's allocations meanwhile (the fake hub's included: it writes a slice at a
time), never by timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from edge_agent.codecs.compression import compress
from edge_agent.errors import HubAnswerTooLarge, HubUnreachable
from edge_agent.sync.client import ANSWER_LIMIT, BUNDLE_ANSWER_LIMIT, HubClient
from tests.test_sync_agent import an_identity

MIB = 1024 * 1024
#: What the fake hub writes at once, waiting for the gateway to take it.
_SLICE = 64 * 1024


def gzip_bomb(inflated_bytes: int) -> bytes:
    """Gzip of ``inflated_bytes`` zeros (about a thousandth of that), built in slices."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(MIB)
    parts = [deflater.compress(zeros) for _ in range(inflated_bytes // MIB)]
    return b"".join([*parts, deflater.flush()])


def http_answer(body: bytes, *, encoding: str | None = None, length: bool = True) -> bytes:
    """A raw HTTP/1.1 200 answer; without ``length`` it ends when the server closes."""
    head = ["HTTP/1.1 200 OK", "Content-Type: application/json", "Connection: close"]
    if encoding:
        head.append(f"Content-Encoding: {encoding}")
    if length:
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@asynccontextmanager
async def fake_hub(answer: bytes) -> AsyncIterator[str]:
    """A hub that answers every request with ``answer`` (raw bytes) and closes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        with contextlib.suppress(ConnectionError):  # the gateway hangs up past its limit
            for start in range(0, len(answer), _SLICE):
                writer.write(answer[start:start + _SLICE])
                await writer.drain()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


async def peak_memory(call: Callable[[], Awaitable[object]]) -> tuple[Exception | None, int]:
    """What awaiting ``call()`` raised, and the peak of Python's allocations meanwhile."""
    error: Exception | None = None
    tracemalloc.start()
    try:
        await call()
    except Exception as exc:  # returned for the test to check
        error = exc
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return error, peak


async def test_a_gzip_bomb_for_acks_is_dropped_after_its_limit() -> None:
    bomb = gzip_bomb(64 * MIB)  # about 64 KiB on the wire, 64 MiB once inflated
    async with fake_hub(http_answer(bomb, encoding="gzip")) as url, \
            HubClient(an_identity(url)) as client:
        error, peak = await peak_memory(client.acked)
        assert isinstance(error, HubAnswerTooLarge), error
        assert f"with more than {ANSWER_LIMIT} bytes once inflated (gzip); dropped" in str(error)
        assert client.oversize_answers == 1
    assert peak < 4 * MIB  # inflated whole, it would have taken 64 MiB


async def test_a_bundle_bomb_is_dropped_at_the_bundle_limit() -> None:
    inflated = BUNDLE_ANSWER_LIMIT + 32 * MIB
    bomb = gzip_bomb(inflated)
    async with fake_hub(http_answer(bomb, encoding="gzip")) as url, \
            HubClient(an_identity(url)) as client:
        error, peak = await peak_memory(lambda: client.pull_bundle("policy", None))
        assert isinstance(error, HubAnswerTooLarge), error
        assert client.oversize_answers == 1
    assert peak < BUNDLE_ANSWER_LIMIT + 4 * MIB < inflated


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "until-close"])
async def test_an_oversize_plain_answer_is_dropped_reading_no_more_than_its_limit(
    declared: bool
) -> None:
    body = b'{"acked": {}, "padding": "' + b"x" * (8 * MIB) + b'"}'
    async with fake_hub(http_answer(body, length=declared)) as url, \
            HubClient(an_identity(url)) as client:
        error, peak = await peak_memory(client.acked)
        assert isinstance(error, HubAnswerTooLarge), error
        assert (f"beyond its limit of {ANSWER_LIMIT}" if declared
                else f"with more than {ANSWER_LIMIT} bytes; dropped") in str(error)
        assert client.oversize_answers == 1
    # Read to the limit and a socket read past it at most, never the 8 MiB.
    assert peak < (MIB if declared else ANSWER_LIMIT + MIB)


async def test_answers_within_their_limit_are_read_plain_or_inflated() -> None:
    acked = b'{"acked": {"alarms": 3}}'
    # Just under the limit once inflated: inflated a step at a time, and whole.
    padded = b'{"acked": {"alarms": 3}, "note": "' + b"x" * (ANSWER_LIMIT - 100) + b'"}'
    for answer in (http_answer(acked), http_answer(compress(acked, "gzip"), encoding="gzip"),
                   http_answer(compress(padded, "gzip"), encoding="gzip")):
        async with fake_hub(answer) as url, HubClient(an_identity(url)) as client:
            assert await client.acked() == {"alarms": 3}
            assert client.oversize_answers == 0


async def test_an_answer_in_an_unknown_or_broken_encoding_is_a_transport_failure() -> None:
    for answer in (http_answer(b"\x00" * 40, encoding="br"),
                   http_answer(b"not gzip at all", encoding="gzip"),
                   http_answer(compress(b'{"acked": {}}', "gzip")[:-8], encoding="gzip")):
        async with fake_hub(answer) as url, HubClient(an_identity(url)) as client:
            with pytest.raises(HubUnreachable, match="does not decode"):
                await client.acked()
