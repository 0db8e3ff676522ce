"""The hub connection (edge_agent/sync/http.py) against scripted hubs on real sockets.

Each scripted hub is a TCP server on 127.0.0.1 that reads requests and writes raw bytes
back, then keeps the connection, closes it, resets it or goes silent, as the test says: the
answers a NAT, a 4G link or a broken proxy give. Refusal, a garbled status line, a hub that
never answers and TLS failures are in tests/test_sync_agent.py and tests/test_tls.py; answer
sizes in tests/test_sync_answers.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Literal

import pytest

from edge_agent.codecs.compression import compress
from edge_agent.errors import HubAnswerTooLarge, HubRejected, HubUnreachable
from edge_agent.sync.client import ANSWER_LIMIT, HubClient
from tests.helpers.local_server import local_server
from tests.test_sync_agent import an_identity

Ending = Literal["keep", "close", "reset", "stall"]
#: What a scripted hub does for request ``n`` (from 0) of connection ``c`` (from 0): the
#: bytes it writes, then what it does with the connection.
Script = Callable[[int, int], tuple[bytes, Ending]]

ACKED = b'{"acked": {"readings": 5}}'


def answer(body: bytes = ACKED, *, status: str = "200 OK", head: tuple[str, ...] = ()) -> bytes:
    """A raw HTTP/1.1 answer with a Content-Length."""
    lines = [f"HTTP/1.1 {status}", "Content-Type: application/json", *head,
             f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked(*chunks: bytes, head: tuple[str, ...] = ()) -> bytes:
    """A raw HTTP/1.1 200 answer in chunked transfer encoding, a chunk per argument."""
    lines = ["HTTP/1.1 200 OK", "Content-Type: application/json", *head,
             "Transfer-Encoding: chunked"]
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks) + b"0\r\n\r\n"
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class Scripted:
    """A running scripted hub: its URL and what it saw."""

    url: str
    connections: int = 0
    targets: list[str] = field(default_factory=list)
    heads: list[bytes] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)


@asynccontextmanager
async def scripted_hub(script: Script, path: str = "") -> AsyncIterator[Scripted]:
    """A hub on 127.0.0.1 answering as ``script`` says; ``path`` ends its URL."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection, hub.connections = hub.connections, hub.connections + 1
        try:
            for number in range(100):
                head = await reader.readuntil(b"\r\n\r\n")
                hub.heads.append(head)
                hub.targets.append(head.split(b" ", 2)[1].decode())
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                hub.bodies.append(await reader.readexactly(length))
                raw, ending = script(connection, number)
                writer.write(raw)
                await writer.drain()
                if ending == "stall":
                    await asyncio.sleep(3600)
                if ending == "reset":
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()
                    return
                if ending == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async with local_server(handle) as port:
        hub = Scripted(f"http://127.0.0.1:{port}{path}")
        yield hub


async def test_requests_share_one_kept_alive_connection() -> None:
    refusal = answer(b'{"error": "busy"}', status="503 Service Unavailable",
                     head=("Retry-After: 3",))
    async with scripted_hub(lambda _c, n: (refusal if n == 1 else answer(), "keep")) as hub, \
            HubClient(an_identity(hub.url)) as client:
        assert await client.acked() == {"readings": 5}
        with pytest.raises(HubRejected, match="503 busy"):
            await client.acked()
        refused_for = client.retry_after_s
        both = await asyncio.gather(client.acked(), client.acked())
        assert list(both) == [{"readings": 5}] * 2
        assert (refused_for, client.retry_after_s) == (3, None)
    assert hub.connections == 1
    assert hub.targets == ["/v1/gateway/streams"] * 4
    head = hub.heads[0].decode("latin-1").lower()
    assert f"host: {hub.url.removeprefix('http://')}\r\n" in head
    assert "authorization: bearer pgw_test\r\n" in head
    assert "accept-encoding: gzip\r\n" in head


async def test_a_connection_the_hub_closed_is_replaced() -> None:
    """After its answer (uvicorn closes idle kept-alive connections after 5 s) or as the
    next request arrives, unanswered: either way the request is answered on a new one."""
    for ending in ("close", "hang-up"):
        def script(_connection: int, number: int, ending: str = ending) -> tuple[bytes, Ending]:
            if ending == "close":
                return answer(), "close"
            return (answer(), "keep") if number == 0 else (b"", "close")

        async with scripted_hub(script) as hub, HubClient(an_identity(hub.url)) as client:
            for _ in range(3):
                assert await client.acked() == {"readings": 5}
        assert hub.connections == 3, ending


async def test_a_new_connection_hung_up_without_an_answer_is_not_tried_again() -> None:
    async with scripted_hub(lambda _c, _n: (b"", "close")) as hub, \
            HubClient(an_identity(hub.url)) as client:
        with pytest.raises(HubUnreachable, match="closed without an answer"):
            await client.acked()
    assert hub.connections == 1


_PACKED = compress(ACKED, "gzip")


@pytest.mark.parametrize("raw", [
    chunked(ACKED[:5], ACKED[5:12], ACKED[12:]),
    chunked(_PACKED[:10], _PACKED[10:], head=("Content-Encoding: gzip",)),
], ids=["plain", "gzip"])
async def test_chunked_answers_are_read_whole_plain_or_gzip(raw: bytes) -> None:
    async with scripted_hub(lambda _c, _n: (raw, "keep")) as hub, \
            HubClient(an_identity(hub.url)) as client:
        assert await client.acked() == {"readings": 5}
        assert await client.acked() == {"readings": 5}
    assert hub.connections == 1


