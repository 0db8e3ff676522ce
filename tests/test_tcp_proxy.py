"""The fault proxy: each fault does what it says, seen from client, target and counters."""

from __future__ import annotations

import asyncio
import http.client
import http.server
import os
import queue
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from tests.helpers.tcp_proxy import ProxyStats, TcpProxy

TIMEOUT_S = 5.0
#: How long a connection gone dark is watched for an answer that must not come.
SILENCE_S = 0.3


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def no_thread_leaks() -> Iterator[None]:
    """Every thread and file descriptor a test opens is gone by its end."""
    threads, fds = set(threading.enumerate()), _open_fds()
    yield
    _wait_for(lambda: set(threading.enumerate()) <= threads, "the test's threads to end")
    assert _open_fds() - fds == set()


class EchoServer(socketserver.ThreadingTCPServer):
    """Sends back what it reads; reports the bytes each connection brought in ``received``."""

    allow_reuse_address = True
    daemon_threads = False
    block_on_close = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _EchoHandler)
        self.received: queue.Queue[int] = queue.Queue()

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _EchoHandler(socketserver.BaseRequestHandler):
    server: EchoServer

    def handle(self) -> None:
        total = 0
        try:
            while data := self.request.recv(65536):
                total += len(data)
                self.request.sendall(data)
        except OSError:
            pass
        self.server.received.put(total)


@pytest.fixture
def echo(no_thread_leaks: None) -> Iterator[EchoServer]:
    server = EchoServer()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="echo-server")
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


#: How a reset shows on the client: in connect, send or recv, depending on when it lands.
RESET = (ConnectionResetError, BrokenPipeError)


def _talk(port: int, payload: bytes) -> tuple[bytes, type[OSError] | None]:
    """Send ``payload``, read it back: what came back (b"" if reset) and the reset, if any."""
    received = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as client:
            client.sendall(payload)
            while len(received) < len(payload):
                data = client.recv(65536)
                if not data:
                    break
                received += data
    except RESET as exc:
        return b"", type(exc)
    return received, None


def _reads_until_reset(client: socket.socket) -> bytes:
    received = b""
    with pytest.raises(ConnectionResetError):  # noqa: PT012 - collect what came before
        while data := client.recv(65536):
            received += data
    return received


def test_pass_through_forwards_both_ways_and_counts(echo: EchoServer) -> None:
    payload = os.urandom(200_000)
    with TcpProxy("127.0.0.1", echo.port) as proxy:
        assert _talk(proxy.port, payload) == (payload, None)
        assert echo.received.get(timeout=TIMEOUT_S) == len(payload)
        _wait_for(lambda: proxy.stats.active == 0, "the connection to close")
        assert proxy.stats == ProxyStats(
            connections=1, active=0, refused=0, cuts=0, upstream_failures=0,
            bytes_upstream=200_000, bytes_downstream=200_000, bytes_swallowed=0)
        assert proxy.url == f"http://127.0.0.1:{proxy.port}"


def test_a_cut_upstream_delivers_exactly_n_bytes_then_resets_both_sides(
    echo: EchoServer,
) -> None:
    with TcpProxy("127.0.0.1", echo.port) as proxy:
        proxy.cut_after(1000, "upstream")
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=TIMEOUT_S) as client:
            client.sendall(b"x" * 5000)
            assert len(_reads_until_reset(client)) <= 1000
        assert echo.received.get(timeout=TIMEOUT_S) == 1000
        stats = proxy.stats
        assert (stats.cuts, stats.bytes_upstream) == (1, 1000)


def test_a_cut_happens_once_unless_asked_for_every_connection(echo: EchoServer) -> None:
    with TcpProxy("127.0.0.1", echo.port) as proxy:
        proxy.cut_after(10, "downstream")
        assert _talk(proxy.port, b"a" * 100)[1] in RESET
        assert _talk(proxy.port, b"b" * 100) == (b"b" * 100, None)
        proxy.cut_after(10, "downstream", every=True)
        for _ in range(3):
            assert _talk(proxy.port, b"c" * 100)[1] in RESET
        assert proxy.stats.cuts == 4
        proxy.pass_through()
        assert _talk(proxy.port, b"d" * 100) == (b"d" * 100, None)


def test_a_cut_at_zero_downstream_loses_the_whole_answer(echo: EchoServer) -> None:
    with TcpProxy("127.0.0.1", echo.port) as proxy:
        proxy.cut_after(0, "downstream")
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=TIMEOUT_S) as client:
            client.sendall(b"request")
            assert _reads_until_reset(client) == b""
        assert echo.received.get(timeout=TIMEOUT_S) == len(b"request")
        assert proxy.stats.bytes_downstream == 0


