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
  per-message cost (not the per-reading cost) decides readings/s. So ``poll`` lingers up
  to ``LINGER_S`` (2 ms) while a burst is still arriving: one Arrow table for a few hundred
  messages instead of one per handful (building a table costs ~0.15 ms, a message ~0.03 ms),
  and the network thread has the interpreter to itself meanwhile.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.client import PUBACK
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from axhub.ingest.connectors.base import Backoff, Delivery, Rejected, Source
from axhub.ingest.connectors.json_payload import BatchBuilder, JsonPayloadParser
from axhub.ingest.connectors.sparkplug import SparkplugParser
from axhub.ingest.tag_mapping import MqttConfig, MqttTopicRule

log = logging.getLogger(__name__)

# ``poll`` waits at most this long for a burst to reach ``LINGER_MESSAGES`` messages (see the
# module docstring); a lone message waits these 2 ms at most, nothing beside the fsync.
LINGER_S = 0.002
LINGER_MESSAGES = 512
# Packets the network thread reads per wake-up at most (SupervisedClient.loop_read).
READ_BURST = 256
# Bytes asked of the socket per recv (SupervisedClient._sock_recv).
RECV_BYTES = 256 * 1024


# PUBACK with the success code left out (MQTT 3.1.1 and 5): 0x40, remaining length 2, then the
# 16-bit packet id, i.e. one big-endian u32 per message.
_PUBACK_BASE = 0x40020000


class SupervisedClient(mqtt.Client):
    """paho's client, remembering why its network loop died (paho's thread just ends), and
    cheaper per message on its two hot paths (reading a burst, acknowledging a batch)."""

    crash: str | None = None
    # Takes (topic, payload, mid, qos) of a plain PUBLISH instead of ``on_message`` (see
    # ``_handle_publish``); None: paho's way for every message.
    on_plain_publish: Callable[[str, bytes | bytearray, int, int], None] | None = None
    _topic_callbacks = False
    # What the last recv brought beyond what paho asked for, and the socket it came from.
    _rbuf: bytes = b""
    _rpos: int = 0
    _rsock: Any = None

    def loop_forever(self, *args: Any, **kwargs: Any) -> mqtt.MQTTErrorCode:
        try:
            return super().loop_forever(*args, **kwargs)
        except Exception as exc:
            self.crash = f"{type(exc).__name__}: {exc}"
            raise

    def _sock_recv(self, bufsize: int) -> bytes:
        """paho's ``_sock_recv`` through a buffer: paho asks for 1 byte (packet type), 1 byte
        at a time (remaining length), then the rest, i.e. three system calls per message, each
        releasing the interpreter lock and waiting to get it back; one large recv serves many
        messages here."""
        sock = self._sock
        if sock is not self._rsock:  # a new connection: nothing of the old one is kept
            self._rsock, self._rbuf, self._rpos = sock, b"", 0
        if self._rpos >= len(self._rbuf):
            data = super()._sock_recv(max(bufsize, RECV_BYTES))
            if len(data) <= bufsize:
                return data
            self._rbuf, self._rpos = data, 0
        end = self._rpos + bufsize
        out = self._rbuf[self._rpos : end]
        self._rpos = min(end, len(self._rbuf))
        return out

    def loop_read(self, max_packets: int = 1) -> mqtt.MQTTErrorCode:
        """paho's ``loop_read``, but reading up to ``READ_BURST`` packets per wake-up (paho reads
        one per ``select`` when nothing of its own is in flight, as with manual acks), and
        always everything already buffered (``select`` cannot see the buffer)."""
        burst = max(READ_BURST, len(self._out_messages) + len(self._in_messages))
        n = 0
        while True:
            if self._sock is None:
                return mqtt.MQTTErrorCode.MQTT_ERR_NO_CONN
            rc = self._packet_read()
            if rc > 0:
                return self._loop_rc_handle(rc)
            if rc == mqtt.MQTTErrorCode.MQTT_ERR_AGAIN:
                break  # the socket is drained (and so is the buffer): back to select
            n += 1
            if n >= burst and self._rpos >= len(self._rbuf):
                break  # let the loop write (acks) and keep alive; the socket is read next
        return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS

    def _handle_publish(self) -> mqtt.MQTTErrorCode:
        """A QoS 0/1 PUBLISH without MQTT 5 properties (what gateways send), with manual acks,
        goes straight to ``on_plain_publish``: paho builds a Properties object (~40 Python
        calls), an MQTTMessage and a debug line per message, and matches per-topic callbacks
        we never register. Anything else (QoS 2, properties such as a topic alias, a topic
        that is not UTF-8, a short packet, or any per-topic callback registered) is paho's
        own code."""
        take = None if self._topic_callbacks else self.on_plain_publish
        header = self._in_packet["command"]
        qos = (header & 0x06) >> 1
        if take is None or qos == 2 or not self._manual_ack:
            return super()._handle_publish()
        packet = self._in_packet["packet"]
        try:
            pos = 2 + ((packet[0] << 8) | packet[1])
            topic = packet[2:pos].decode("utf-8")
            mid = 0
            if qos:
                mid = (packet[pos] << 8) | packet[pos + 1]
                pos += 2
            if self._protocol == mqtt.MQTTv5:
                if packet[pos] != 0:  # properties follow
                    return super()._handle_publish()
                pos += 1
        except (IndexError, UnicodeDecodeError):
            return super()._handle_publish()
        if not topic or pos > len(packet):
            return super()._handle_publish()
        with self._in_callback_mutex:
            take(topic, packet[pos:], mid, qos)
        return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS

    def message_callback_add(self, sub: str, callback: Any) -> None:
        self._topic_callbacks = True  # per-topic callbacks are matched on paho's path only
        super().message_callback_add(sub, callback)

    def ack_many(self, mids: list[int]) -> None:
        """PUBACK many QoS 1 messages as one write: ``ack`` queues a packet and wakes the
        network thread through a socket once per message."""
        if not mids:
            return
        packets = (np.asarray(mids, dtype=np.uint32) | _PUBACK_BASE).astype(">u4").tobytes()
        self._packet_queue(PUBACK, packets, 0, 0)


