"""One kept-alive HTTP/1.1 connection to the hub, over asyncio streams and h11.

The gateway talks to one hub, one request at a time, for months: a general HTTP client (and
the async framework under it) would stay resident for that. h11 parses and frames HTTP/1.1
without doing any I/O (status lines, headers, Content-Length and chunked bodies, keep-alive
rules); this module does the I/O, the timeouts and the translation of every failure.

Requests share one connection, taken in turn. A connection the hub closed while idle (uvicorn
closes kept-alive ones after a few seconds) is replaced before use; a reused connection that
fails before any byte of the answer came back is replaced and the request sent once more,
which is safe because every request of docs/sync-protocol.md may be repeated (a batch is
acknowledged by sequence number). Every failure leaves here as HubUnreachable, or
HubUntrusted when a certificate failed the TLS handshake; the answer's body is read by the
caller (``answers.read_answer``), a chunk at a time, so its size is the caller's to bound.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Literal, overload
from urllib.parse import urlsplit

import h11

from edge_agent.errors import HubUnreachable, HubUntrusted
from edge_agent.sync.tls import certificate_problem

__all__ = ["Headers", "HubConnection", "Streamed"]

#: The most bytes read from the socket at once.
_READ_SIZE = 64 * 1024
#: Closing politely (TLS close_notify) takes at most this long before the socket is dropped.
_CLOSE_S = 1.0
Phase = Literal["connect", "write", "read"]


class Headers:
    """An answer's headers: names compared without case, values as sent (Latin-1)."""

    __slots__ = ("_items",)

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = items

    @overload
    def get(self, name: str) -> str | None: ...
    @overload
    def get(self, name: str, default: str) -> str: ...
    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name``, ``default`` if absent."""
        wanted = name.lower()
        return next((value for key, value in self._items if key.lower() == wanted), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None


@dataclass(frozen=True, slots=True)
class Streamed:
    """An answer whose head is read and whose body comes a chunk at a time, as sent (still
    compressed if it was; de-chunked)."""

    status: int
    headers: Headers
    _body: AsyncGenerator[bytes]

    def aiter_raw(self) -> AsyncIterator[bytes]:
        """The body's chunks; call once."""
        return self._body

    async def aclose(self) -> None:
        """Stop reading the body (the connection is then dropped unless it was all read)."""
        await self._body.aclose()


