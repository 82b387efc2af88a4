"""MQTT 3.1.1 / 5 source (paho-mqtt 2.x): JSON payloads, wildcards, QoS 1, persistent
sessions, MQTT 5 shared subscriptions, acknowledgement only after the store write.

Why it does not lose or duplicate readings:

- QoS 1 with a persistent session (MQTT 3.1.1 ``clean_session=False``; MQTT 5
  ``clean_start=False`` + session expiry) and a fixed client id: while the worker is down,
  the broker keeps the messages for it.
- Manual acks: the PUBACK for a message is sent only after its readings are durably
  written, so a SIGKILL before the write means the broker redelivers; a kill after the
  write but before the PUBACK means a redelivery that the store's idempotent write drops.
- An ack belongs to the connection that received the message: after a reconnect, stale
  acks are not sent (the broker redelivers those messages, and packet ids may be reused).
- Back-pressure: at most ``receive_maximum`` messages are handed out unacknowledged. The
  broker is told this limit (MQTT 5 Receive Maximum), and the source enforces it too
  (Mosquitto 2.0 sends past it after acks): when the limit is reached, the network thread
  waits, TCP fills up, and the broker holds the rest of the stream for us.
- Cheap per message: the network thread only queues each message; ``poll`` (the worker's
  thread) parses everything that arrived into one batch and hands it out as one delivery
  whose ack sends every PUBACK. One-reading messages are what most gateways send, so the
  per-message cost (not the per-reading cost) decides readings/s.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from axhub.ingest.connectors.base import Delivery, Rejected, Source
from axhub.ingest.connectors.json_payload import BatchBuilder, JsonPayloadParser
from axhub.ingest.tag_mapping import MqttConfig, MqttTopicRule

log = logging.getLogger(__name__)


def make_client(config: MqttConfig, *, client_id: str | None = None, manual_ack: bool = False) -> mqtt.Client:
    """A paho client configured from the mapping (protocol, session, credentials, TLS)."""
    v5 = config.version == "5"
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id if client_id is not None else config.client_id,
        clean_session=None if v5 else False,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        manual_ack=manual_ack,
    )
    if config.username:
        client.username_pw_set(config.username, config.password)
    if config.tls:
        client.tls_set(ca_certs=config.ca_certs)
    # paho types these as int; whole seconds are enough for a reconnect back-off.
    client.reconnect_delay_set(
        min_delay=max(1, round(config.reconnect_min_s)), max_delay=max(1, round(config.reconnect_max_s))
    )
    return client


def connect_properties(config: MqttConfig) -> Properties | None:
    if config.version != "5":
        return None
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = config.session_expiry_s
    props.ReceiveMaximum = config.receive_maximum
    return props


class MqttSource(Source):
    """Subscribes to the mapping's topics and turns each message into one ``Delivery``."""

    kind = "mqtt"

    def __init__(self, config: MqttConfig, *, client_id: str | None = None) -> None:
        self.config = config
        self.client_id = client_id or config.client_id
        # (topic, payload, mid, qos, connection generation, received µs), in arrival order.
        self._raw: deque[tuple[str, bytes | bytearray, int, int, int, int]] = deque()
        self._arrived = threading.Event()
        self._rules: dict[str, tuple[MqttTopicRule, dict[str, str]] | None] = {}
        self._parsers: dict[int, JsonPayloadParser] = {}
        self._client: mqtt.Client | None = None
        self._generation = 0
        self._connected = threading.Event()
        self._lock = threading.Lock()
        self._unacked = threading.Semaphore(config.receive_maximum)
        self._closing = False
        self.connects = 0
        self.disconnects = 0
        self.messages = 0

    # -- paho callbacks (network thread) -------------------------------------------------
    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, flags: Any, reason_code: Any, _props: Any
    ) -> None:
        if reason_code.is_failure:
            log.warning("MQTT connect to %s:%s refused: %s", self.config.host, self.config.port, reason_code)
            return
        with self._lock:
            self._generation += 1
            self.connects += 1
        # Messages received on the previous connection but not yet acked will be redelivered;
        # drop them here so they are not written twice in a row (harmless, but wasted work).
        dropped = 0
        while self._raw:
            try:
                self._raw.popleft()
            except IndexError:
                break
            dropped += 1
        if dropped:
            self._unacked.release(dropped)
            log.info("dropped %d unacknowledged messages of the previous connection", dropped)
        qos = self.config.qos
        if self.config.version == "5":
            client.subscribe([(t, SubscribeOptions(qos=qos)) for t in self.config.subscriptions()])
        else:
            client.subscribe([(t, int(qos)) for t in self.config.subscriptions()])
        log.info(
            "MQTT connected to %s:%s (session present: %s)",
            self.config.host,
            self.config.port,
            getattr(flags, "session_present", None),
        )
        self._connected.set()

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: Any, _p: Any
    ) -> None:
        self._connected.clear()
        if self._closing:
            log.info("MQTT disconnected (closing)")
            return
        self.disconnects += 1
        log.warning("MQTT disconnected (%s); reconnecting with back-off", reason_code)

    def _parser(self, rule: MqttTopicRule) -> JsonPayloadParser:
        parser = self._parsers.get(id(rule))
        if parser is None:
            parser = self._parsers[id(rule)] = JsonPayloadParser(rule)
        return parser

    def _on_message(self, client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        # Wait for room (back-pressure); on close, leave the message unacked for redelivery.
        while not self._unacked.acquire(timeout=0.25):
            if self._closing:
                return
        self.messages += 1
        self._raw.append((msg.topic, msg.payload, msg.mid, msg.qos, self._generation, time.time_ns() // 1000))
        if not self._arrived.is_set():
            self._arrived.set()

    def _rule_for(self, topic: str) -> tuple[MqttTopicRule, dict[str, str]] | None:
        found = self._rules.get(topic, False)
        if found is False:
            if len(self._rules) > 100_000:  # topics are few in practice; bound it anyway
                self._rules.clear()
            found = self._rules[topic] = self.config.rule_for(topic)
        return found  # type: ignore[return-value]

    def _gather(self, raw: list[tuple[str, bytes | bytearray, int, int, int, int]]) -> Delivery:
        """One delivery for everything that arrived: one batch, one ack for all messages."""
        builder = BatchBuilder()
        rejected: list[Rejected] = []
        for topic, payload, _mid, _qos, _gen, received_us in raw:
            found = self._rule_for(topic)
            if found is None:
                rejected.append(
                    Rejected("mqtt", topic, "topic matches no rule of the mapping", bytes(payload))
                )
                continue
            rule, values = found
            try:
                reasons = builder.add(self._parser(rule), bytes(payload), values, received_us)
            except Exception as exc:  # a payload the parser trips on must not stop the stream
                reasons = [f"could not read the payload: {type(exc).__name__}: {exc}"]
            if reasons:
                rejected.append(Rejected("mqtt", topic, "; ".join(reasons[:20]), bytes(payload)))
        acks = [(mid, qos, gen) for _t, _p, mid, qos, gen, _r in raw]
        return Delivery(builder.table(), rejected, _Acker(self, acks), messages=len(raw))

    def _ack(self, acks: list[tuple[int, int, int]]) -> None:
        client = self._client
        generation = self._generation
        for mid, qos, gen in acks:
            # Only ack on the connection the message came from (see the module docstring).
            if qos > 0 and gen == generation and client is not None:
                client.ack(mid, qos)
        self._unacked.release(len(acks))

    # -- Source ---------------------------------------------------------------------------
    def connect(self) -> None:
        self._closing = False
        client = make_client(self.config, client_id=self.client_id, manual_ack=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client
        clean_start: Any = False if self.config.version == "5" else mqtt.MQTT_CLEAN_START_FIRST_ONLY
        # connect_async + loop_start: the network thread connects, and reconnects with
        # exponential back-off whenever the broker goes away (also if it is down at start).
        client.connect_async(
            self.config.host,
            self.config.port,
            keepalive=self.config.keepalive,
            clean_start=clean_start,
            properties=connect_properties(self.config),
        )
        client.loop_start()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def pending_messages(self) -> int:
        return len(self._raw)

    @property
    def window(self) -> int | None:
        return self.config.receive_maximum

    def poll(self, timeout: float) -> list[Delivery]:
        if not self._raw:
            self._arrived.clear()
            if not self._raw and not self._arrived.wait(timeout):
                return []
        raw = []
        for _ in range(len(self._raw)):
            raw.append(self._raw.popleft())
        return [self._gather(raw)] if raw else []

    def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        self._closing = True
        client.disconnect()
        client.loop_stop()
        self._connected.clear()


class _Acker:
    """Acknowledges a delivery's messages once (a second call does nothing)."""

    def __init__(self, source: MqttSource, acks: list[tuple[int, int, int]]) -> None:
        self._source = source
        self._acks: list[tuple[int, int, int]] | None = acks

    def __call__(self) -> None:
        acks, self._acks = self._acks, None
        if acks is not None:
            self._source._ack(acks)
