"""A thin asyncio wrapper over paho-mqtt: a persistent session with acks after commit.

paho runs its network loop in its own thread (connect, keepalive, reconnection with
backoff); messages cross to the event loop in arrival order, in batches, so a burst costs
one wake-up. With ``manual_ack`` paho never acknowledges a QoS 1 message by itself: the
caller acks once the records are durable, and a message in flight when the agent dies is
delivered again by the broker. The session is MQTT 5 with a session expiry (and a receive
maximum wide enough not to throttle acks after commit); a broker that refuses MQTT 5 gets
MQTT 3.1.1 with ``clean_session = False``, which keeps the session too.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge_agent.errors import ConfigError

__all__ = ["BrokerSettings", "Delivery", "MqttSession", "parse_broker_url"]

log = logging.getLogger("edge_agent.lora.mqtt")

_UNSUPPORTED_PROTOCOL = 0x84
#: How long an MQTT 5 CONNECT may go unanswered before MQTT 3.1.1 is tried ("auto").
_CONNACK_WAIT_S = 3.0
#: Unacknowledged messages the broker may have in flight to us (Mosquitto's default is 20,
#: which would hold ingest to 20 messages per disk commit).
_RECEIVE_MAXIMUM = 1000


def parse_broker_url(url: str) -> tuple[str, int, bool]:
    """``(host, port, tls)`` of ``mqtt://host[:1883]`` or ``mqtts://host[:8883]``."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not parts.hostname:
        raise ConfigError(f"broker {url!r} is not mqtt://HOST[:PORT] or mqtts://HOST[:PORT]")
    tls = parts.scheme in ("mqtts", "ssl")
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError as exc:
        raise ConfigError(f"broker {url!r}: {exc}") from exc
    return parts.hostname, port, tls


def _stop(client: paho.Client) -> None:
    """Disconnect ``client`` and stop its network thread, closing every socket it holds.

    paho closes the socket pair that wakes its thread only when the client is collected; a
    session's client sits in a reference cycle (its callbacks are the session's methods),
    collected in no set order, so the pair could be reported unclosed: a ResourceWarning.
    """
    client.disconnect()
    client.loop_stop()
    client._reset_sockets(sockpair_only=True)  # paho has no public call for it


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """Where the broker is, who we are to it, and how long it keeps our session."""

    url: str
    client_id: str
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None
    protocol: Literal["auto", "5", "3.1.1"] = "auto"
    #: A persistent session survives disconnects; a spectator (``lora listen``) has none.
    persistent: bool = True
    session_expiry_s: int = 7 * 86_400
    keepalive_s: int = 30


