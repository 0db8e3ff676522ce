"""A gateway imports only what its configuration uses, and still checks its hub's signatures.

The import checks run the real ``edge-agent run`` (the launcher's ``main``) on a simulated
SDM120 over Modbus TCP, and list ``sys.modules`` as the process exits, so modules imported
lazily after the start count too; the provisioned one syncs to a real hub process.
"""

from __future__ import annotations

import platform
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent import signatures
from edge_agent.codecs.bundle import (
    generate_signing_key,
    public_key_bytes,
    sign_bundle,
    verify_bundle,
)
from edge_agent.config import load_config
from edge_agent.errors import BundleError
from edge_agent.features import Features
from edge_agent.runtime import STATUS_FILE
from sync_server import admin
from tests.conftest import SimulatorStarter
from tests.helpers.gateway import agent, hub_content
from tests.helpers.hub import HubProcess, start_hub

#: Never imported by ``run`` on a Modbus TCP gateway, provisioned or not: pymodbus and
#: pyserial serve RTU lines only (edge_agent.drivers.modbus.rtu), pydantic is the hub's (the
#: agent's models are msgspec structs, docs/benchmarks.md "A lean agent"), and neither the
#: version nor an HTTP date needs the email package.
NEVER = ("rich", "typer", "click", "cryptography", "edge_agent.cli", "edge_agent.access",
         "edge_agent.drivers.tic", "edge_agent.drivers.lora", "paho", "google",
         "prometheus_client", "pymodbus", "serial", "edge_agent.drivers.modbus.rtu", "httpx",
         "httpcore", "anyio", "sniffio", "idna", "pydantic", "pydantic_core", "email",
         "importlib.metadata", "zipfile")
TERRITORY = "lean"
#: ``edge-agent ARGS`` that writes the names in ``sys.modules`` to ``argv[1]`` as it exits.
_LIST_AT_EXIT = """import atexit, sys
listing = sys.argv.pop(1)
atexit.register(lambda: open(listing, "w").write("\\n".join(sys.modules)))
from edge_agent.launcher import main
main()
"""


def _gateway(root: Path, endpoint: str, *, line: str = "tcp") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    config = root / "gateway.toml"
    config.write_text(
        '[gateway]\nid = "lean-gw"\ndata_dir = "var"\n\n'
        "[sync]\ninterval_s = 0.2\nmax_backoff_s = 0.5\ntimeout_s = 5\n\n"
        f'[[buses]]\nname = "lan"\n{line} = "{endpoint}"\ntimeout_ms = 500\n\n'
        '[[devices]]\nname = "berth-1"\nbus = "lan"\nprofile = "eastron-sdm120"\n'
        "unit = 1\ninterval_s = 0.2\n", encoding="utf-8")
    return config


def _run_and_list_imports(config: Path, done: Callable[[], bool]) -> set[str]:
    """Every module ``edge-agent run`` imported until ``done()``; it must stop cleanly."""
    log, listing = config.parent / "agent.log", config.parent / "modules.txt"
    with log.open("w", encoding="utf-8") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-c", _LIST_AT_EXIT, str(listing), "run", "--config", str(config),
             "--log-level", "WARNING"], stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            deadline = time.monotonic() + 60
            while not ((config.parent / "var" / STATUS_FILE).exists() and done()):
                assert process.poll() is None, log.read_text(encoding="utf-8")
                assert time.monotonic() < deadline, "the agent did not get there in 60 s"
                time.sleep(0.2)
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(30) == 0, log.read_text(encoding="utf-8")
    return set(listing.read_text(encoding="utf-8").split())


def _unwanted(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(f"{n}.") for n in NEVER))


def test_a_modbus_tcp_gateway_not_provisioned_imports_no_pymodbus_sync_access_tic_or_cli(
        tmp_path: Path, simulator_process: SimulatorStarter) -> None:
    config = _gateway(tmp_path, simulator_process("--profile", "eastron-sdm120", "--tcp", "0"))
    status = config.parent / "var" / STATUS_FILE
    modules = _run_and_list_imports(config, lambda: '"polls": 0,' not in status.read_text())
    assert {"edge_agent.drivers.modbus.bus", "msgspec"} <= modules  # the list is real
    assert _unwanted(modules) == []
    assert not {"h11", "edge_agent.sync.client"} & modules


def test_an_rtu_line_brings_in_pymodbus_and_pyserial(
        tmp_path: Path, simulator_process: SimulatorStarter) -> None:
    config = _gateway(tmp_path, simulator_process("--profile", "eastron-sdm120", "--pty"),
                      line="serial")
    status = config.parent / "var" / STATUS_FILE
    modules = _run_and_list_imports(config, lambda: '"polls": 0,' not in status.read_text())
    assert {"pymodbus", "serial", "edge_agent.drivers.modbus.rtu"} <= modules


