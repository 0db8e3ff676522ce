"""Card frame → relay command: how long a gateway takes to open a gate for a card.

The field runs in its own thread and event loop, as real hardware runs beside the gateway:
an RDM6300 reader on a pty (simulators/readers) and a Waveshare relay board on the Modbus TCP
simulator, which notes the monotonic time at which it decoded each command. The gateway runs
as it does in the field (edge_agent.runtime.Gateway: reader driver, decision from a signed
policy of 100,000 badges, board-timed pulse through the bus scheduler, event to the outbox),
with a meter polled on the same bus so relay commands share the line with polls.

Measured per presentation: from the moment the frame's last byte is written to the pty to
the moment the board decoded the FC05 pulse command. A pty carries bytes at once, so this is
the time beyond the frame's own serial time (14 bytes at 9600 baud: 14.6 ms on a real
line). Baseline in the same run: the same pulse sent straight from a RelayBoard on its own
bus (no reader, no decision, no gateway), timed the same way. p50 and p99 per run, median of
the runs.

Run: .venv/bin/python bench/bench_gate.py [--runs 3] [--cards 300]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from edge_agent.codecs.access_policy import BadgeRecord, pack_badges, policy_payload
from edge_agent.codecs.bundle import (
    canonical_json,
    generate_signing_key,
    public_key_bytes,
    sign_bundle,
)
from edge_agent.codecs.pseudonyms import pseudonym
from edge_agent.config import load_config
from edge_agent.drivers.modbus.bus import ModbusBus
from edge_agent.drivers.modbus.link import LinkSettings, ModbusLink
from edge_agent.drivers.modbus.relay import RelayBoard
from edge_agent.profiles import load_profile
from edge_agent.records import Event, Reading, now_ms
from edge_agent.runtime import BUNDLES_DIR, Gateway
from edge_agent.sync.bundles import BundleStore
from edge_agent.sync.identity import Identity, save_identity
from simulators.modbus import ModbusSimulator, SimulatedMeter
from simulators.modbus.relay_board import SimulatedRelayBoard
from simulators.readers import CardReaderSimulator

BADGE_KEY = bytes(range(32))
BADGES = 100_000
RULES = {"categories": ["boater"], "zones": {"pontoon": {}},
         "entitlements": [{"category": "boater", "zone": "pontoon"}],
         "gates": {"gate-a": {"zone": "pontoon"}}}


def card(number: int) -> bytes:
    return b"\x01" + number.to_bytes(4, "big")


class FieldThread:
    """The relay board, a meter and the reader, served from their own thread."""

    def __init__(self) -> None:
        self.board = SimulatedRelayBoard(1)
        self.reader = CardReaderSimulator("rdm6300")
        self.endpoint = ""
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        meter = SimulatedMeter(2, load_profile("eastron-sdm120"), seed=2)
        async with ModbusSimulator([self.board, meter]) as field:
            self.endpoint = field.endpoint
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> FieldThread:
        self.reader.open()
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        assert self._loop is not None
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self.reader.close()

    def pulses_after(self, count: int, timeout_s: float = 2.0) -> int | None:
        """The decode time of pulse number ``count`` (0-based), once the board has it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            pulses = self.board.pulses(1)
            if len(pulses) > count:
                return pulses[count].at_ns
            time.sleep(0.0002)
        return None


