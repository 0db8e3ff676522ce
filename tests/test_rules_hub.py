"""Rules with a real hub: the territory's config bundle, published at the hub and pulled by
the gateway, replaces a file rule; the hub link goes down, a threshold is crossed, and the
barrier closes all the same; once the link is back, the alarm reaches the hub with its
attributes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from edge_agent.profiles import load_profile
from edge_agent.sync.client import enroll
from edge_agent.sync.identity import save_identity
from simulators.modbus import ModbusSimulator, SimulatedMeter
from simulators.modbus.relay_board import SimulatedRelayBoard
from sync_server import admin
from sync_server.bundles import publish_bundle
from sync_server.keys import load_signing_key
from tests.helpers.hub import HubProcess, start_hub
from tests.helpers.tcp_proxy import TcpProxy
from tests.test_relay_board import wait_until
from tests.test_rules_gateway import RULES, running, write_config

TERRITORY = "caux-seine"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    with start_hub(tmp_path_factory.mktemp("hub")) as started:
        started.territory(TERRITORY)
        yield started


def hub_alarms(hub: HubProcess) -> list[tuple[str, str, dict[str, Any]]]:
    with hub.engine.connect() as conn:
        rows = conn.execute(text("SELECT kind, device, attrs FROM events "
                                 "WHERE kind LIKE 'alarm.%' ORDER BY ts_ms")).all()
    return [(row.kind, row.device, json.loads(row.attrs) if isinstance(row.attrs, str)
             else row.attrs) for row in rows]


async def test_a_bundle_rule_acts_offline_and_its_alarm_reaches_the_hub(hub: HubProcess,
                                                                        tmp_path: Path) -> None:
    board = SimulatedRelayBoard(1)
    meter = SimulatedMeter(2, load_profile("eastron-sdm120"), seed=1, update_interval=0)
    meter.set_value("voltage", 230)
    data_dir = tmp_path / "data"
    hub_port = int(hub.url.rsplit(":", 1)[1])
    async with ModbusSimulator([board, meter]) as field, TcpProxy("127.0.0.1",
                                                                  hub_port) as proxy:
        code = admin.add_gateway(hub.engine, TERRITORY, f"{TERRITORY}-site", "rules-gw").code
        save_identity(data_dir, await enroll(proxy.url, code, insecure_http=True))
        signing = load_signing_key(hub.data_dir / "signing-key.pem", demo=False)
        publish_bundle(hub.engine, signing, TERRITORY, "config", {"rules": [{
            "name": "overvoltage", "device": "berth-meter", "quantity": "voltage",
            "kind": "above", "threshold": 240, "clear_at": 235, "severity": "critical",
            "on_raise": [{"type": "latch", "board": "relays", "channel": 2}]}]},
            expires_in_s=3600)
        sync = "[sync]\ninterval_s = 0.2\nbundle_interval_s = 0.3\nmax_backoff_s = 0.5\n"
        async with running(write_config(tmp_path, field.endpoint, sync + RULES)) as gateway:
            await wait_until(lambda: gateway.rules.report()["bundle_version"] == 1)
            assert gateway.rules.rules[0].threshold == 240
            proxy.refuse()
            await asyncio.sleep(0.3)
            meter.set_value("voltage", 245)  # above the bundle's 240, below the file's 250
            await wait_until(lambda: board.relay(2))
            assert not board.relay(3)
            proxy.pass_through()
            await wait_until(lambda: bool(hub_alarms(hub)), within_s=15)
    ((kind, device, attrs),) = hub_alarms(hub)
    assert (kind, device) == ("alarm.raised", "berth-meter")
    assert attrs["rule"] == "overvoltage"
    assert attrs["threshold"] == 240
    assert attrs["severity"] == "critical"
    assert attrs["value"] == pytest.approx(245, abs=0.1)