def test_a_provisioned_modbus_gateway_syncs_without_cryptography_access_tic_or_cli(
        tmp_path: Path, simulator_process: SimulatorStarter) -> None:
    config = _gateway(tmp_path / "gw", simulator_process("--profile", "eastron-sdm120",
                                                         "--tcp", "0"))
    with start_hub(tmp_path / "hub") as hub:
        _provision(hub, config)
        modules = _run_and_list_imports(
            config, lambda: len(hub_content(hub, TERRITORY, "lean-gw").get("readings", {})) > 0)
    assert {"h11", "edge_agent.sync.http", "edge_agent.sync.client",
            "edge_agent.sync.loop"} <= modules
    assert _unwanted(modules) == []


def _provision(hub: HubProcess, config: Path) -> None:
    hub.territory(TERRITORY)
    code = admin.add_gateway(hub.engine, TERRITORY, f"{TERRITORY}-site", "lean-gw").code
    agent("provision", "--config", str(config), "--hub", hub.url, "--code", code,
          "--insecure-http")


def test_features_name_the_modules_a_configuration_brings_in(tmp_path: Path) -> None:
    config = _gateway(tmp_path, "127.0.0.1:9")
    assert Features.of(load_config(config), provisioned=True) == Features(provisioned=True)
    assert Features.of(load_config(config), provisioned=False) == Features()
    with config.open("a", encoding="utf-8") as more:
        more.write('\n[[tic]]\nname = "linky"\nserial = "/dev/ttyAMA0"\n')
    assert Features.of(load_config(config), provisioned=False) == Features(tic=True)
    assert Features().modules() == []
    assert "edge_agent.sync.client" in Features(provisioned=True).modules()
    assert Features(tic=True).modules() == ["edge_agent.drivers.tic"]
    assert all(m.startswith("edge_agent.access.") for m in Features(access=True).modules())


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_agrees_to_one_malloc_arena() -> None:
    probe = subprocess.run([sys.executable, "-c", "from edge_agent.memory import single_arena; "
                            "print(single_arena())"], capture_output=True, text=True,
                           timeout=60, check=True)
    assert probe.stdout.strip() == "True"


_MESSAGE = b'{"kind":"policy"}'


@pytest.fixture(params=["libcrypto", "cryptography"])
def verifier(request: pytest.FixtureRequest) -> signatures.Verifier:
    """Both ways of checking: the agent's (libcrypto) and the fallback (cryptography)."""
    if request.param == "cryptography":
        return signatures._cryptography_verifier
    chosen = signatures._verifier()
    assert chosen is not signatures._cryptography_verifier, "libcrypto was not usable here"
    return chosen


def test_a_good_signature_verifies_and_a_tampered_one_does_not(
        verifier: signatures.Verifier) -> None:
    key = Ed25519PrivateKey.generate()
    public = public_key_bytes(key)
    signature = key.sign(_MESSAGE)
    assert verifier(public, signature, _MESSAGE)
    assert not verifier(public, signature, b'{"kind":"config"}')
    assert not verifier(public, bytes([signature[0] ^ 1]) + signature[1:], _MESSAGE)
    assert not verifier(public_key_bytes(Ed25519PrivateKey.generate()), signature, _MESSAGE)


def test_keys_and_signatures_of_the_wrong_length_are_refused_not_raised() -> None:
    key = Ed25519PrivateKey.generate()
    public, signature = public_key_bytes(key), key.sign(_MESSAGE)
    assert not signatures.verify_ed25519(public[:31], signature, _MESSAGE)
    assert not signatures.verify_ed25519(public, signature + b"\0", _MESSAGE)
    assert not signatures.verify_ed25519(b"", b"", _MESSAGE)


def test_a_bundle_signed_by_the_hub_verifies_and_one_signed_by_another_key_does_not() -> None:
    key, other = generate_signing_key(), generate_signing_key()
    def signed(by: Ed25519PrivateKey) -> dict[str, Any]:
        return sign_bundle(by, kind="policy", territory="t", version=3, issued_at_ms=1,
                           expires_at_ms=2, payload={"badges": []})

    envelope = signed(key)
    assert verify_bundle(envelope, public_key_bytes(key), kind="policy",
                         territory="t").version == 3
    forged = {**signed(other), "key_id": envelope["key_id"]}
    with pytest.raises(BundleError, match="signature does not match"):
        verify_bundle(forged, public_key_bytes(key), kind="policy", territory="t")
