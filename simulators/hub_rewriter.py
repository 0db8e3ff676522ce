"""The network between a gateway and its hub, rewriting what it carries on purpose.

Tests and benchmarks put a gateway behind it to play an attacker (a tampered delta) or an
older hub (no policy hint): an HTTP/1.1 proxy on 127.0.0.1 that forwards every request to
the real hub and its answer back, over real sockets, through two hooks a subclass overrides:
``request`` (the target the hub gets) and ``answer`` (the headers and body the gateway gets).
Connections from the gateway are kept alive, as the hub's are; every answer is read whole,
so keep them small.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Self

import h11
import httpx

__all__ = ["HubRewriter"]

#: Headers the proxy frames itself on each side.
_HOP_BY_HOP = frozenset({"connection", "content-length", "host", "keep-alive",
                         "transfer-encoding"})


class HubRewriter:
    """A proxy to ``hub_url``, listening at ``url`` while open (``async with``)."""

    def __init__(self, hub_url: str) -> None:
        self.hub_url = hub_url
        self.url = ""
        self._server: asyncio.Server | None = None
        self._hub: httpx.AsyncClient | None = None
        self._serving: set[asyncio.Task[None]] = set()

    def request(self, method: str, target: str) -> str:
        """The target to ask the hub for, instead of ``target``."""
        return target

    def answer(self, method: str, target: str, status: int,
               headers: list[tuple[str, str]], body: bytes) -> tuple[list[tuple[str, str]], bytes]:
        """The headers and body the gateway gets for ``target`` (the target it asked for)."""
        return headers, body

    async def __aenter__(self) -> Self:
        self._hub = httpx.AsyncClient(base_url=self.hub_url, timeout=60)
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in self._serving:
            task.cancel()
        await asyncio.gather(*self._serving, return_exceptions=True)
        if self._hub is not None:
            await self._hub.aclose()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = h11.Connection(h11.SERVER)
        task = asyncio.current_task()
        assert task is not None
        self._serving.add(task)
        try:
            while (request := await _whole_request(connection, reader)) is not None:
                head, body = request
                writer.write(await self._forward(connection, head, body))
                await writer.drain()
                if connection.our_state is not h11.DONE or connection.their_state is not h11.DONE:
                    break
                connection.start_next_cycle()
        except (ConnectionError, h11.ProtocolError):
            pass
        finally:
            self._serving.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _forward(self, connection: h11.Connection, head: h11.Request, body: bytes
                       ) -> bytes:
        assert self._hub is not None
        method, target = head.method.decode(), head.target.decode()
        headers = [(name.decode("latin-1"), value.decode("latin-1"))
                   for name, value in head.headers if name.decode().lower() not in _HOP_BY_HOP]
        answered = await self._hub.request(method, self.request(method, target),
                                           headers=headers, content=body)
        kept = [(name, value) for name, value in answered.headers.multi_items()
                if name.lower() not in _HOP_BY_HOP | {"content-encoding"}]
        kept, content = self.answer(method, target, answered.status_code, kept,
                                    answered.content)
        kept.append(("Content-Length", str(len(content))))
        return b"".join([
            connection.send(h11.Response(status_code=answered.status_code, headers=kept)) or b"",
            connection.send(h11.Data(data=content)) or b"" if content else b"",
            connection.send(h11.EndOfMessage()) or b"",
        ])


async def _whole_request(connection: h11.Connection, reader: asyncio.StreamReader
                         ) -> tuple[h11.Request, bytes] | None:
    """The next request and its body, None once the gateway closed the connection."""
    head: h11.Request | None = None
    body = bytearray()
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            connection.receive_data(await reader.read(65_536))
        elif isinstance(event, h11.Request):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage) and head is not None:
            return head, bytes(body)
        else:
            return None