@dataclass(frozen=True, slots=True)
class Delivery:
    """A message and the connection it came on: an ack is only valid on that connection."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    generation: int


class MqttSession:
    """One broker connection, kept up until :meth:`close`; hands messages to ``on_batch``.

    ``on_batch`` runs in the event loop with the messages in arrival order. Call :meth:`ack`
    for every QoS 1 delivery, in order, once it is handled.
    """

    def __init__(self, settings: BrokerSettings, topics: list[str],
                 on_batch: Callable[[list[Delivery]], None]) -> None:
        self.settings = settings
        self.topics = topics
        self._on_batch = on_batch
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: collections.deque[Delivery] = collections.deque()
        self._scheduled = False
        self._lock = threading.Lock()
        self._generation = 0
        self.connected = asyncio.Event()
        #: The broker acknowledged this connection's subscriptions: what is published from
        #: now on reaches the session (``connected`` alone is set before the SUBACK).
        self.subscribed = asyncio.Event()
        self._subscribe_mid: int | None = None
        self.protocol = "5" if settings.protocol in ("auto", "5") else "3.1.1"
        self.connects = 0
        self.last_error = ""
        #: The broker answered a CONNECT of the current client (even with a refusal).
        self._answered = False
        self._closing = False
        self._client = self._new_client()

    def _new_client(self) -> paho.Client:
        settings = self.settings
        v5 = self.protocol == "5"
        client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=settings.client_id,
            clean_session=None if v5 else not settings.persistent,
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
            manual_ack=True,
        )
        _, _, tls = parse_broker_url(settings.url)
        if tls:
            client.tls_set(ca_certs=str(settings.ca_file) if settings.ca_file else None,
                           cert_reqs=ssl.CERT_REQUIRED)
        if settings.username is not None:
            client.username_pw_set(settings.username, settings.password)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def start(self) -> None:
        """Start connecting in the background (call from the event loop); paho retries."""
        self._loop = asyncio.get_running_loop()
        host, port, _ = parse_broker_url(self.settings.url)
        properties = None
        kwargs: dict[str, object] = {}
        if self.protocol == "5":
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = (self.settings.session_expiry_s
                                                if self.settings.persistent else 0)
            properties.ReceiveMaximum = _RECEIVE_MAXIMUM
            kwargs["clean_start"] = not self.settings.persistent
        self._client.connect_async(host, port, keepalive=self.settings.keepalive_s,
                                   properties=properties, **kwargs)  # type: ignore[arg-type]
        self._client.loop_start()
        if self._may_fall_back():
            self._loop_call_later()

    async def close(self) -> None:
        """Disconnect (the broker keeps a persistent session) and stop the network thread."""
        self._closing = True
        await asyncio.to_thread(_stop, self._client)
        self.connected.clear()
        self.subscribed.clear()

    def ack(self, delivery: Delivery) -> bool:
        """Acknowledge ``delivery``; False when its connection is gone (it will come again)."""
        if delivery.qos == 0 or delivery.generation != self._generation:
            return False
        return self._client.ack(delivery.mid, delivery.qos) == MQTTErrorCode.MQTT_ERR_SUCCESS

    def publish(self, topic: str, payload: bytes, *, qos: int = 1) -> paho.MQTTMessageInfo:
        """Queue a message for the broker (paho resends it after a reconnect).

        The answer's ``rc`` says whether it was queued; ``wait_for_publish`` waits for the
        broker's acknowledgement.
        """
        return self._client.publish(topic, payload, qos=qos)

    # The callbacks below run in paho's network thread.

    def _on_connect(self, client: paho.Client, _userdata: object, flags: paho.ConnectFlags,
                    reason: ReasonCode, _properties: Properties | None) -> None:
        self._answered = True
        if reason.is_failure:
            self.last_error = str(reason)
            if reason.value == _UNSUPPORTED_PROTOCOL and self._may_fall_back():
                self._call(self._fall_back_to_311)
            else:
                log.warning("broker %s refused the connection: %s", self.settings.url, reason)
            return
        with self._lock:
            self._generation += 1
            self.connects += 1
        _, self._subscribe_mid = client.subscribe([(topic, 1) for topic in self.topics])
        log.info("connected to %s (MQTT %s, session %s)", self.settings.url, self.protocol,
                 "resumed" if flags.session_present else "new")
        self._call(self.connected.set)

    def _on_disconnect(self, _client: paho.Client, _userdata: object,
                       _flags: paho.DisconnectFlags, reason: ReasonCode,
                       _properties: Properties | None) -> None:
        with self._lock:
            self._generation += 1  # acks of the old connection would name the wrong mids
        if not self._answered and self._may_fall_back():
            # Closed before any CONNACK: an MQTT 3.1.1 broker that cannot parse MQTT 5.
            self._call(self._fall_back_to_311)
            return
        if reason.is_failure and not self._closing:
            self.last_error = str(reason)
            log.warning("lost broker %s (%s); reconnecting", self.settings.url, reason)
        self._call(self.connected.clear)
        self._call(self.subscribed.clear)

    def _on_subscribe(self, _client: paho.Client, _userdata: object, mid: int,
                      _reasons: list[ReasonCode], _properties: Properties | None) -> None:
        if mid == self._subscribe_mid:  # not the answer to a connection since gone
            self._call(self.subscribed.set)

    def _on_message(self, _client: paho.Client, _userdata: object,
                    message: paho.MQTTMessage) -> None:
        delivery = Delivery(message.topic, bytes(message.payload), message.mid, message.qos,
                            self._generation)
        with self._lock:
            self._pending.append(delivery)
            if self._scheduled:
                return
            self._scheduled = True
        self._call(self._drain)

    def _loop_call_later(self) -> None:
        # Some MQTT 3.1.1 brokers (amqtt) neither answer nor close an MQTT 5 CONNECT.
        if self._loop is not None and not self._closing:
            self._loop.call_later(_CONNACK_WAIT_S, self._check_answered)

    def _check_answered(self) -> None:
        # Only when connected without an answer: a broker that is down is not a 3.1.1 one.
        if not self._answered and self._may_fall_back() and self._client.socket() is not None:
            self._fall_back_to_311()
        elif not self._answered and self._may_fall_back():
            self._loop_call_later()

    def _may_fall_back(self) -> bool:
        return self.settings.protocol == "auto" and self.protocol == "5"

    def _call(self, callback: Callable[[], object]) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(callback)

    # Back in the event loop.

    def _drain(self) -> None:
        with self._lock:
            batch = list(self._pending)
            self._pending.clear()
            self._scheduled = False
        if batch:
            self._on_batch(batch)

    def _fall_back_to_311(self) -> None:
        if self.protocol == "3.1.1" or self._closing:
            return  # already done: a refusal and the close that follows both ask for it
        log.info("broker %s does not speak MQTT 5; using MQTT 3.1.1 with a persistent "
                 "session", self.settings.url)
        _stop(self._client)
        self.protocol = "3.1.1"
        self._client = self._new_client()
        self.start()
