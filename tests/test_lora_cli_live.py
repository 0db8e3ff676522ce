"""``edge-agent lora listen`` and ``lora send`` as an installer runs them, over real brokers."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.drivers.lora.mqtt import parse_broker_url
from simulators.lora.chirpstack import ChirpstackPublisher
from tests.helpers.mqtt import Broker, mqtt_broker
from tests.test_lora_gateway import FLOOD, SPOT, gateway_toml

__all__ = ["mqtt_broker"]


def edge_agent(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "edge_agent", *args], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


async def test_listen_prints_decoded_uplinks_as_json_lines_then_the_counters(
    tmp_path: Path, mqtt_broker: Broker
) -> None:
    app = str(uuid.uuid4())
    config = gateway_toml(tmp_path, mqtt_broker, app)
    with edge_agent("lora", "listen", "--config", str(config), "--count", "3",
                    "--timeout", "60", "--json") as listener:
        assert listener.stdout is not None
        assert listener.stderr is not None
        try:
            said = [await asyncio.to_thread(listener.stderr.readline) for _ in range(2)]
            assert said[0].startswith("connecting to "), said
            assert said[1].startswith("listening to "), said  # only once subscribed
            publisher = await asyncio.to_thread(ChirpstackPublisher, mqtt_broker.url, app)
            await asyncio.to_thread(publisher.uplink, FLOOD, {"distance": 0.85})
            await asyncio.to_thread(publisher.uplink, SPOT, {"spot_occupied": 1})
            await asyncio.to_thread(publisher.raw,
                                    f"application/{app}/device/{SPOT.dev_eui}/event/up",
                                    b"not json")
            await asyncio.to_thread(publisher.close)
        except BaseException:
            listener.kill()
            raise
        # Through the readers that took the first lines: communicate would read the pipes
        # underneath and miss what they hold.
        out = await asyncio.to_thread(listener.stdout.read)
        err = await asyncio.to_thread(listener.stderr.read)
    assert listener.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    values = {(line["device"], line["quantity"]): line["value"] for line in lines}
    assert values[("flood-1", "distance")] == 0.85
    assert values[("spot-12", "spot_occupied")] == 1
    assert "messages 3, unknown devices 0, malformed 1" in err


def test_listen_exits_1_when_the_count_does_not_come(tmp_path: Path) -> None:
    broker = Broker("mqtt://127.0.0.1:9", "none", redelivers=False)  # nothing listens there
    config = gateway_toml(tmp_path, broker, str(uuid.uuid4()))
    done = subprocess.run([sys.executable, "-m", "edge_agent", "lora", "listen", "--config",
                           str(config), "--count", "1", "--timeout", "1"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 1
    assert "messages 0" in done.stderr


def test_listen_stops_on_ctrl_c_while_still_connecting(tmp_path: Path) -> None:
    broker = Broker("mqtt://127.0.0.1:9", "none", redelivers=False)  # nothing listens there
    config = gateway_toml(tmp_path, broker, str(uuid.uuid4()))
    with edge_agent("lora", "listen", "--config", str(config)) as listener:  # no --timeout
        assert listener.stderr is not None
        try:
            assert listener.stderr.readline().startswith("connecting to ")
            listener.send_signal(signal.SIGINT)
            listener.wait(30)
        except BaseException:
            listener.kill()
            raise
        err = listener.stderr.read()
    assert listener.returncode == 0, err
    assert "listening to" not in err
    assert "messages 0" in err


async def test_send_queues_a_downlink_chirpstack_accepts(
    tmp_path: Path, mqtt_broker: Broker
) -> None:
    app = str(uuid.uuid4())
    config = gateway_toml(tmp_path, mqtt_broker, app)
    host, port, _ = parse_broker_url(mqtt_broker.url)
    got: list[paho.MQTTMessage] = []
    subscribed = asyncio.Event()
    loop = asyncio.get_running_loop()
    watcher = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"cs-{uuid.uuid4().hex[:8]}")
    watcher.on_connect = lambda c, *_: c.subscribe(f"application/{app}/device/+/command/down", 1)

    def on_subscribe(*_: object) -> None:
        loop.call_soon_threadsafe(subscribed.set)

    watcher.on_subscribe = on_subscribe
    watcher.on_message = lambda _c, _u, message: got.append(message)
    watcher.connect(host, port)
    watcher.loop_start()
    try:
        await asyncio.wait_for(subscribed.wait(), 10)
        done = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "edge_agent", "lora", "send", "01 2C",
                             "--device", "flood-1", "--fport", "10", "--confirmed",
                             "--config", str(config)],
            capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        async with asyncio.timeout(10):
            while not got:
                await asyncio.sleep(0.05)
    finally:
        watcher.disconnect()
        watcher.loop_stop()
    assert got[0].topic == f"application/{app}/device/{FLOOD.dev_eui}/command/down"
    command = json.loads(got[0].payload)
    assert command["devEui"] == FLOOD.dev_eui
    assert command["fPort"] == 10
    assert command["confirmed"] is True
    assert command["data"] == "ASw="
    assert f"queued downlink {command['id']} for flood-1" in done.stdout


def test_send_to_an_unknown_device_is_one_error_line(tmp_path: Path) -> None:
    broker = Broker("mqtt://127.0.0.1:9", "none", redelivers=False)
    config = gateway_toml(tmp_path, broker, str(uuid.uuid4()))
    done = subprocess.run([sys.executable, "-m", "edge_agent", "lora", "send", "01",
                           "--device", "flod-1", "--fport", "10", "--config", str(config)],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2
    assert done.stderr.startswith("error: no LoRa device named 'flod-1'")
    assert "flood-1" in done.stderr