def make_client(
    config: MqttConfig,
    *,
    client_id: str | None = None,
    manual_ack: bool = False,
    factory: type[mqtt.Client] = mqtt.Client,
) -> mqtt.Client:
    """A paho client configured from the mapping (protocol, session, credentials, TLS)."""
    v5 = config.version == "5"
    client = factory(
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
        self._sparkplug: dict[int, SparkplugParser] = {}
        self._client: mqtt.Client | None = None
        self._generation = 0
        self._connected = threading.Event()
        self._lock = threading.Lock()
        # In flight = taken - released. ``_taken`` has one writer (the network thread, once per
        # message: no lock, where a threading.Semaphore cost ~4 µs of Python per message);
        # ``_released`` changes once per delivery, under ``_release_lock`` (the worker acks,
        # the network thread drops on reconnect). ``_room`` wakes a network thread waiting.
        self._limit = config.receive_maximum
        self._taken = 0
        self._released = 0
        self._release_lock = threading.Lock()
        self._room = threading.Event()
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
        dropped = 0
        while self._raw:
            try:
                self._raw.popleft()
            except IndexError:
                break
            dropped += 1
        if dropped:
            self._release(dropped)
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

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:  # paho raises on a topic that is not UTF-8
            topic = msg._topic.decode("utf-8", "replace")
        self._take(topic, msg.payload, msg.mid, msg.qos)

    def _take(self, topic: str, payload: bytes | bytearray, mid: int, qos: int) -> None:
        """One received message (paho's callback, or ``SupervisedClient``'s lean path)."""
        # Wait for room (back-pressure); on close, leave the message unacked for redelivery.
        while self._taken - self._released >= self._limit:
            self._room.clear()
            if self._taken - self._released < self._limit:  # released meanwhile
                break
            self._room.wait(0.25)
            if self._closing:
                return
        self._taken += 1
        try:
            self.messages += 1
            self._raw.append((topic, payload, mid, qos, self._generation, time.time_ns() // 1000))
            if not self._arrived.is_set():
                self._arrived.set()
        except Exception as exc:  # nothing a publisher sends may stop the network thread
            log.exception("MQTT message on %s could not be handled", topic)
            self._release(1)
            self.last_error = f"{type(exc).__name__}: {exc}"

    def _release(self, n: int) -> None:
        with self._release_lock:
            self._released += n
        self._room.set()

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
                if rule.format == "sparkplug":
                    result = self._sparkplug_parser(rule).parse_message(topic, bytes(payload), received_us)
                    builder.add_table(result.batch)
                    reasons = result.reasons
                    client = self._client
                    for out_topic, out_payload in result.publish:  # rebirth requests
                        if client is not None:
                            client.publish(out_topic, out_payload, qos=0)
                else:
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
        if client is not None:
            # Only ack on the connection the message came from (see the module docstring).
            current = [(mid, qos) for mid, qos, gen in acks if gen == generation and qos > 0]
            if isinstance(client, SupervisedClient):
                client.ack_many([mid for mid, qos in current if qos == 1])
                current = [(mid, qos) for mid, qos in current if qos != 1]
            for mid, qos in current:
                client.ack(mid, qos)
        self._release(len(acks))

    # -- Source ---------------------------------------------------------------------------
    def _new_client(self) -> mqtt.Client:
        client = make_client(self.config, client_id=self.client_id, manual_ack=True, factory=SupervisedClient)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        if isinstance(client, SupervisedClient):
            client.on_plain_publish = self._take
        clean_start: Any = False if self.config.version == "5" else mqtt.MQTT_CLEAN_START_FIRST_ONLY
        client.connect_async(
            self.config.host,
            self.config.port,
            keepalive=self.config.keepalive,
            clean_start=clean_start,
            properties=connect_properties(self.config),
        )
        return client

    def _watch(self) -> None:
        """Watches paho's network thread (which reconnects with back-off by itself) and
        restarts it on a fresh connection if it ever dies, so the source never stops silently;
        unacknowledged messages are redelivered by the broker."""
        backoff = Backoff(self.config.reconnect_min_s, self.config.reconnect_max_s)
        while not self._closing:
            time.sleep(0.2)
            client = self._client
            if (
                client is None
                or self._closing
                or not isinstance(client, SupervisedClient)
                or not client.crash
            ):
                continue
            self._connected.clear()
            self.restarts += 1
            self.last_error = client.crash
            delay = backoff.next_delay()
            log.error("MQTT network thread failed (%s); restarting in %.1fs", self.last_error, delay)
            with contextlib.suppress(Exception):
                client.loop_stop()
            time.sleep(delay)
            if not self._closing:
                fresh = self._new_client()
                self._client = fresh
                fresh.loop_start()
                if self._closing:  # closed meanwhile: do not leave a connection behind
                    fresh.disconnect()
                    fresh.loop_stop()

    def connect(self) -> None:
        self._closing = False
        # connect_async + paho's network thread: it connects, and reconnects with exponential
        # back-off whenever the broker goes away (also if it is down at start).
        client = self._client = self._new_client()
        client.loop_start()
        self._thread = threading.Thread(target=self._watch, name="mqtt-watch", daemon=True)
        self._thread.start()

    def health(self) -> dict[str, Any]:
        client = self._client
        crashed = isinstance(client, SupervisedClient) and client.crash is not None
        alive = self._thread is not None and self._thread.is_alive() and not crashed
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
        return len(self._raw)

    @property
    def window(self) -> int | None:
        return self.config.receive_maximum

    def poll(self, timeout: float) -> list[Delivery]:
        if not self._raw:
            self._arrived.clear()
            if not self._raw and not self._arrived.wait(timeout):
                return []
        # A burst is arriving: let it gather for up to LINGER_S (sleeping frees the interpreter
        # for the network thread), but never past what the receive window lets in.
        want = min(LINGER_MESSAGES, max(1, self._limit // 4))
        if len(self._raw) < want:
            deadline = time.monotonic() + LINGER_S
            while len(self._raw) < want and time.monotonic() < deadline:
                time.sleep(0.0005)
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
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(10)
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
