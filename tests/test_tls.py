"""TLS between gateway and hub: a real hub process serving HTTPS with a test CA, real agents.

The agent trusts the hub through a private CA bundle given at provisioning, refuses a hub
its bundle does not vouch for with one line naming the certificate problem, and presents
its own certificate to a hub that requires one (mutual TLS).
"""

from __future__ import annotations

import asyncio
import ssl
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import msgspec
import pytest

from edge_agent.config import SyncSection, load_config
from edge_agent.errors import ConfigError, HubUnreachable, HubUntrusted
from edge_agent.runtime import OUTBOX_FILE
from edge_agent.store import Outbox
from edge_agent.sync.client import HubClient
from edge_agent.sync.identity import load_identity
from edge_agent.sync.loop import SyncLoop
from sync_server import admin
from tests.helpers.certificates import ScratchCa
from tests.helpers.gateway import agent, hub_content, make_gateway
from tests.helpers.hub import HubProcess, hub_cli, start_hub
from tests.test_sync_agent import closed_port

_COUNTS = {"alarms": 3, "events": 5, "readings": 40}


@dataclass(frozen=True)
class Pki:
    """The hub's CA and its server certificate, a gateway's client certificate, and a CA
    nobody here trusts with a client certificate of its own."""

    ca: ScratchCa
    server: tuple[Path, Path]
    client: tuple[Path, Path]
    other_ca: ScratchCa
    rogue_client: tuple[Path, Path]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca, other = ScratchCa.create(directory, "hub"), ScratchCa.create(directory, "other")
    return Pki(ca, ca.issue("server", server=True), ca.issue("gw-1", server=False), other,
               other.issue("rogue", server=False))


