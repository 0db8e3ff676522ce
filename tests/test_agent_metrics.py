"""The agent's opt-in /metrics, scraped from a real agent process polling a simulated meter
and pushing to a real hub; its JSON log lines; and a gateway without ``[metrics]`` that never
imports prometheus-client.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sync_server import admin
from tests.helpers.gateway import agent
from tests.helpers.hub import HubProcess, start_hub

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    with start_hub(tmp_path_factory.mktemp("hub")) as running:
        yield running


@pytest.fixture
def meter_port() -> Iterator[int]:
    process = subprocess.Popen(
        [sys.executable, "-m", "simulators.modbus", "--profile", "eastron-sdm630", "--tcp", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    ready = process.stdout.readline().split()
    assert ready[:1] == ["READY"], process.communicate()[1]
    yield int(ready[2].rsplit(":", 1)[1])
    process.kill()
    process.communicate(timeout=10)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _gateway(root: Path, meter: int, metrics: int) -> Path:
    config = root / "gateway.toml"
    config.write_text(
        f'[gateway]\nid = "gw-metrics"\ndata_dir = "var"\n\n'
        '[sync]\ninterval_s = 0.2\nmax_backoff_s = 0.5\ntimeout_s = 5\n\n'
        f'[metrics]\nlisten = "127.0.0.1:{metrics}"\n\n'
        f'[[buses]]\nname = "lan"\ntcp = "127.0.0.1:{meter}"\ntimeout_ms = 200\n\n'
        '[[devices]]\nname = "feeder"\nbus = "lan"\nprofile = "eastron-sdm630"\n'
        "unit = 1\ninterval_s = 0.2\n", encoding="utf-8")
    return config


def _scrape(port: int) -> Samples:
    answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert answer.status_code == 200
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(answer.text)
            for sample in family.samples}


def _wait_for(port: int, name: str, labels: dict[str, str], above: float) -> Samples:
    """Scrapes until ``name{labels}`` exceeds ``above`` (bounded: 30 s)."""
    key = (name, tuple(sorted(labels.items())))
    deadline = time.monotonic() + 30
    while True:
        try:
            samples = _scrape(port)
        except httpx.TransportError:
            samples = {}
        if samples.get(key, -1.0) > above:
            return samples
        assert time.monotonic() < deadline, (key, samples)
        time.sleep(0.2)


def test_a_running_agent_serves_its_status_as_metrics(tmp_path: Path, hub: HubProcess,
                                                      meter_port: int) -> None:
    metrics_port = _free_port()
    config = _gateway(tmp_path, meter_port, metrics_port)
    hub.territory("agent-metrics")
    code = admin.add_gateway(hub.engine, "agent-metrics", "agent-metrics-site",
                             "gw-metrics").code
    agent("provision", "--config", str(config), "--hub", hub.url, "--code", code,
          "--insecure-http")
    log_path = tmp_path / "agent.log"
    with log_path.open("w") as log:
        process = subprocess.Popen([sys.executable, "-m", "edge_agent", "run", "--config",
                                    str(config), "--log-format", "json"],
                                   stdout=subprocess.DEVNULL, stderr=log, text=True)
    try:
        feeder = {"device": "feeder", "bus": "lan"}
        first = _wait_for(metrics_port, "ponton_agent_sync_pushed_records_total", {}, 0)
        assert first[("ponton_agent_device_online", tuple(sorted(feeder.items())))] == 1
        assert first[("ponton_agent_device_polls_total", tuple(sorted(feeder.items())))] > 0
        assert ("ponton_agent_device_late_polls_total", tuple(sorted(feeder.items()))) in first
        for stream in ("alarms", "events", "readings"):
            assert ("ponton_agent_outbox_records", (("stream", stream),)) in first
            assert ("ponton_agent_outbox_oldest_age_seconds", (("stream", stream),)) in first
        assert ("ponton_agent_sync_lag_seconds", ()) in first
        assert ("ponton_agent_sync_consecutive_failures", ()) in first
        assert ("ponton_agent_device_errors_total",
                (("bus", "lan"), ("device", "feeder"), ("kind", "timeout"))) in first
        # junk on the metrics port (no request line, a bodyless POST, a binary blob)
        # costs the agent nothing: the next scrape still answers, and the agent still runs
        for junk in (b"\r\n\r\n", b"POST /metrics HTTP/1.1\r\nContent-Length: 9\r\n\r\n",
                     bytes(range(256)) * 64):
            with socket.create_connection(("127.0.0.1", metrics_port), timeout=10) as raw:
                raw.sendall(junk)
        # the meter keeps answering, the agent keeps pushing: the figures move
        _wait_for(metrics_port, "ponton_agent_sync_pushed_records_total", {},
                  first[("ponton_agent_sync_pushed_records_total", ())])
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert process.returncode == 0, log_path.read_text()
    with pytest.raises(httpx.TransportError):  # the port is freed on the way out
        httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert any("started" in line["message"] for line in lines)
    assert all(set(line) >= {"ts", "level", "logger", "message"} for line in lines)


def test_a_metrics_port_in_use_is_one_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "gateway.toml"
        config.write_text(f'[gateway]\nid = "gw"\ndata_dir = "var"\n\n'
                          f'[metrics]\nlisten = "127.0.0.1:{port}"\n', encoding="utf-8")
        done = agent("run", "--config", str(config), check=False, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith(
        f"error: [metrics] cannot listen on 127.0.0.1:{port}:")


@pytest.mark.parametrize("listen", ["9108", "127.0.0.1:70000", "127.0.0.1:", "a b:1"])
def test_a_wrong_metrics_address_is_refused_with_the_file_line(tmp_path: Path,
                                                               listen: str) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(f'[gateway]\nid = "gw"\ndata_dir = "var"\n\n[metrics]\nlisten = "{listen}"\n',
                      encoding="utf-8")
    done = agent("run", "--config", str(config), check=False, timeout=60)
    assert done.returncode == 2
    assert "metrics" in done.stderr, done.stderr
    assert "listen" in done.stderr, done.stderr


def test_a_gateway_without_metrics_never_imports_prometheus_client(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('[gateway]\nid = "gw"\ndata_dir = "var"\n', encoding="utf-8")
    probe = ("import sys, threading, signal, os\n"
             "from edge_agent.daemon import run_gateway\n"
             "threading.Timer(1.5, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()\n"
             f"run_gateway(__import__('pathlib').Path({str(config)!r}))\n"
             "print('prometheus_client' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip() == "False", done.stderr