def test_a_cut_can_close_cleanly_instead_of_resetting(echo: EchoServer) -> None:
    with TcpProxy("127.0.0.1", echo.port) as proxy:
        proxy.cut_after(10, "downstream", reset=False)
        assert _talk(proxy.port, b"z" * 100) == (b"z" * 10, None)
        assert proxy.stats.cuts == 1


def test_refused_connections_are_reset_and_never_reach_the_target(echo: EchoServer) -> None:
    with TcpProxy("127.0.0.1", echo.port) as proxy:
        proxy.refuse()
        assert _talk(proxy.port, b"hello")[1] in RESET
        assert proxy.stats.refused == 1
        proxy.pass_through()
        assert _talk(proxy.port, b"again") == (b"again", None)
        assert echo.received.get(timeout=TIMEOUT_S) == len(b"again")
        assert echo.received.empty()


def test_refuse_also_resets_open_connections_at_their_next_byte(echo: EchoServer) -> None:
    with TcpProxy("127.0.0.1", echo.port) as proxy, \
            socket.create_connection(("127.0.0.1", proxy.port), timeout=TIMEOUT_S) as client:
        client.sendall(b"ping")
        assert client.recv(4) == b"ping"
        proxy.refuse()
        client.sendall(b"ping")
        assert _reads_until_reset(client) == b""
        assert echo.received.get(timeout=TIMEOUT_S) == 4
        assert proxy.stats.refused == 1


def test_a_blackhole_reads_everything_and_never_answers(echo: EchoServer) -> None:
    with TcpProxy("127.0.0.1", echo.port) as proxy:
        proxy.blackhole()
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=SILENCE_S) as client:
            client.sendall(b"y" * 3000)
            with pytest.raises(TimeoutError):
                client.recv(1)
            _wait_for(lambda: proxy.stats.bytes_swallowed == 3000, "the bytes to be swallowed")
            proxy.pass_through()
            client.sendall(b"more")  # a connection gone dark stays dark
            with pytest.raises(TimeoutError):
                client.recv(1)
        assert proxy.stats.bytes_upstream == 0
    assert echo.received.empty()


def test_blackhole_darkens_open_connections_too(echo: EchoServer) -> None:
    with TcpProxy("127.0.0.1", echo.port) as proxy, \
            socket.create_connection(("127.0.0.1", proxy.port), timeout=TIMEOUT_S) as client:
        client.sendall(b"ping")
        assert client.recv(4) == b"ping"
        proxy.blackhole()
        client.sendall(b"ping")
        client.settimeout(SILENCE_S)
        with pytest.raises(TimeoutError):
            client.recv(1)
        _wait_for(lambda: proxy.stats.bytes_swallowed == 4, "the bytes to be swallowed")


def test_a_delay_holds_every_chunk(echo: EchoServer) -> None:
    with TcpProxy("127.0.0.1", echo.port) as proxy:
        proxy.delay(0.2)
        started = time.monotonic()
        assert _talk(proxy.port, b"slow") == (b"slow", None)
        assert time.monotonic() - started >= 0.4  # 0.2 s each way
        proxy.delay(0.2, "downstream")
        started = time.monotonic()
        assert _talk(proxy.port, b"slow") == (b"slow", None)
        assert time.monotonic() - started >= 0.2


def _cut_pattern(port: int, seed: int, probability: float, max_offset: int) -> list[int]:
    """Which of 40 echo exchanges of 600 bytes a fresh proxy cuts: their cut counts."""
    outcomes = []
    with TcpProxy("127.0.0.1", port) as proxy:
        proxy.random_cuts(seed, probability, max_offset=max_offset)
        for _ in range(40):
            before = proxy.stats.cuts
            _talk(proxy.port, b"r" * 600)
            _wait_for(lambda: proxy.stats.active == 0, "the exchange to end")
            outcomes.append(proxy.stats.cuts - before)
    return outcomes


def test_random_cuts_are_the_same_for_the_same_seed(echo: EchoServer) -> None:
    first = _cut_pattern(echo.port, seed=5, probability=0.5, max_offset=1000)
    assert _cut_pattern(echo.port, seed=5, probability=0.5, max_offset=1000) == first
    assert _cut_pattern(echo.port, seed=6, probability=0.5, max_offset=1000) != first
    assert 5 <= sum(first) <= 25
    assert sum(_cut_pattern(echo.port, seed=5, probability=0.0, max_offset=1000)) == 0
    assert sum(_cut_pattern(echo.port, seed=5, probability=1.0, max_offset=600)) == 40


