"""A marina scenario end to end: badge readers on ptys, a relay board and a berth meter on
the Modbus TCP simulator, a real gateway, a real hub behind a TCP proxy that goes down in the
middle. Boaters arrive, gates open, a pedestal session bills its energy, revoked and unknown
cards are turned away, the gate keeps working while the hub is unreachable, and no raw card
number appears in any byte the agent sends or in the hub's database."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from edge_agent.access.control import send_command
from edge_agent.codecs.access_policy import BadgeRecord, pack_badges, policy_payload
from edge_agent.codecs.badge_numbers import printed_forms
from edge_agent.codecs.compression import decompress
from edge_agent.codecs.pseudonyms import pseudonym
from edge_agent.config import load_config
from edge_agent.errors import ControlError
from edge_agent.profiles import load_profile
from edge_agent.runtime import STATUS_FILE, Gateway
from edge_agent.sync.client import enroll
from edge_agent.sync.identity import Identity, save_identity
from simulators.modbus import Fault, ModbusSimulator, SimulatedMeter
from simulators.modbus.relay_board import SimulatedRelayBoard
from simulators.readers import CardReaderSimulator
from sync_server import admin
from sync_server.bundles import publish_bundle
from sync_server.keys import load_signing_key
from tests.helpers.hub import HubProcess, start_hub
from tests.helpers.tcp_proxy import TcpProxy

TERRITORY = "marina"
BOATER = bytes.fromhex("0100a1b2c3")
SAILOR = bytes.fromhex("0100d4e5f6")
REVOKED = bytes.fromhex("01000badc0")
UNKNOWN = bytes.fromhex("01deadbeef")
RULES: dict[str, Any] = {
    "timezone": "Europe/Paris",
    "categories": ["boater"],
    "zones": {"pontoon-a": {}},
    "services": ["berth-power"],
    "entitlements": [{"category": "boater", "zone": "pontoon-a"},
                     {"category": "boater", "service": "berth-power"}],
    "gates": {"gate-a": {"zone": "pontoon-a"}, "berth-a12": {"service": "berth-power"}},
}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    with start_hub(tmp_path_factory.mktemp("hub")) as running:
        running.territory(TERRITORY)
        yield running


@dataclass
class Marina:
    """The field, the gateway and the way to the hub, all running."""

    gate_reader: CardReaderSimulator
    pedestal_reader: CardReaderSimulator
    board: SimulatedRelayBoard
    proxy: TcpProxy
    data_dir: Path

    def status(self) -> dict[str, Any]:
        try:
            status = json.loads((self.data_dir / STATUS_FILE).read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        access: dict[str, Any] = status.get("access") or {}
        return access

    def gate(self, name: str) -> dict[str, Any]:
        gate: dict[str, Any] = self.status().get("gates", {}).get(name, {})
        return gate

    def last_reason_is(self, gate: str, reason: str) -> bool:
        return self.last_reason(gate) == reason

    def last_reason(self, gate: str) -> str | None:
        """The reason of the last decision at ``gate`` that the status file shows."""
        reason: str | None = self.gate(gate).get("last", {}).get("reason")
        return reason


async def until(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll ``check`` until it returns something true; that value."""
    async with asyncio.timeout(timeout):
        while not (value := check()):
            await asyncio.sleep(0.05)
    return value


def publish_policy(hub: HubProcess, identity: Identity) -> None:
    key = identity.badge_key
    badges = [BadgeRecord(pseudonym(key, BOATER), 0), BadgeRecord(pseudonym(key, SAILOR), 0),
              BadgeRecord(pseudonym(key, REVOKED), 0, revoked=True)]
    signing = load_signing_key(hub.data_dir / "signing-key.pem", demo=False)
    publish_bundle(hub.engine, signing, TERRITORY, "policy",
                   policy_payload(RULES, pack_badges(badges)), expires_in_s=3600)