@pytest.fixture(scope="module")
def tls_hub(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    """A hub serving HTTPS, client certificates not asked for."""
    cert, key = pki.server
    with start_hub(tmp_path_factory.mktemp("tls-hub"),
                   serve_args=("--tls-cert", str(cert), "--tls-key", str(key))) as hub:
        yield hub


@pytest.fixture(scope="module")
def mtls_hub(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    """A hub serving HTTPS that requires client certificates from the hub's CA."""
    cert, key = pki.server
    with start_hub(tmp_path_factory.mktemp("mtls-hub"),
                   serve_args=("--tls-cert", str(cert), "--tls-key", str(key),
                               "--tls-client-ca", str(pki.ca.cert_path))) as hub:
        yield hub


def _provision(hub: HubProcess, tmp_path: Path, name: str, *args: str) -> tuple[int, str]:
    """``edge-agent provision ARGS`` for a fresh gateway; its exit code and stderr."""
    config = tmp_path / "gateway.toml"
    config.write_text(f'[gateway]\nid = "{name}"\ndata_dir = "var"\n')
    hub.territory("tls")
    code = admin.add_gateway(hub.engine, "tls", "tls-site", name).code
    done = agent("provision", "--config", str(config), "--hub", hub.url, "--code", code, *args,
                 check=False)
    return done.returncode, done.stderr


def test_the_hub_says_https_when_it_serves_tls(tls_hub: HubProcess) -> None:
    assert tls_hub.url.startswith("https://127.0.0.1:")


def test_an_agent_with_the_ca_bundle_enrolls_and_pushes(pki: Pki, tls_hub: HubProcess,
                                                        tmp_path: Path) -> None:
    gateway = make_gateway(tmp_path, tls_hub, "tls", "gw-ca", counts=_COUNTS,
                           provision_args=("--ca-bundle", str(pki.ca.cert_path)))
    identity = load_identity(gateway.data_dir)
    assert identity is not None
    assert identity.ca_bundle is not None
    assert identity.ca_bundle.parent == gateway.data_dir.resolve()
    assert identity.ca_bundle.read_bytes() == pki.ca.cert_path.read_bytes()
    assert stat.S_IMODE(identity.ca_bundle.stat().st_mode) == 0o600
    agent("sync", "--config", str(gateway.config), "--once")
    held = hub_content(tls_hub, "tls", "gw-ca")
    assert {stream: len(records) for stream, records in held.items()} == _COUNTS


@pytest.mark.parametrize("bundle", [None, "other"])
def test_a_hub_the_bundle_does_not_vouch_for_is_refused_in_one_line(
        pki: Pki, tls_hub: HubProcess, tmp_path: Path, bundle: str | None) -> None:
    args = ("--ca-bundle", str(pki.other_ca.cert_path)) if bundle else ()
    code, stderr = _provision(tls_hub, tmp_path, f"gw-refused-{bundle or 'public'}", *args)
    assert code != 0
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "the hub's certificate did not verify" in lines[0]
    assert "unable to get local issuer certificate" in lines[0]
    assert not (tmp_path / "var" / "identity.json").exists()


def test_a_config_bundle_overrides_the_provisioned_one(pki: Pki, tls_hub: HubProcess,
                                                      tmp_path: Path) -> None:
    gateway = make_gateway(tmp_path, tls_hub, "tls", "gw-override", counts=_COUNTS,
                           provision_args=("--ca-bundle", str(pki.ca.cert_path)))
    config = gateway.config.read_text()
    gateway.config.write_text(config + f'ca_bundle = "{pki.other_ca.cert_path}"\n')
    done = agent("sync", "--config", str(gateway.config), "--once", check=False)
    assert done.returncode != 0
    assert "the hub's certificate did not verify" in done.stderr
    assert hub_content(tls_hub, "tls", "gw-override") == {}


async def test_a_certificate_failure_is_untrusted_not_unreachable(
        pki: Pki, tls_hub: HubProcess, tmp_path: Path) -> None:
    gateway = make_gateway(tmp_path, tls_hub, "tls", "gw-untrusted", counts=_COUNTS,
                           provision_args=("--ca-bundle", str(pki.ca.cert_path)))
    identity = load_identity(gateway.data_dir)
    assert identity is not None
    async with HubClient(msgspec.structs.replace(identity, ca_bundle=None)) as client:
        with pytest.raises(HubUntrusted, match="certificate did not verify") as refused:
            await client.acked()
    assert not isinstance(refused.value, HubUnreachable)
    async with HubClient(identity) as client:
        assert await client.acked() == {}


async def test_a_tls_hub_that_is_down_is_unreachable_not_a_client_certificate_problem(
        pki: Pki, tls_hub: HubProcess, tmp_path: Path) -> None:
    """The most common failure must not send an installer after certificates."""
    gateway = make_gateway(tmp_path, tls_hub, "tls", "gw-down", counts=_COUNTS,
                           provision_args=("--ca-bundle", str(pki.ca.cert_path)))
    identity = load_identity(gateway.data_dir)
    assert identity is not None
    down = f"https://127.0.0.1:{closed_port()}"
    async with HubClient(msgspec.structs.replace(identity, hub_url=down)) as client:
        with pytest.raises(HubUnreachable) as caught:
            await client.acked()
    assert f"hub {down} unreachable" in str(caught.value)
    assert "client cert" not in str(caught.value)


async def test_the_sync_loop_reports_an_untrusted_hub_and_waits_its_longest(
        pki: Pki, tls_hub: HubProcess, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """What ``edge-agent status`` shows as the last error, and the log's hint to fix it."""
    gateway = make_gateway(tmp_path, tls_hub, "tls", "gw-loop", counts=_COUNTS,
                           provision_args=("--ca-bundle", str(pki.ca.cert_path)))
    identity = load_identity(gateway.data_dir)
    assert identity is not None
    settings = SyncSection(max_backoff_s=60)
    with Outbox.open(gateway.data_dir / OUTBOX_FILE) as outbox:
        async with HubClient(msgspec.structs.replace(identity, ca_bundle=None)) as client:
            loop = SyncLoop(outbox, client, settings)
            stop = asyncio.Event()
            task = asyncio.create_task(loop.run(stop))
            for _ in range(100):
                if loop.state.consecutive_failures:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)  # a retry would count a second failure
            stop.set()
            await asyncio.wait_for(task, 5)
        report = loop.report(outbox.stats())
    assert report["consecutive_failures"] == 1
    assert "the hub's certificate did not verify" in report["last_error"]
    assert "fix the CA bundle or the client certificate" in caplog.text
    assert "retry in 60 s" in caplog.text


def test_mutual_tls_takes_the_gateway_with_its_certificate(pki: Pki, mtls_hub: HubProcess,
                                                           tmp_path: Path) -> None:
    cert, key = pki.client
    gateway = make_gateway(tmp_path, mtls_hub, "tls", "gw-mtls", counts=_COUNTS,
                           provision_args=("--ca-bundle", str(pki.ca.cert_path),
                                           "--client-cert", str(cert), "--client-key", str(key)))
    identity = load_identity(gateway.data_dir)
    assert identity is not None
    assert identity.client_key is not None
    assert stat.S_IMODE(identity.client_key.stat().st_mode) == 0o600
    agent("sync", "--config", str(gateway.config), "--once")
    held = hub_content(mtls_hub, "tls", "gw-mtls")
    assert {stream: len(records) for stream, records in held.items()} == _COUNTS


@pytest.mark.parametrize("client", [None, "rogue"])
def test_mutual_tls_refuses_a_gateway_without_a_certificate_it_trusts(
        pki: Pki, mtls_hub: HubProcess, tmp_path: Path, client: str | None) -> None:
    """uvicorn closes the connection without a TLS alert (asyncio sends none), so the
    gateway cannot know why: its one line says what such a hang-up means over TLS."""
    args = ["--ca-bundle", str(pki.ca.cert_path)]
    if client:
        cert, key = pki.rogue_client
        args += ["--client-cert", str(cert), "--client-key", str(key)]
    code, stderr = _provision(mtls_hub, tmp_path, f"gw-no-cert-{client or 'none'}", *args)
    assert code != 0
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "the connection closed without an answer" in lines[0], lines[0]
    assert "requires client certificates" in lines[0]
    assert "--client-cert" in lines[0]
    assert not (tmp_path / "var" / "identity.json").exists()


def test_a_client_certificate_needs_its_key(pki: Pki, tls_hub: HubProcess,
                                            tmp_path: Path) -> None:
    code, stderr = _provision(tls_hub, tmp_path, "gw-half", "--client-cert",
                              str(pki.client[0]))
    assert code != 0
    assert "give both --client-cert and --client-key" in stderr


def test_serve_refuses_tls_files_that_do_not_load(pki: Pki, tmp_path: Path) -> None:
    cert, _key = pki.server
    done = hub_cli(tmp_path, "serve", "--port", "0", "--tls-cert", str(cert))
    assert done.returncode != 0
    assert "--tls-cert and --tls-key go together" in done.stderr
    done = hub_cli(tmp_path, "--demo", "serve", "--port", "0", "--tls-cert", str(cert),
                   "--tls-key", str(cert))
    assert done.returncode != 0
    assert "cannot load them" in done.stderr, done.stderr


def test_workers_serve_tls_from_the_environment(pki: Pki, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = pki.server
    monkeypatch.setenv("PONTON_HUB_TLS_CERT", str(cert))
    monkeypatch.setenv("PONTON_HUB_TLS_KEY", str(key))
    with start_hub(tmp_path, serve_args=("--workers", "2")) as hub:
        assert hub.url.startswith("https://")
        trusting = ssl.create_default_context(cafile=pki.ca.cert_path)
        for _ in range(4):  # workers start after READY: a loaded machine takes its time
            answer = httpx.get(f"{hub.url}/v1/gateway/streams", timeout=60, verify=trusting)
            assert answer.status_code == 401
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{hub.url}/v1/gateway/streams", timeout=60)




def test_reading_the_identity_loads_no_http_client() -> None:
    """``status`` reads identity.json (with its TLS paths) without the hub connection (h11),
    httpx or a command line library (rich, click)."""
    probe = subprocess.run(
        [sys.executable, "-c", "import sys; import edge_agent.sync.identity; "
         "print(sorted({'h11', 'httpx', 'rich', 'click'} & set(sys.modules)))"],
        capture_output=True, text=True, timeout=60, check=True)
    assert probe.stdout.strip() == "[]"


def test_config_tls_paths_are_relative_to_the_file_and_go_in_pairs(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    header = '[gateway]\nid = "gw"\ndata_dir = "var"\n\n[sync]\n'
    config.write_text(header + 'ca_bundle = "ca.pem"\nclient_cert = "gw.pem"\n'
                      'client_key = "gw.key"\n')
    sync = load_config(config).sync
    assert (sync.ca_bundle, sync.client_cert, sync.client_key) == (
        tmp_path / "ca.pem", tmp_path / "gw.pem", tmp_path / "gw.key")
    config.write_text(header + 'client_cert = "gw.pem"\n')
    with pytest.raises(ConfigError, match="client_cert and client_key go together"):
        load_config(config)