def prepare(directory: Path, endpoint: str, reader_path: str) -> Path:
    key = generate_signing_key()
    identity = Identity(hub_url="http://127.0.0.1:9", gateway="bench", territory="bench",
                        site="bench", token="pgw_bench", signing_public_key=public_key_bytes(key),
                        signing_key_id="0" * 16, badge_key=BADGE_KEY, provisioned_at_ms=now_ms(),
                        insecure_http=True)
    data = directory / "data"
    save_identity(data, identity)
    badges = pack_badges(BadgeRecord(pseudonym(BADGE_KEY, card(n)), 0) for n in range(BADGES))
    envelope = sign_bundle(key, kind="policy", territory="bench", version=1,
                           issued_at_ms=now_ms(), expires_at_ms=now_ms() + 86_400_000,
                           payload=policy_payload(RULES, badges))
    BundleStore(data / BUNDLES_DIR, public_key_bytes(key), "bench").accept(
        canonical_json(envelope), now_ms=now_ms())
    config = directory / "gateway.toml"
    config.write_text(f"""
[gateway]
id = "bench"
data_dir = "data"
[sync]
enabled = false
[[buses]]
name = "pontoon"
tcp = "{endpoint}"
[[devices]]
name = "relays"
bus = "pontoon"
profile = "waveshare-relay-8ch"
unit = 1
interval_s = 1
[[devices]]
name = "meter"
bus = "pontoon"
profile = "eastron-sdm120"
unit = 2
interval_s = 0.2
[[readers]]
name = "reader"
profile = "rdm6300"
port = "{reader_path}"
gate = "gate-a"
duplicate_window_ms = 0
[[gates]]
name = "gate-a"
relay = "relays"
channel = 1
pulse_ms = 100
""", encoding="utf-8")
    return config


def percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


async def gateway_run(config: Path, field: FieldThread, cards: int) -> list[float]:
    gateway = Gateway(load_config(config))
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop))
    while gateway.access is None or gateway.access.engine.policy is None:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # all-off done, reader open

    async def present(number: int) -> None:
        field.reader.send(field.reader.frame(card(number * 97 % BADGES)))

    latencies = await time_pulses(field, cards, present)
    stop.set()
    await task
    return latencies


async def time_pulses(field: FieldThread, cards: int,
                      trigger: Callable[[int], Awaitable[None]]) -> list[float]:
    """Milliseconds from each ``trigger`` to the board decoding its pulse (misses left out)."""
    latencies = []
    done = len(field.board.pulses(1))
    for number in range(cards):
        sent = time.monotonic_ns()
        await trigger(number)
        decoded = await asyncio.to_thread(field.pulses_after, done)
        if decoded is not None:
            latencies.append((decoded - sent) / 1e6)
            done += 1
        await asyncio.sleep(0.02)
    return latencies


class _Sink:
    def put_readings(self, readings: list[Reading]) -> None:
        del readings

    def put_event(self, event: Event) -> None:
        del event


async def baseline_run(field: FieldThread, cards: int) -> list[float]:
    host, port = field.endpoint.rsplit(":", 1)
    bus = ModbusBus(ModbusLink(LinkSettings("base", "tcp", f"{host}:{port}")), [], _Sink())
    task = asyncio.create_task(bus.run())
    board = RelayBoard(bus, 1, name="relays")

    async def pulse(_: int) -> None:
        await board.pulse(1, 100)

    latencies = await time_pulses(field, cards, pulse)
    bus.stop()
    await task
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cards", type=int, default=300)
    args = parser.parse_args()
    p50s, p99s, base50s, base99s, missed = [], [], [], [], 0
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as directory, FieldThread() as field:
            config = prepare(Path(directory), field.endpoint, field.reader.path)
            latencies = asyncio.run(gateway_run(config, field, args.cards))
            missed += args.cards - len(latencies)
            baseline = asyncio.run(baseline_run(field, args.cards))
        p50, p99 = percentiles(latencies)
        b50, b99 = percentiles(baseline)
        p50s.append(p50)
        p99s.append(p99)
        base50s.append(b50)
        base99s.append(b99)
        print(f"run: frame -> relay p50 {p50:.2f} ms, p99 {p99:.2f} ms | bare pulse p50 "
              f"{b50:.2f} ms, p99 {b99:.2f} ms ({len(latencies)} cards)")
    print(f"frame -> relay command (policy of {BADGES:,} badges, meter polled every 0.2 s on "
          f"the same bus): p50 {statistics.median(p50s):.2f} ms, p99 "
          f"{statistics.median(p99s):.2f} ms (median of {args.runs} runs); bare pulse from a "
          f"RelayBoard: p50 {statistics.median(base50s):.2f} ms, p99 "
          f"{statistics.median(base99s):.2f} ms; cards without a pulse: {missed}")


if __name__ == "__main__":
    main()
