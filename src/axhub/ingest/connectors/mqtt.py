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
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from axhub.ingest.connectors.base import EMPTY_BATCH, Backoff, Delivery, DeliveryBuffer, Rejected, Source
from axhub.ingest.connectors.json_payload import JsonPayloadParser
from axhub.ingest.connectors.sparkplug import SparkplugParser
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
        self._buffer = DeliveryBuffer()
        self._parsers: dict[int, JsonPayloadParser] = {}
        self._sparkplug: dict[int, SparkplugParser] = {}
        self._client: mqtt.Client | None = None
        self._generation = 0
        self._connected = threading.Event()
        self._lock = threading.Lock()
        self._unacked = threading.Semaphore(config.receive_maximum)
        self._closing = False
        self._thread: threading.Thread | None = None
        self.connects = 0
        self.disconnects = 0
        self.messages = 0
        # The network thread's crashes (a bug in a callback, a paho failure): it is restarted
        # with a fresh connection, and the last error is shown in the health.
        self.restarts = 0
        self.last_error: str | None = None
        self.refused: str | None = None

    # -- paho callbacks (network thread) -------------------------------------------------
    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, flags: Any, reason_code: Any, _props: Any
    ) -> None:
        if reason_code.is_failure:
            self.refused = str(reason_code)
            log.warning("MQTT connect to %s:%s refused: %s", self.config.host, self.config.port, reason_code)
            return
        self.refused = None
        with self._lock:
            self._generation += 1
            self.connects += 1
        # Messages received on the previous connection but not yet acked will be redelivered;
        # drop them here so they are not written twice in a row (harmless, but wasted work).
        dropped = self._buffer.clear()
        for _ in range(dropped):
            self._unacked.release()
        if dropped:
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

    def _sparkplug_parser(self, rule: MqttTopicRule) -> SparkplugParser:
        parser = self._sparkplug.get(id(rule))
        if parser is None:
            parser = self._sparkplug[id(rule)] = SparkplugParser(rule)
        return parser

    def display_names(self) -> dict[str, str]:
        """Asset ids made from names (``make_ids``) -> the names as machines sent them."""
        out: dict[str, str] = {}
        for parser in self._parsers.values():
            out.update(parser.display_names)
        for sparkplug in self._sparkplug.values():
            out.update(sparkplug.display_names)
        return out

    def _on_message(self, client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        # Wait for room (back-pressure); on close, leave the message unacked for redelivery.
        while not self._unacked.acquire(timeout=0.25):
            if self._closing:
                return
        try:
            self._deliver(client, msg)
        except Exception as exc:  # nothing a publisher sends may stop the network thread
            log.exception("MQTT message on %s could not be handled", msg.topic)
            self._unacked.release()
            self.last_error = f"{type(exc).__name__}: {exc}"

    def _deliver(self, client: mqtt.Client, msg: mqtt.MQTTMessage) -> None:
        self.messages += 1
        generation = self._generation
        mid, qos = msg.mid, msg.qos
        done = threading.Event()

        def ack() -> None:
            if done.is_set():
                return
            done.set()
            self._unacked.release()
            # Only ack on the connection the message came from (see the module docstring).
            if qos > 0 and generation == self._generation:
                client.ack(mid, qos)

        received_us = time.time_ns() // 1000
        found = self.config.rule_for(msg.topic)
        if found is None:
            reason = "topic matches no rule of the mapping"
            rejected = [Rejected("mqtt", msg.topic, reason, bytes(msg.payload))]
            self._buffer.put(Delivery(EMPTY_BATCH, rejected, ack))
            return
        rule, values = found
        try:
            if rule.format == "sparkplug":
                result = self._sparkplug_parser(rule).parse_message(
                    msg.topic, bytes(msg.payload), received_us
                )
                batch, reasons = result.batch, result.reasons
                for topic, payload in result.publish:  # rebirth requests
                    client.publish(topic, payload, qos=0)
            else:
                batch, reasons = self._parser(rule).parse(bytes(msg.payload), values, received_us)
        except Exception as exc:  # parsers never raise; this is the last line of defence
            batch, reasons = EMPTY_BATCH, [f"payload could not be read ({type(exc).__name__}: {exc})"]
        rejected = (
            [Rejected("mqtt", msg.topic, "; ".join(reasons[:20])[:2000], bytes(msg.payload))]
            if reasons
            else []
        )
        self._buffer.put(Delivery(batch, rejected, ack))

    # -- Source ---------------------------------------------------------------------------
    def _new_client(self) -> mqtt.Client:
        client = make_client(self.config, client_id=self.client_id, manual_ack=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        clean_start: Any = False if self.config.version == "5" else mqtt.MQTT_CLEAN_START_FIRST_ONLY
        client.connect_async(
            self.config.host,
            self.config.port,
            keepalive=self.config.keepalive,
            clean_start=clean_start,
            properties=connect_properties(self.config),
        )
        return client

    def _network(self) -> None:
        """The network thread: paho's loop (which reconnects with back-off by itself), restarted
        on a fresh connection if it ever dies, so the source never stops silently."""
        backoff = Backoff(self.config.reconnect_min_s, self.config.reconnect_max_s)
        while not self._closing:
            client = self._client
            if client is None:
                return
            try:
                client.loop_forever(retry_first_connection=True)
                return  # disconnect() was called: closing
            except Exception as exc:
                self._connected.clear()
                self.restarts += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                delay = backoff.next_delay()
                log.error("MQTT network thread failed (%s); restarting in %.1fs", self.last_error, delay)
                with contextlib.suppress(Exception):
                    client.disconnect()
                time.sleep(delay)
                if not self._closing:
                    self._client = self._new_client()

    def connect(self) -> None:
        self._closing = False
        # connect_async + our network thread: it connects, and reconnects with exponential
        # back-off whenever the broker goes away (also if it is down at start).
        self._client = self._new_client()
        self._thread = threading.Thread(target=self._network, name="mqtt-network", daemon=True)
        self._thread.start()

    def health(self) -> dict[str, Any]:
        alive = self._thread is not None and self._thread.is_alive()
        problems = []
        if not alive:
            problems.append("the MQTT network thread is not running")
        if not self.connected:
            problems.append(
                f"not connected to {self.config.host}:{self.config.port}"
                + (f" (refused: {self.refused})" if self.refused else "; reconnecting")
            )
        if self.last_error:
            problems.append(f"last error: {self.last_error} (network thread restarted {self.restarts}x)")
        for parser in self._sparkplug.values():
            if parser.gaps or parser.rebirths:
                problems.append(
                    f"Sparkplug: {parser.gaps} sequence gap(s), {parser.rebirths} rebirth request(s) so far"
                )
        return {
            "kind": self.kind,
            "ok": alive and self.connected,
            "connected": self.connected,
            "messages": self.messages,
            "restarts": self.restarts,
            "problems": problems,
        }

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def pending_messages(self) -> int:
        return len(self._buffer)

    def poll(self, timeout: float) -> list[Delivery]:
        return self._buffer.drain(timeout)

    def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        self._closing = True
        client.disconnect()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(10)
        self._connected.clear()