class _HubHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx does
    server: _Hub

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.stored.append(body)
        answer = b'{"stored": %d}' % len(self.server.stored)
        self.send_response(200)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Hub(http.server.ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _HubHandler)
        self.stored: list[bytes] = []

    def handle_error(self, request: socket.socket | tuple[bytes, socket.socket],
                     client_address: tuple[str, int]) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionResetError):  # the proxy's cuts
            super().handle_error(request, client_address)


@pytest.fixture
def hub(no_thread_leaks: None) -> Iterator[_Hub]:
    server = _Hub()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="http-hub")
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def test_a_fault_reaches_a_kept_alive_http_connection(hub: _Hub) -> None:
    with TcpProxy("127.0.0.1", hub.server_address[1]) as proxy:
        client = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=TIMEOUT_S)
        try:
            client.request("POST", "/v1/batches", body=b"batch 1")
            assert client.getresponse().read() == b'{"stored": 1}'
            proxy.cut_after(0, "downstream")  # the next answer is lost
            client.request("POST", "/v1/batches", body=b"batch 2")
            with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected)):
                client.getresponse()
        finally:
            client.close()
        _wait_for(lambda: len(hub.stored) == 2, "the hub to store the second batch")
        assert hub.stored == [b"batch 1", b"batch 2"]
        stats = proxy.stats
        assert (stats.connections, stats.cuts) == (1, 1)


def test_drop_connections_resets_what_is_open(echo: EchoServer) -> None:
    with TcpProxy("127.0.0.1", echo.port) as proxy, \
            socket.create_connection(("127.0.0.1", proxy.port), timeout=TIMEOUT_S) as client:
        client.sendall(b"hello")
        assert client.recv(5) == b"hello"
        assert proxy.drop_connections() == 1
        assert _reads_until_reset(client) == b""


def test_connections_beyond_the_limit_are_refused(echo: EchoServer) -> None:
    with TcpProxy("127.0.0.1", echo.port, max_connections=2) as proxy:
        held = [socket.create_connection(("127.0.0.1", proxy.port), timeout=TIMEOUT_S)
                for _ in range(2)]
        try:
            for client in held:
                client.sendall(b"1")
                assert client.recv(1) == b"1"
            assert _talk(proxy.port, b"third")[1] in RESET
            assert proxy.stats.refused == 1
        finally:
            for client in held:
                client.close()


def test_an_unreachable_target_resets_the_client(no_thread_leaks: None) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        with TcpProxy("127.0.0.1", closed.getsockname()[1]) as proxy:
            assert _talk(proxy.port, b"anyone?")[1] in RESET
            assert proxy.stats.upstream_failures == 1


def test_closing_the_proxy_resets_its_connections_and_leaves_nothing(echo: EchoServer) -> None:
    proxy = TcpProxy("127.0.0.1", echo.port)
    proxy.start()
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=TIMEOUT_S) as alive:
        alive.sendall(b"x")
        assert alive.recv(1) == b"x"
        proxy.delay(30)  # a pump asleep in a long delay must not hold the shutdown
        alive.sendall(b"y")
        started = time.monotonic()
        proxy.close()
        assert time.monotonic() - started < TIMEOUT_S
        assert _reads_until_reset(alive) == b""
    proxy.close()  # idempotent


def test_bad_fault_arguments_are_refused() -> None:
    proxy = TcpProxy("127.0.0.1", 9)
    with pytest.raises(ValueError, match="n_bytes"):
        proxy.cut_after(-1, "upstream")
    with pytest.raises(ValueError, match="direction"):
        proxy.cut_after(1, "sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seconds"):
        proxy.delay(-1)
    with pytest.raises(ValueError, match="probability"):
        proxy.random_cuts(1, 1.5)


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


async def test_the_proxy_runs_in_the_test_s_own_event_loop_too(no_leaks: None) -> None:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    try:
        async with TcpProxy("127.0.0.1", server.sockets[0].getsockname()[1]) as proxy:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writer.write(b"ping")
            assert await reader.readexactly(4) == b"ping"
            proxy.cut_after(2, "upstream")
            writer.write(b"pong")
            with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
                await reader.readexactly(4)
            writer.close()
            with pytest.raises(ConnectionResetError):
                await writer.wait_closed()
            assert (proxy.stats.cuts, proxy.stats.bytes_upstream) == (1, 6)
    finally:
        server.close()
        await server.wait_closed()