@pytest.fixture
async def marina(hub: HubProcess, tmp_path: Path, request: pytest.FixtureRequest
                 ) -> AsyncIterator[Marina]:
    """The marina; ``indirect`` parametrisation sets the pedestal's maximum session hours."""
    max_duration_h = getattr(request, "param", 24)
    board = SimulatedRelayBoard(1)
    meter = SimulatedMeter(2, load_profile("eastron-sdm120"), seed=2, update_interval=0.2)
    gate_reader, pedestal_reader = CardReaderSimulator("rdm6300"), CardReaderSimulator("rdm6300")
    gate_reader.open()
    pedestal_reader.open()
    hub_port = int(hub.url.rsplit(":", 1)[1])
    async with ModbusSimulator([board, meter]) as field, TcpProxy(
            "127.0.0.1", hub_port, capture=True) as proxy:
        code = admin.add_gateway(hub.engine, TERRITORY, f"{TERRITORY}-site",
                                 tmp_path.name[-40:]).code
        identity = await enroll(proxy.url, code, insecure_http=True)
        data_dir = tmp_path / "data"
        save_identity(data_dir, identity)
        publish_policy(hub, identity)
        (tmp_path / "gateway.toml").write_text(f"""
[gateway]
id = "marina-gw"
data_dir = "data"

[sync]
interval_s = 0.2
bundle_interval_s = 0.5
max_backoff_s = 0.5

[[buses]]
name = "pontoon"
tcp = "{field.endpoint}"

[[devices]]
name = "relays-a"
bus = "pontoon"
profile = "waveshare-relay-8ch"
unit = 1
interval_s = 5

[[devices]]
name = "berth-a12-meter"
bus = "pontoon"
profile = "eastron-sdm120"
unit = 2
interval_s = 0.5
quantities = ["active_energy_import"]

[[readers]]
name = "reader-gate-a"
profile = "rdm6300"
port = "{gate_reader.path}"
gate = "gate-a"
duplicate_window_ms = 300

[[readers]]
name = "reader-berth-a12"
profile = "rdm6300"
port = "{pedestal_reader.path}"
gate = "berth-a12"
duplicate_window_ms = 300

[[gates]]
name = "gate-a"
relay = "relays-a"
channel = 1
pulse_ms = 700

[[pedestals]]
name = "berth-a12"
relay = "relays-a"
channel = 2
energy_meter = "berth-a12-meter"
max_duration_h = {max_duration_h}
""", encoding="utf-8")
        gateway = Gateway(load_config(tmp_path / "gateway.toml"))
        stop = asyncio.Event()
        task = asyncio.create_task(gateway.run(stop))
        running = Marina(gate_reader, pedestal_reader, board, proxy, data_dir)
        try:
            await until(lambda: (running.status().get("policy") or {}).get("badges") == 3)
            yield running
        finally:
            stop.set()
            await asyncio.wait_for(task, 15)
            gate_reader.close()
            pedestal_reader.close()


def hub_events(hub: HubProcess, kind_prefix: str) -> list[tuple[str, str, dict[str, Any]]]:
    with hub.engine.connect() as conn:
        rows = conn.execute(text("SELECT kind, device, attrs FROM events WHERE kind LIKE :k"),
                            {"k": f"{kind_prefix}%"}).all()
    return [(row.kind, row.device, json.loads(row.attrs) if isinstance(row.attrs, str)
             else row.attrs) for row in rows]


async def test_marina_day(hub: HubProcess, marina: Marina) -> None:
    # Every relay is switched off before anything else.
    first = marina.board.commands[0]
    assert (first.address, first.action) == (0x00FF, "off")

    # A boater arrives: the card is held (three repeated frames), the gate opens once.
    await marina.gate_reader.present(BOATER, repeats=3)
    await until(lambda: marina.board.pulses(1))
    assert [(p.channel, p.pulse_ms) for p in marina.board.pulses()] == [(1, 700)]
    last = await until(lambda: marina.gate("gate-a").get("last"))
    assert (last["reason"], last["granted"]) == ("granted", True)

    # A revoked card and an unknown one are turned away; the gate stays shut.
    for card, reason in ((REVOKED, "revoked"), (UNKNOWN, "unknown_badge")):
        await asyncio.sleep(0.35)
        marina.gate_reader.send_bad_checksum(BOATER)  # line noise between cards: ignored
        await marina.gate_reader.present(card)
        await until(functools.partial(marina.last_reason_is, "gate-a", reason))
    assert len(marina.board.pulses()) == 1

    # The pedestal: the boater's tap opens a session, the sailor is told it is busy, the
    # boater's second tap closes it with the energy used.
    await marina.pedestal_reader.present(BOATER)
    await until(lambda: marina.board.relay(2))
    await until(lambda: marina.status().get("sessions"))
    await asyncio.sleep(1.0)  # the meter turns
    await marina.pedestal_reader.present(SAILOR)
    await until(lambda: marina.last_reason("berth-a12") == "pedestal_busy")
    assert marina.board.relay(2)
    await asyncio.sleep(0.35)
    await marina.pedestal_reader.present(BOATER)
    await until(lambda: not marina.board.relay(2))
    closed = await until(lambda: [(device, attrs) for _, device, attrs in
                                  hub_events(hub, "session.closed") if attrs["reason"] == "badge"],
                         timeout=15)
    (device, attrs), = closed
    assert device == "berth-a12"
    assert attrs["kwh"] is not None
    assert attrs["kwh"] >= 0
    assert attrs["energy_end_kwh"] >= attrs["energy_start_kwh"]

    # The hub goes away: the gate keeps deciding and opening from the policy it holds.
    marina.proxy.refuse()
    await asyncio.sleep(0.35)
    await marina.gate_reader.present(SAILOR)
    await until(lambda: len(marina.board.pulses(1)) == 2)
    marina.proxy.pass_through()

    # Every decision reaches the hub, sailor's included, once the link is back.
    decided = await until(lambda: len(hub_events(hub, "access.")) >= 7 and
                          hub_events(hub, "access."), timeout=20)
    assert sorted(attrs["reason"] for _, _, attrs in decided) == sorted(
        ["granted", "revoked", "unknown_badge", "granted", "pedestal_busy", "granted",
         "granted"])

    # No raw card number in any form, in any request body the agent sent or at the hub.
    forbidden = raw_forms(BOATER, SAILOR, REVOKED, UNKNOWN)
    bodies = request_bodies(marina.proxy.captured_upstream())
    assert bodies, "the capture saw no request"
    for body in bodies:
        assert not [form for form in forbidden if form in body]
    assert not [form for form in forbidden if form in hub_dump(hub)]


