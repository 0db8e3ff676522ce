"""The MQTT session over real brokers: persistent sessions, acks after commit, fallbacks."""

from __future__ import annotations

import asyncio
import uuid

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.drivers.lora.mqtt import BrokerSettings, Delivery, MqttSession, parse_broker_url
from edge_agent.errors import ConfigError
from tests.helpers.mqtt import Broker, PrivateMosquitto, mqtt_broker, private_mosquitto

__all__ = ["mqtt_broker", "private_mosquitto"]


def publish(url: str, topic: str, payloads: list[bytes]) -> None:
    host, port, _ = parse_broker_url(url)
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    client.connect(host, port)
    client.loop_start()
    for payload in payloads:
        client.publish(topic, payload, qos=1).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


class Receiver:
    """Collects deliveries; acks them when told to."""

    def __init__(self, url: str, client_id: str, topic: str, *, ack: bool) -> None:
        self.got: list[Delivery] = []
        self.ack = ack
        self.session = MqttSession(
            BrokerSettings(url=url, client_id=client_id, session_expiry_s=300),
            [topic], self.on_batch)

    def on_batch(self, batch: list[Delivery]) -> None:
        self.got.extend(batch)
        if self.ack:
            for delivery in batch:
                assert self.session.ack(delivery)

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(10):
            while len(self.got) < count:
                await asyncio.sleep(0.02)


async def test_messages_arrive_in_order_over_mqtt5_or_the_311_fallback(
    mqtt_broker: Broker,
) -> None:
    topic = f"test/{uuid.uuid4()}"
    receiver = Receiver(mqtt_broker.url, f"ponton-{uuid.uuid4().hex[:8]}", f"{topic}/#",
                        ack=True)
    receiver.session.start()
    await asyncio.wait_for(receiver.session.subscribed.wait(), 10)
    payloads = [f"m{i}".encode() for i in range(50)]
    await asyncio.to_thread(publish, mqtt_broker.url, f"{topic}/x", payloads)
    await receiver.wait_for(50)
    await receiver.session.close()
    assert [d.payload for d in receiver.got] == payloads
    assert receiver.session.protocol == ("5" if mqtt_broker.kind == "mosquitto" else "3.1.1")


async def test_unacknowledged_messages_come_again_and_acknowledged_ones_do_not(
    private_mosquitto: PrivateMosquitto,
) -> None:
    url, topic, client_id = private_mosquitto.url, f"t/{uuid.uuid4()}", "ponton-redelivery"
    first = Receiver(url, client_id, f"{topic}/#", ack=False)
    first.session.start()
    await asyncio.wait_for(first.session.subscribed.wait(), 10)
    await asyncio.to_thread(publish, url, f"{topic}/x", [b"a", b"b", b"c"])
    await first.wait_for(3)
    first.session.ack(first.got[0])  # only the first was "committed"
    await asyncio.sleep(0.2)
    await first.session.close()

    again = Receiver(url, client_id, f"{topic}/#", ack=True)
    again.session.start()
    await again.wait_for(2)
    await asyncio.sleep(0.3)
    await again.session.close()
    assert [d.payload for d in again.got] == [b"b", b"c"]


async def test_an_ack_from_a_lost_connection_is_not_sent_on_the_new_one(
    private_mosquitto: PrivateMosquitto,
) -> None:
    url, topic = private_mosquitto.url, f"t/{uuid.uuid4()}"
    receiver = Receiver(url, "ponton-generations", f"{topic}/#", ack=False)
    receiver.session.start()
    await asyncio.wait_for(receiver.session.subscribed.wait(), 10)
    await asyncio.to_thread(publish, url, f"{topic}/x", [b"a"])
    await receiver.wait_for(1)
    private_mosquitto.stop()
    async with asyncio.timeout(10):
        while receiver.session.connected.is_set():
            await asyncio.sleep(0.02)
    private_mosquitto.start()
    await asyncio.wait_for(receiver.session.connected.wait(), 15)
    assert not receiver.session.ack(receiver.got[0])  # its mid belongs to the old connection
    await receiver.wait_for(2)  # the broker kept the session and delivers it again
    assert receiver.got[1].payload == b"a"
    assert receiver.got[1].generation > receiver.got[0].generation
    assert receiver.session.ack(receiver.got[1])
    await receiver.session.close()


@pytest.mark.usefixtures("no_leaks")
async def test_a_closed_session_holds_no_socket(mqtt_broker: Broker) -> None:
    """paho closes the socket pair that wakes its thread only when the client is collected,
    in no set order for a client in a cycle: close() does not leave it to that."""
    if mqtt_broker.kind != "mosquitto":
        pytest.skip("the embedded broker, in this process, closes its end in its own time")
    topic = f"test/{uuid.uuid4()}"
    receiver = Receiver(mqtt_broker.url, f"ponton-{uuid.uuid4().hex[:8]}", f"{topic}/#",
                        ack=True)
    receiver.session.start()
    await asyncio.wait_for(receiver.session.subscribed.wait(), 10)
    await receiver.session.close()


@pytest.mark.parametrize("url", ["http://broker", "mqtt://", "mqtt://host:99999", "broker:1883"])
def test_a_broker_url_that_is_not_mqtt_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="mqtt"):
        parse_broker_url(url)


def test_broker_urls_default_to_the_standard_ports() -> None:
    assert parse_broker_url("mqtt://10.0.0.2") == ("10.0.0.2", 1883, False)
    assert parse_broker_url("mqtts://broker.example.org") == ("broker.example.org", 8883, True)