async def test_a_chunked_answer_past_its_limit_is_dropped_and_the_connection_too() -> None:
    big = chunked(*[b"x" * 65_536] * (ANSWER_LIMIT // 65_536 + 2))
    async with scripted_hub(lambda c, _n: (big if c == 0 else answer(), "keep")) as hub, \
            HubClient(an_identity(hub.url)) as client:
        with pytest.raises(HubAnswerTooLarge, match=f"more than {ANSWER_LIMIT} bytes"):
            await client.acked()
        assert await client.acked() == {"readings": 5}
        assert client.oversize_answers == 1
    assert hub.connections == 2


@pytest.mark.parametrize("ending", ["reset", "close"])
async def test_an_answer_cut_in_the_middle_is_hub_unreachable(ending: Ending) -> None:
    cut = answer(b'{"acked": {"readings": 5}, "padding": "' + b"x" * 1000 + b'"}')[:200]
    async with scripted_hub(lambda _c, _n: (cut, ending)) as hub, \
            HubClient(an_identity(hub.url)) as client:
        with pytest.raises(HubUnreachable, match="unreachable for GET /v1/gateway/streams"):
            await client.acked()
        with pytest.raises(HubUnreachable):  # nothing half-read is left on the connection
            await client.acked()
    assert hub.connections == 2


async def test_an_answer_that_stops_coming_is_unreachable_after_the_read_timeout() -> None:
    half = answer(b'{"acked": {"readings": 5}}')[:-10]
    async with scripted_hub(lambda _c, _n: (half, "stall")) as hub, \
            HubClient(an_identity(hub.url), timeout_s=0.3) as client:
        with pytest.raises(HubUnreachable, match=r"did not answer .* in time \(read timeout\)"):
            await client.acked()


async def test_a_garbled_header_is_hub_unreachable() -> None:
    garbled = b"HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\n{}"
    async with scripted_hub(lambda _c, _n: (garbled, "keep")) as hub, \
            HubClient(an_identity(hub.url)) as client:
        with pytest.raises(HubUnreachable, match="unreachable"):
            await client.acked()


async def test_requests_go_under_the_hub_urls_path_with_their_query_and_body() -> None:
    bundle = answer(b"{}", head=('ETag: "policy-4"',))
    async with scripted_hub(lambda _c, _n: (bundle, "keep"), path="/ponton") as hub, \
            HubClient(an_identity(hub.url)) as client:
        fetched = await client.pull_bundle("policy", '"policy-3"', base=3)
        assert fetched is not None
        assert fetched.etag == '"policy-4"'
        await client.declare_devices([])
    assert hub.targets == ["/ponton/v1/gateway/bundles/policy?base=3",
                           "/ponton/v1/gateway/devices"]
    assert b'if-none-match: "policy-3"' in hub.heads[0].lower()
    assert hub.bodies[1] == b'{"devices":[]}'
    assert b"content-type: application/json" in hub.heads[1].lower()


async def test_bytes_after_an_answer_end_its_connection_and_never_answer_the_next_request(
) -> None:
    """An answer whose body runs past its Content-Length (a broken proxy, a hub answering
    twice): what follows would be read as the answer to the next request, on any stream."""
    stale = answer(b'{"acked": {"readings": 99}}')

    def script(connection: int, _number: int) -> tuple[bytes, Ending]:
        if connection == 0:
            return answer() + stale, "keep"
        return answer(b'{"acked": {"readings": 7}}'), "keep"

    async with scripted_hub(script) as hub, HubClient(an_identity(hub.url)) as client:
        assert await client.acked() == {"readings": 5}
        assert await client.acked() == {"readings": 7}
    assert hub.connections == 2


async def test_a_head_that_never_ends_is_unreachable_after_the_timeout() -> None:
    """A hub (or a proxy) that keeps the answer coming a little at a time, each piece within
    the read timeout: endless 100 Continue heads, or a header dripped a byte at a time. The
    head of an answer must arrive within the timeout as a whole."""
    drips = [b"HTTP/1.1 100 Continue\r\n\r\n", b"X"]
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        drip, connections = drips[connections % 2], connections + 1
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nX-Slow: " if drip == b"X" else b"")
            while True:
                writer.write(drip)
                await writer.drain()
                await asyncio.sleep(0.05)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async with local_server(handle) as port, HubClient(
            an_identity(f"http://127.0.0.1:{port}"), timeout_s=0.5) as client:
        for _drip in drips:
            async with asyncio.timeout(10):
                with pytest.raises(HubUnreachable, match=r"did not answer .* in time"):
                    await client.acked()


async def test_a_small_answer_dripped_a_byte_at_a_time_is_unreachable_after_the_timeout(
) -> None:
    """Acknowledgements and refusals are a few hundred bytes: each piece within the read
    timeout must not stretch one to hours (256 KiB at a byte per timeout)."""
    body = b'{"acked": {"readings": 5}, "padding": "' + b"x" * 2000 + b'"}'

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer(body)[:-len(body)])
            for byte in body:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.05)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async with local_server(handle) as port, HubClient(
            an_identity(f"http://127.0.0.1:{port}"), timeout_s=0.5) as client, asyncio.timeout(10):
        with pytest.raises(HubUnreachable, match=r"did not answer .* in time"):
            await client.acked()