async def test_staff_open_a_gate_by_command_and_it_is_logged(marina: Marina) -> None:
    reply = await send_command(marina.data_dir, {"command": "open", "gate": "gate-a"})
    assert reply == {"ok": True, "granted": True, "reason": "manual"}
    await until(lambda: marina.board.pulses(1))
    await until(lambda: marina.last_reason("gate-a") == "manual")
    with pytest.raises(ControlError, match="no gate named 'moon'"):
        await send_command(marina.data_dir, {"command": "open", "gate": "moon"})
    with pytest.raises(ControlError, match="commands"):
        await send_command(marina.data_dir, {"command": "explode"})


async def test_a_dead_relay_board_is_a_denial_and_an_alarm(marina: Marina) -> None:
    marina.board.set_fault(Fault.no_reply())
    await marina.gate_reader.present(BOATER)
    await until(lambda: marina.last_reason("gate-a") == "service_unavailable")
    assert marina.gate("gate-a")["actuator_failures"] == 1
    assert not marina.board.pulses()


@pytest.mark.parametrize("marina", [0.0005], indirect=True)
async def test_a_session_past_its_maximum_duration_is_closed(hub: HubProcess,
                                                             marina: Marina) -> None:
    """1.8 s at most: the outlet goes off by itself and the session is billed."""
    await marina.pedestal_reader.present(SAILOR)
    await until(lambda: marina.board.relay(2))
    await until(lambda: not marina.board.relay(2), timeout=6)
    closed = await until(lambda: [attrs for _, _, attrs in hub_events(hub, "session.closed")
                                  if attrs["reason"] == "timeout"], timeout=15)
    assert closed[0]["ended_ms"] - closed[0]["started_ms"] >= 1800
    assert closed[0]["kwh"] is not None


def raw_forms(*cards: bytes) -> list[bytes]:
    """Every way a raw card number could be written: bytes, hex, printed numbers."""
    forms: list[bytes] = []
    for card in cards:
        forms += [card, card.hex().encode(), card.hex().upper().encode()]
        forms += [value.encode() for name, value in printed_forms(card).items()
                  if name in ("8H10D", "dec")]
    return forms


def request_bodies(streams: list[bytes]) -> list[bytes]:
    """The decompressed bodies of the HTTP/1.1 requests in each connection's bytes."""
    bodies = []
    for stream in streams:
        rest = stream
        while b"\r\n\r\n" in rest:
            head, rest = rest.split(b"\r\n\r\n", 1)
            headers = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:] if b":" in line)
            fields = {k.strip().lower(): v.strip() for k, v in headers.items()}
            length = int(fields.get(b"content-length", b"0"))
            body, rest = rest[:length], rest[length:]
            encoding = fields.get(b"content-encoding", b"identity").decode()
            if body:
                bodies.append(decompress(body, encoding, max_bytes=64 * 2**20))
    return bodies


def hub_dump(hub: HubProcess) -> bytes:
    """Every text and binary column of every hub table, as bytes."""
    chunks = []
    with hub.engine.connect() as conn:
        tables = [row[0] for row in conn.execute(text(
            "SELECT name FROM sqlite_master WHERE type = 'table'"))]
        for table in tables:
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                for value in row:
                    chunks.append(value if isinstance(value, bytes) else str(value).encode())
    return b"\n".join(chunks)
