"""Where rules come from: ``[[rules]]`` in the gateway file, cross-checked against it, and the
signed config bundle, whose rules replace file rules of the same name (held across restarts,
installed live when a new bundle is accepted)."""

from __future__ import annotations

import asyncio
import json
import tomllib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.codecs.bundle import (
    generate_signing_key,
    key_id,
    public_key_bytes,
    sign_bundle,
)
from edge_agent.config import load_config
from edge_agent.errors import ConfigError
from edge_agent.profiles import load_profile
from edge_agent.records import now_ms
from edge_agent.rules.models import DownlinkAction, LatchAction, PulseAction, RuleConfig
from edge_agent.runtime import BUNDLES_DIR
from edge_agent.schema import field_names, validate
from edge_agent.sync.bundles import BundleStore
from edge_agent.sync.identity import Identity, save_identity
from simulators.modbus import ModbusSimulator, SimulatedMeter
from simulators.modbus.relay_board import SimulatedRelayBoard
from tests.test_relay_board import wait_until
from tests.test_rules_gateway import RULES, alarms, running, write_config

TERRITORY = "caux-seine"

GATES = """
[[gates]]
name = "gate-a"
relay = "relays"
channel = 1
"""


def configured(tmp_path: Path, rules: str) -> Path:
    return write_config(tmp_path, "127.0.0.1:1502", GATES + rules)


