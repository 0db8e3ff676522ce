"""A lean Modbus TCP client (MBAP framing) on an asyncio protocol: one transaction at a time.

The bus already serialises transactions, so the client needs no transaction manager, no
request queue and no framer objects: it writes one frame, keeps one future, and resolves it
from ``data_received``. That is most of the CPU a Modbus TCP poll cost through pymodbus
(docs/benchmarks.md, "Side by side with the ThingsBoard IoT Gateway"). RTU stays on pymodbus
(rtu.py), where the line, not the CPU, is the limit.

Every failure leaves as the agent's DeviceError tree and is counted in :class:`MbapCounters`:
a timeout, a Modbus exception, a garbled or short frame, a reply to another transaction, a
connection that drops. A stream that lost its framing is closed: the next request reconnects.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass

from edge_agent.errors import DeviceException, DeviceTimeout, FrameError, TransportError

__all__ = ["EXCEPTION_NAMES", "MBAP_HEADER", "MbapClient", "MbapCounters"]

#: Modbus exception codes, for messages a technician understands.
EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "device failure",
    5: "acknowledge",
    6: "device busy",
    10: "gateway path unavailable",
    11: "gateway target failed to respond",
}

#: Transaction id, protocol id (0), length (unit id + PDU), unit id.
MBAP_HEADER = struct.Struct(">HHHB")
_MAX_PDU = 253
#: Transaction ids recently given up on: a reply to one of them is late, not garbled.
_LATE_IDS_KEPT = 8


@dataclass(slots=True)
class MbapCounters:
    """What went wrong on one Modbus TCP connection, for status and metrics."""

    requests: int = 0
    timeouts: int = 0
    exceptions: int = 0
    frame_errors: int = 0
    late_replies: int = 0
    disconnects: int = 0
    connects: int = 0


class MbapClient(asyncio.Protocol):
    """One Modbus TCP connection to ``host:port``; :meth:`transact` sends one request PDU."""

    def __init__(self, host: str, port: int, *, timeout_s: float, name: str = "") -> None:
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self.name = name or f"{host}:{port}"
        self.counters = MbapCounters()
        self._transport: asyncio.Transport | None = None
        #: Kept from connect(): asyncio.get_running_loop() costs a getpid() system call.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._buffer = bytearray()
        self._pending: asyncio.Future[bytes] | None = None
        self._pending_id = 0
        self._pending_unit = 0
        self._next_id = 0
        self._late_ids: list[int] = []
        self._closed_reason = ""

    @property
    def connected(self) -> bool:
        """Whether a connection is open."""
        return self._transport is not None

    async def connect(self) -> None:
        """Connect if not connected; TransportError saying what to check when it fails."""
        if self._transport is not None:
            return
        loop = self._loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout_s):
                await loop.create_connection(lambda: self, self.host, self.port)
        except (OSError, TimeoutError, UnicodeError) as exc:  # UnicodeError: plc..lan
            raise TransportError(
                f"cannot connect to {self.host}:{self.port} ({exc or 'timed out'}): is the "
                "device on the network and listening for Modbus TCP on that port?",
                bus=self.name) from exc
        self.counters.connects += 1

    def close(self) -> None:
        """Close the connection; safe to call twice."""
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        self._buffer.clear()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Take the new connection (asyncio calls this)."""
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._buffer.clear()
        self._closed_reason = ""

    def connection_lost(self, exc: Exception | None) -> None:
        """The device or the network closed the connection: fail the request in flight."""
        if self._transport is None:
            return  # closed by us
        self._transport = None
        self.counters.disconnects += 1
        self._closed_reason = f"connection closed by {self.host}:{self.port}" + (
            f" ({exc})" if exc else "")
        self._fail(TransportError(self._closed_reason, bus=self.name))

    async def transact(self, unit: int, pdu: bytes) -> bytes:
        """Send one request PDU to ``unit``; the reply PDU (function code first).

        DeviceTimeout, DeviceException, FrameError or TransportError when it fails.
        """
        if self._transport is None or self._loop is None:
            raise TransportError(self._closed_reason or "not connected", bus=self.name)
        self._next_id = (self._next_id + 1) & 0xFFFF
        self._pending_id, self._pending_unit = self._next_id, unit
        loop = self._loop
        future: asyncio.Future[bytes] = loop.create_future()
        self._pending = future
        self.counters.requests += 1
        self._transport.write(MBAP_HEADER.pack(self._next_id, 0, len(pdu) + 1, unit) + pdu)
        handle = loop.call_later(self.timeout_s, self._time_out, future)
        try:
            reply = await future
        finally:
            handle.cancel()
            self._pending = None
        if reply[0] == pdu[0] | 0x80:
            self.counters.exceptions += 1
            code = reply[1] if len(reply) > 1 else 0
            raise DeviceException(f"exception {code} ({EXCEPTION_NAMES.get(code, 'unknown')})",
                                  code=code, bus=self.name)
        if reply[0] != pdu[0]:
            self.counters.frame_errors += 1
            raise FrameError(f"reply carries function {reply[0]}, the request {pdu[0]}",
                             bus=self.name)
        return reply

    def _time_out(self, future: asyncio.Future[bytes]) -> None:
        if future.done():
            return
        self._late_ids = [*self._late_ids[-_LATE_IDS_KEPT + 1:], self._pending_id]
        if self._buffer:
            got = len(self._buffer)
            self._buffer.clear()
            self.counters.frame_errors += 1
            self.close()  # the stream lost its framing
            future.set_exception(FrameError(
                f"incomplete reply ({got} bytes) within {self.timeout_s:g} s", bus=self.name))
            return
        self.counters.timeouts += 1
        future.set_exception(DeviceTimeout(
            f"no answer within {self.timeout_s:g} s (check the unit id and that the device "
            "is powered)", bus=self.name))

    def _fail(self, exc: Exception) -> None:
        if self._pending is not None and not self._pending.done():
            self._pending.set_exception(exc)

    def _garbled(self, reason: str) -> None:
        self.counters.frame_errors += 1
        self.close()
        self._fail(FrameError(f"garbled reply: {reason}", bus=self.name))

    def data_received(self, data: bytes) -> None:
        """Cut frames out of the stream and hand the pending request its reply."""
        buffer = self._buffer
        buffer += data
        while len(buffer) >= MBAP_HEADER.size:
            tid, protocol, length, unit = MBAP_HEADER.unpack_from(buffer)
            if protocol != 0 or not 2 <= length <= _MAX_PDU + 1:
                self._garbled(f"header says protocol {protocol}, length {length}")
                return
            end = MBAP_HEADER.size - 1 + length
            if len(buffer) < end:
                return
            pdu = bytes(buffer[MBAP_HEADER.size:end])
            del buffer[:end]
            self._deliver(tid, unit, pdu)

    def _deliver(self, tid: int, unit: int, pdu: bytes) -> None:
        pending = self._pending
        if pending is None or pending.done() or tid != self._pending_id:
            if tid in self._late_ids:
                self.counters.late_replies += 1
                return
            self._garbled(f"reply to transaction {tid} while waiting for "
                          f"{self._pending_id if pending else 'none'}")
            return
        if unit != self._pending_unit:
            self._garbled(f"reply from unit {unit}, the request went to {self._pending_unit}")
            return
        pending.set_result(pdu)