class _Link:
    """One open connection and its HTTP state."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.state = h11.Connection(h11.CLIENT)
        #: Bytes of the current answer received so far, and whether the hub hung up.
        self.received = 0
        self.answering = False
        self.closed_by_hub = False

    def reusable(self) -> bool:
        return (self.state.our_state is h11.IDLE and self.state.their_state is h11.IDLE
                and not self.reader.at_eof() and not self.writer.is_closing())

    async def close(self) -> None:
        """Close politely within ``_CLOSE_S``, else drop the socket."""
        self.writer.close()
        try:
            async with asyncio.timeout(_CLOSE_S):
                await self.writer.wait_closed()
        except (OSError, TimeoutError):
            self.writer.transport.abort()


class HubConnection:
    """Requests to the hub at ``base_url`` over one kept-alive connection.

    ``headers`` go with every request; ``timeout_s`` bounds connecting (TLS handshake
    included), each write, the answer's head as a whole and each read of its body.
    """

    def __init__(self, base_url: str, *, ssl_context: ssl.SSLContext, timeout_s: float,
                 headers: Mapping[str, str]) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(f"'{base_url}' is not an http:// or https:// URL")
        self.base_url = base_url
        self._tls = ssl_context if parts.scheme == "https" else None
        self._host = parts.hostname
        self._port = parts.port or (443 if self._tls else 80)
        self._prefix = parts.path.rstrip("/")
        default_port = parts.port is None or parts.port == (443 if self._tls else 80)
        authority = self._host if ":" not in self._host else f"[{self._host}]"
        self._headers = [("Host", authority if default_port else f"{authority}:{self._port}"),
                         ("User-Agent", "ponton-edge-agent"), *headers.items()]
        self._timeout_s = timeout_s
        self._turn = asyncio.Lock()
        self._link: _Link | None = None
        self._phase: Phase = "connect"

    async def aclose(self) -> None:
        """Close the connection; closing twice is harmless."""
        link, self._link = self._link, None
        if link is not None:
            await link.close()

    @asynccontextmanager
    async def stream(self, method: str, path: str, *, headers: Mapping[str, str] | None = None,
                     body: bytes = b"") -> AsyncIterator[Streamed]:
        """Send one request (``path`` after the base URL's own, query included) and give its
        answer, head read and body to stream; the connection is kept only if the body was
        read to its end and nothing came after it."""
        where = f"{method} {path}"
        async with self._turn:
            try:
                streamed = await self._send(method, self._prefix + path, headers or {}, body)
                try:
                    yield streamed
                finally:
                    await streamed.aclose()
            except TimeoutError as exc:
                await self._drop()
                raise HubUnreachable(f"hub {self.base_url} did not answer {where} in time "
                                     f"({self._phase} timeout)") from exc
            except (OSError, h11.ProtocolError) as exc:
                hung_up = self._link is not None and self._link.closed_by_hub
                await self._drop()
                raise self._failure(where, exc, hung_up=hung_up) from exc
            except BaseException:
                await self._drop()
                raise
            # Bytes past the end of the answer (a body longer than its Content-Length)
            # would be read as the answer to the next request: such a connection is dropped.
            link = self._link
            if link is not None and link.state.our_state is h11.DONE \
                    and link.state.their_state is h11.DONE and not link.state.trailing_data[0]:
                link.state.start_next_cycle()
            else:
                await self._drop()

    async def _send(self, method: str, target: str, headers: Mapping[str, str],
                    body: bytes) -> Streamed:
        link = self._link
        if link is not None and not link.reusable():
            await self._drop()
            link = None
        if link is not None:
            try:
                return await self._exchange(link, method, target, headers, body)
            except TimeoutError:
                raise
            except (OSError, h11.ProtocolError):
                if link.received:
                    raise
                # The hub closed this idle connection as the request left: once more, anew.
                await self._drop()
        self._phase = "connect"
        async with asyncio.timeout(self._timeout_s):
            reader, writer = await asyncio.open_connection(
                self._host, self._port, ssl=self._tls, limit=_READ_SIZE,
                server_hostname=self._host if self._tls else None)
        self._link = _Link(reader, writer)
        return await self._exchange(self._link, method, target, headers, body)

    async def _exchange(self, link: _Link, method: str, target: str,
                        headers: Mapping[str, str], body: bytes) -> Streamed:
        """Write the request and read the answer's head."""
        link.received = 0
        link.answering = False
        sent = [*self._headers, *headers.items()]
        if body or method in {"POST", "PUT"}:
            sent.append(("Content-Length", str(len(body))))
        wire = link.state.send(h11.Request(method=method, target=target, headers=sent))
        if body:
            wire += link.state.send(h11.Data(data=body))
        wire += link.state.send(h11.EndOfMessage())
        self._phase = "write"
        link.writer.write(wire)
        async with asyncio.timeout(self._timeout_s):
            await link.writer.drain()
        # The head as a whole, 1xx heads included, within the timeout: each read has its
        # own, which a hub dripping a byte at a time (or 100 Continue for ever) never hits.
        async with asyncio.timeout(self._timeout_s):
            while True:
                event = await self._next_event(link)
                if isinstance(event, h11.Response):
                    link.answering = True
                    break
                if not isinstance(event, h11.InformationalResponse):
                    raise ConnectionResetError("the connection closed without an answer")
        answer = Headers([(name.decode("latin-1"), value.decode("latin-1"))
                          for name, value in event.headers])
        return Streamed(event.status_code, answer, self._body(link))

    async def _body(self, link: _Link) -> AsyncGenerator[bytes]:
        while True:
            event = await self._next_event(link)
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return
            else:
                raise ConnectionResetError("the connection closed in the middle of the answer")

    async def _next_event(self, link: _Link) -> object:
        """The next thing h11 makes of what the hub sent, reading as it needs (an h11 event)."""
        while (event := self._parse(link)) is h11.NEED_DATA:
            self._phase = "read"
            async with asyncio.timeout(self._timeout_s):
                data = await link.reader.read(_READ_SIZE)
            link.received += len(data)
            if not data:
                link.closed_by_hub = True
            link.state.receive_data(data)
        if isinstance(event, h11.ConnectionClosed):
            link.closed_by_hub = True
        return event

    @staticmethod
    def _parse(link: _Link) -> object:
        """h11's next event, a hang-up said as such rather than as h11's complaint."""
        try:
            return link.state.next_event()
        except h11.RemoteProtocolError:
            if not link.closed_by_hub:
                raise
            where = "in the middle of the answer" if link.answering else "without an answer"
            raise ConnectionResetError(f"the connection closed {where}") from None

    async def _drop(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            with suppress(OSError):
                link.writer.transport.abort()

    def _failure(self, where: str, exc: BaseException, *,
                 hung_up: bool) -> HubUnreachable | HubUntrusted:
        # A refused connection never reached TLS: it is a hub down or a wrong port, never a
        # client certificate refused.
        hung_up = hung_up or (isinstance(exc, ConnectionError | ssl.SSLEOFError)
                              and not isinstance(exc, ConnectionRefusedError))
        if not hung_up and (problem := certificate_problem(exc)):
            return HubUntrusted(f"hub {self.base_url} refused over TLS for {where}: {problem}")
        reason = str(exc) or type(exc).__name__
        if hung_up and self._tls is not None:
            reason = (f"the connection closed without an answer ({type(exc).__name__}); over "
                      "TLS this is how a hub that requires client certificates refuses a "
                      "gateway without one its CA signed (see --client-cert)")
        return HubUnreachable(f"hub {self.base_url} unreachable for {where}: {reason}")