@pytest.mark.parametrize(("rules", "message"), [
    (RULES.replace('device = "berth-meter"', 'device = "berth-meters"'),
     "rule overvoltage: device 'berth-meters' is not declared; did you mean 'berth-meter'?"),
    (RULES.replace('board = "relays", channel = 3', 'board = "relay", channel = 3'),
     "rule overvoltage: board 'relay' is not declared; did you mean 'relays'?"),
    (RULES.replace("channel = 3", "channel = 1"),
     "rule overvoltage: channel 1 of relays belongs to gate-a; latch another channel"),
    (RULES + RULES, "rule name 'overvoltage' is used twice"),
    (RULES + RULES.replace('name = "overvoltage"', 'name = "undervoltage"').replace(
        'kind = "above"', 'kind = "below"').replace("threshold = 250\nclear_at = 245",
                                                    "threshold = 200\nclear_at = 205")
     .replace("channel = 3}", "channel = 3, on = false}"),
     "rules overvoltage and undervoltage latch channel 3 of relays to opposite states"),
    (RULES.replace("severity", "severty"), "rules[overvoltage].severty: unknown field; did "
     "you mean 'severity'?"),
    (RULES.replace("ms = 500", "ms = 5"), "rules[overvoltage].on_raise.1.ms: Input "
     "should be greater than or equal to 100"),
])
def test_invalid_rules_in_the_gateway_file_are_named_with_a_fix(tmp_path: Path, rules: str,
                                                                 message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(configured(tmp_path, rules))
    assert message in str(raised.value)


def test_a_pulse_may_share_a_gate_s_channel(tmp_path: Path) -> None:
    config = load_config(configured(tmp_path, RULES.replace("channel = 4", "channel = 1")))
    assert [rule.name for rule in config.rules] == ["overvoltage"]
    assert config.device_names() == {"relays", "berth-meter"}


def provision(data_dir: Path) -> tuple[BundleStore, Ed25519PrivateKey]:
    """An identity (sync disabled in the file: no hub needed) and its bundle store."""
    key = generate_signing_key()
    public = public_key_bytes(key)
    save_identity(data_dir, Identity(
        hub_url="http://127.0.0.1:9", gateway="rules-gw", territory=TERRITORY, site="d982",
        token="pgw_test", signing_public_key=public, signing_key_id=key_id(public),
        badge_key=bytes(32), provisioned_at_ms=now_ms(), insecure_http=True))
    return BundleStore(data_dir / BUNDLES_DIR, public, TERRITORY), key


def envelope(key: Ed25519PrivateKey, version: int, rules: list[dict[str, object]]) -> bytes:
    signed = sign_bundle(key, kind="config", territory=TERRITORY,
                         version=version, issued_at_ms=now_ms(),
                         expires_at_ms=now_ms() + 3_600_000, payload={"rules": rules})
    return json.dumps(signed).encode()


LOWER = {"name": "overvoltage", "device": "berth-meter", "quantity": "voltage",
         "kind": "above", "threshold": 240, "clear_at": 235,
         "on_raise": [{"type": "latch", "board": "relays", "channel": 6}]}
ELSEWHERE = {"name": "d100-silent", "device": "level-d100", "kind": "stale", "after_s": 60}


async def test_bundle_rules_replace_file_rules_at_start_and_when_a_new_one_arrives(
        tmp_path: Path) -> None:
    board = SimulatedRelayBoard(1)
    meter = SimulatedMeter(2, load_profile("eastron-sdm120"), seed=1, update_interval=0)
    meter.set_value("voltage", 245)  # above the bundle's 240, below the file's 250
    data_dir = tmp_path / "data"
    store, key = provision(data_dir)
    assert store.accept(envelope(key, 1, [LOWER, ELSEWHERE]), now_ms=now_ms()) is not None
    config = write_config(tmp_path, "HOST", "[sync]\nenabled = false\n" + RULES)
    async with ModbusSimulator([board, meter]) as field:
        config.write_text(config.read_text().replace("HOST", field.endpoint))
        async with running(config) as gateway:
            await wait_until(lambda: board.relay(6))
            report = gateway.rules.report()
            assert report["bundle_version"] == 1
            assert [rule["name"] for rule in report["rules"]] == ["overvoltage"]
            assert report["skipped"] == [
                "rule d100-silent: device 'level-d100' is not declared; declared: "
                "berth-meter, relays"]
            # Version 2 drops the rule: the file's own is back in force, the alarm raised
            # by the bundle's rule clears and its latch is released.
            newer = store.accept(envelope(key, 2, []), now_ms=now_ms())
            assert newer is not None
            gateway._bundle_accepted(newer)
            await wait_until(lambda: not board.relay(6))
            assert gateway.rules.report()["bundle_version"] == 2
            assert not board.relay(3)  # 245 V is below the file's 250 V
    events = [(e.kind, e.attrs["rule"], e.attrs.get("reason")) for e in alarms(data_dir)]
    assert events == [("alarm.raised", "overvoltage", None),
                      ("alarm.cleared", "overvoltage", "rule_changed")]


async def test_an_invalid_bundle_leaves_the_rules_in_force(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    store, key = provision(data_dir)
    config = write_config(tmp_path, "127.0.0.1:1", "[sync]\nenabled = false\n" + RULES)
    broken = {**LOWER, "kind": "sideways"}
    async with running(config) as gateway:
        await asyncio.sleep(0.2)
        bundle = store.accept(envelope(key, 1, [broken]), now_ms=now_ms())
        assert bundle is not None
        gateway._bundle_accepted(bundle)
        report = gateway.rules.report()
    assert report["bundle_version"] is None
    assert [rule["name"] for rule in report["rules"]] == ["overvoltage"]
    assert gateway.rules.rules[0].threshold == 250


def test_every_rule_and_action_field_is_documented() -> None:
    root = Path(__file__).resolve().parents[1]
    configuration = (root / "docs" / "configuration.md").read_text(encoding="utf-8")
    for field in field_names(RuleConfig):
        assert f"| `rules.{field}` |" in configuration, field
    for action in (PulseAction, LatchAction, DownlinkAction):
        for field in field_names(action):
            assert f"`{field}`" in configuration, f"{action.__name__}.{field}"
    assert "edge-agent rules test" in (root / "docs" / "rules.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("doc", ["rules.md", "configuration.md"])
def test_the_rules_in_the_docs_are_valid(doc: str) -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / doc).read_text(encoding="utf-8")
    blocks = [block.split("```", 1)[0] for block in text.split("```toml\n")[1:]]
    rules = [rule for block in blocks for rule in tomllib.loads(block).get("rules", [])]
    assert rules
    for rule in rules:
        validate(RuleConfig, rule)
