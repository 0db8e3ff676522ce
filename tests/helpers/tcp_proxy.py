"""A TCP proxy that breaks connections on purpose, for the sync's fault tests.

The gateway reaches the hub over HTTP, through NAT and 4G links that drop in the middle of a
request. To test what the agent and the hub do then, a test puts this proxy between them on
127.0.0.1 and tells it, while the test runs, how to misbehave:

- ``pass_through()``: forward everything (the start state);
- ``cut_after(n, direction)``: reset the connection once ``n`` bytes went that way, on the next
  connection only or (``every=True``) on every one. ``cut_after(0, "downstream")`` is the
  classic lost answer: the hub got the whole request, the gateway never hears back;
- ``refuse()``: reset new connections as soon as they are accepted, open ones at their next
  byte (the hub went down);
- ``blackhole()``: accept and read, never answer, never reach the target;
- ``delay(seconds)``: hold every chunk that long before forwarding it;
- ``random_cuts(seed, probability)``: cut that share of connections at a random byte offset,
  the same connections at the same offsets for the same seed and the same traffic.

A fault applies to new connections and to open ones alike, counted from the moment it is
set: an HTTP client's kept-alive connection is cut in its next request, not spared because it
was opened before. A connection gone dark under ``blackhole`` stays dark;
``drop_connections()`` resets every open connection at once, without waiting for a byte. A cut
is a TCP reset on both sides (``reset=False``: a plain close), after exactly the bytes up to
the offset were forwarded. ``stats`` counts connections, refusals, cuts and bytes each way,
each before the proxy acts on it, so a test that saw the effect (data, a reset) can read the
counter at once; only ``active`` drops a moment after a connection ends. With
``capture=True`` the proxy also keeps every byte each connection sent upstream
(``captured_upstream()``), for tests that check what a client put on the wire.

Synchronous tests run the proxy in a thread with its own event loop (``with TcpProxy(...)``);
asyncio tests run it in theirs (``async with TcpProxy(...)``). The fault methods and
``stats`` may be called from any thread. Everything listens on 127.0.0.1 on an ephemeral
port, connections are bounded (``max_connections``), memory too (one chunk in flight per
direction), and closing the proxy resets every connection and leaves no socket or thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

__all__ = ["DIRECTIONS", "Direction", "ProxyStats", "TcpProxy"]

Direction = Literal["upstream", "downstream"]
#: ``upstream`` is client to target, ``downstream`` target to client.
DIRECTIONS: tuple[Direction, Direction] = ("upstream", "downstream")

_CHUNK = 65_536
_LOOP_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class ProxyStats:
    """What the proxy saw since it started."""

    #: Connections accepted, refused ones included.
    connections: int
    #: Connections open now.
    active: int
    #: Connections reset by ``refuse()`` or for being beyond ``max_connections``.
    refused: int
    #: Connections cut by ``cut_after`` or ``random_cuts``.
    cuts: int
    #: Connections reset because the target could not be reached.
    upstream_failures: int
    #: Bytes forwarded from clients to the target.
    bytes_upstream: int
    #: Bytes forwarded from the target to clients.
    bytes_downstream: int
    #: Bytes read and dropped by ``blackhole()``, both ways.
    bytes_swallowed: int


@dataclass(slots=True, eq=False)
class _Fault:
    kind: Literal["pass", "cut", "refuse", "blackhole", "delay", "random"]
    n_bytes: int = 0
    direction: Direction | None = None
    #: A cut hits every connection, or only the first one to reach its offset.
    every: bool = True
    reset: bool = True
    seconds: float = 0.0
    rng: random.Random | None = None
    probability: float = 0.0
    max_offset: int = 0
    #: A cut meant for one connection has happened.
    spent: bool = False


@dataclass(slots=True, eq=False)
class _Link:
    """One client connection and what the current fault means for it."""

    fault: _Fault
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    #: Bytes forwarded each way since ``fault`` was adopted.
    counted: dict[Direction, int] = field(default_factory=lambda: dict.fromkeys(DIRECTIONS, 0))
    cut_at: tuple[Direction, int] | None = None
    dark: bool = False
    #: Reset by ``refuse()`` (counted once, whichever way its next byte went).
    refused: bool = False
    #: What the client sent, when the proxy captures.
    sent: bytearray | None = None


@dataclass(frozen=True, slots=True)
class _Verdict:
    keep: int
    cut: bool
    delay: float


class TcpProxy:
    """A fault-injecting TCP proxy to ``target_host:target_port``, listening on 127.0.0.1.

    ::

        with TcpProxy("127.0.0.1", hub_port) as proxy:   # its own thread and event loop
            proxy.cut_after(0, "downstream")                 # the hub's answer is lost
            httpx.post(f"{proxy.url}/v1/gateway/streams/readings/batches", ...)

        async with TcpProxy("127.0.0.1", hub_port) as proxy:   # in the running loop
            ...
    """

    def __init__(self, target_host: str, target_port: int, *, max_connections: int = 64,
                 connect_timeout: float = 5.0, capture: bool = False) -> None:
        # Resolved now, so that connecting never needs the loop's resolver thread.
        address = socket.getaddrinfo(target_host, target_port, type=socket.SOCK_STREAM)[0][4]
        self._target = (str(address[0]), int(address[1]))
        self._max_connections = max_connections
        self._capture = capture
        self._captured: list[bytearray] = []
        self._connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._fault = _Fault("pass")
        self._links: set[_Link] = set()
        self._counters = dict.fromkeys(
            ("connections", "refused", "cuts", "upstream_failures", "bytes_upstream",
             "bytes_downstream", "bytes_swallowed"), 0)
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._port = 0

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start listening, in a new thread running its own event loop."""
        if self._loop is not None:
            raise RuntimeError("the proxy is already running")
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name=f"tcp-proxy-{self._target[1]}",
                                  daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            asyncio.run_coroutine_threadsafe(self._open(), loop).result(_LOOP_TIMEOUT_S)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Reset every connection, stop listening, end the thread. Idempotent."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shut(), loop).result(_LOOP_TIMEOUT_S)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_LOOP_TIMEOUT_S)
            loop.close()
            self._loop = self._thread = None

    def __enter__(self) -> TcpProxy:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    async def __aenter__(self) -> TcpProxy:
        if self._loop is not None:
            raise RuntimeError("the proxy is already running")
        self._loop = asyncio.get_running_loop()
        await self._open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self._shut()
        self._loop = None

    @property
    def port(self) -> int:
        """The port the proxy listens on, at 127.0.0.1."""
        return self._port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``, for HTTP clients."""
        return f"http://127.0.0.1:{self._port}"

    # -- faults ------------------------------------------------------------------------

    def pass_through(self) -> None:
        """Forward everything."""
        self._set(_Fault("pass"))

    def cut_after(self, n_bytes: int, direction: Direction, *, every: bool = False,
                  reset: bool = True) -> None:
        """Cut a connection once ``n_bytes`` more went ``direction``: the next one, or every one.

        ``reset=False`` closes both sides cleanly (FIN) instead of resetting them.
        """
        if n_bytes < 0 or direction not in DIRECTIONS:
            raise ValueError(f"cut_after needs n_bytes >= 0 and a direction in {DIRECTIONS}")
        self._set(_Fault("cut", n_bytes=n_bytes, direction=direction, every=every, reset=reset))

    def refuse(self) -> None:
        """Reset new connections as soon as they are accepted, open ones at their next byte."""
        self._set(_Fault("refuse"))

    def blackhole(self) -> None:
        """Read everything, answer nothing, never reach the target."""
        self._set(_Fault("blackhole"))

    def delay(self, seconds: float, direction: Direction | None = None) -> None:
        """Hold every chunk ``seconds`` before forwarding it, both ways or one."""
        if seconds < 0:
            raise ValueError("delay needs seconds >= 0")
        self._set(_Fault("delay", seconds=seconds, direction=direction))

    def random_cuts(self, seed: int, probability: float, *, max_offset: int = 1024,
                    direction: Direction | None = None) -> None:
        """Cut about ``probability`` of the connections, each at a random offset.

        Each connection draws, in the order they are accepted, whether it is cut, which way
        (or ``direction``) and after how many bytes (0 to ``max_offset``). An exchange shorter
        than its offset that way is not cut, so short exchanges see fewer cuts.
        """
        if not 0 <= probability <= 1 or max_offset < 0:
            raise ValueError("random_cuts needs 0 <= probability <= 1 and max_offset >= 0")
        self._set(_Fault("random", rng=random.Random(seed), probability=probability,
                         max_offset=max_offset, direction=direction))

    def drop_connections(self) -> int:
        """Reset every open connection now; how many there were.

        In the asyncio form, call it from the proxy's own loop.
        """
        if self._thread is not None and self._loop is not None:
            return asyncio.run_coroutine_threadsafe(self._drop(), self._loop).result(
                _LOOP_TIMEOUT_S)
        return self._drop_now()

    def captured_upstream(self) -> list[bytes]:
        """Every byte each connection sent towards the target, one item per connection."""
        with self._lock:
            return [bytes(sent) for sent in self._captured]

    @property
    def stats(self) -> ProxyStats:
        """The counters, as one consistent snapshot."""
        with self._lock:
            return ProxyStats(active=len(self._links), **self._counters)

    # -- the event loop's side ---------------------------------------------------------

    def _set(self, fault: _Fault) -> None:
        with self._lock:
            self._fault = fault

    async def _open(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self._port = self._server.sockets[0].getsockname()[1]

    async def _shut(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = [link.task for link in self._links if link.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _drop(self) -> int:
        return self._drop_now()

    def _drop_now(self) -> int:
        links = list(self._links)
        for link in links:
            for writer in link.writers:
                _reset(writer)
        return len(links)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # The connection's work runs in a task of ours, which shutdown can cancel: asyncio's
        # own task for this callback reports a cancellation as an error.
        with self._lock:
            self._counters["connections"] += 1
            link = _Link(self._fault)
            if self._capture:
                link.sent = bytearray()
                self._captured.append(link.sent)
            self._adopt(link)
            refused = len(self._links) >= self._max_connections or link.fault.kind == "refuse"
            if refused:
                self._counters["refused"] += 1
            self._links.add(link)
        _flush_on_drain(writer)
        link.writers.append(writer)
        link.task = asyncio.get_running_loop().create_task(
            self._serve(link, reader, writer, refused=refused))

    async def _serve(self, link: _Link, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter, *, refused: bool) -> None:
        clean = False
        try:
            if refused:
                return
            if link.dark:
                await self._pump(link, "upstream", reader, None)
                clean = True
                return
            try:
                target_reader, target_writer = await asyncio.wait_for(
                    asyncio.open_connection(*self._target), self._connect_timeout)
            except (OSError, TimeoutError):
                with self._lock:
                    self._counters["upstream_failures"] += 1
                return
            _flush_on_drain(target_writer)
            link.writers.append(target_writer)
            clean = await self._relay(link, reader, writer, target_reader, target_writer)
        finally:
            with self._lock:
                self._links.discard(link)
            for each in link.writers:
                if clean:
                    each.close()
                else:
                    _reset(each)
            for each in link.writers:
                with contextlib.suppress(OSError, asyncio.CancelledError):
                    await each.wait_closed()

    async def _relay(self, link: _Link, client_reader: asyncio.StreamReader,
                     client_writer: asyncio.StreamWriter, target_reader: asyncio.StreamReader,
                     target_writer: asyncio.StreamWriter) -> bool:
        """Both ways until both end; whether they ended cleanly (not cut, not broken)."""
        pumps = {
            asyncio.create_task(self._pump(link, "upstream", client_reader, target_writer)):
                target_writer,
            asyncio.create_task(self._pump(link, "downstream", target_reader, client_writer)):
                client_writer,
        }
        try:
            pending = set(pumps)
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    outcome = task.result()
                    if outcome != "eof":
                        return outcome == "close"
                    # One side finished sending: pass its half-close on.
                    with contextlib.suppress(OSError):
                        if pumps[task].can_write_eof():
                            pumps[task].write_eof()
            return True
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)

    async def _pump(self, link: _Link, direction: Direction, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter | None) -> str:
        """Forward one way: "eof" at its end, "cut"/"close" when cut, "error" when broken."""
        while True:
            try:
                data = await reader.read(_CHUNK)
            except OSError:
                return "error"
            if not data:
                return "eof"
            if direction == "upstream" and link.sent is not None:
                with self._lock:
                    link.sent.extend(data)
            verdict = self._judge(link, direction, len(data))
            if verdict.delay:
                await asyncio.sleep(verdict.delay)
            if verdict.keep and writer is not None:
                writer.write(data[: verdict.keep])
                try:
                    await writer.drain()
                except OSError:
                    return "error"
            if verdict.cut:
                return "cut" if link.fault.reset else "close"

    def _judge(self, link: _Link, direction: Direction, size: int) -> _Verdict:
        """What to do with ``size`` bytes going ``direction``, counters updated first."""
        with self._lock:
            if link.fault is not self._fault:
                self._adopt(link)
            fault = link.fault
            if link.dark:
                self._counters["bytes_swallowed"] += size
                return _Verdict(0, cut=False, delay=0.0)
            if fault.kind == "refuse":
                if not link.refused:
                    link.refused = True
                    self._counters["refused"] += 1
                return _Verdict(0, cut=True, delay=0.0)
            keep, cut = size, False
            if link.cut_at is not None and link.cut_at[0] == direction and not fault.spent:
                remaining = link.cut_at[1] - link.counted[direction]
                if remaining <= size:
                    keep, cut = remaining, True
                    fault.spent = not fault.every
                    self._counters["cuts"] += 1
            link.counted[direction] += keep
            self._counters[f"bytes_{direction}"] += keep
            delay = (fault.seconds if fault.kind == "delay"
                     and fault.direction in (None, direction) else 0.0)
            return _Verdict(keep, cut, delay)

    def _adopt(self, link: _Link) -> None:
        """Make the current fault ``link``'s, counting its bytes from now. Under the lock."""
        fault = self._fault
        link.fault = fault
        link.counted = dict.fromkeys(DIRECTIONS, 0)
        link.cut_at = None
        if fault.kind == "cut" and fault.direction is not None:
            link.cut_at = (fault.direction, fault.n_bytes)
        elif fault.kind == "random" and fault.rng is not None:
            # Always three draws, so one connection's outcome never shifts the next ones'.
            hit = fault.rng.random() < fault.probability
            drawn = fault.rng.choice(DIRECTIONS)
            offset = fault.rng.randint(0, fault.max_offset)
            link.cut_at = (fault.direction or drawn, offset) if hit else None
        elif fault.kind == "blackhole":
            link.dark = True


def _flush_on_drain(writer: asyncio.StreamWriter) -> None:
    # drain() then waits until every byte reached the kernel, so that a cut right after it
    # has forwarded exactly what it counted instead of dropping a buffered tail.
    writer.transport.set_write_buffer_limits(high=0)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0), not the orderly FIN of ``close()``."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
