"""OPC UA source (asyncua): browse, subscribe to data changes, map status codes to quality.

The asyncua client runs on its own event loop in a background thread. Notifications are
gathered and handed to the worker once per publishing interval as one ``Delivery``.

- Timestamps: the value's SourceTimestamp (when the PLC produced it), else the server's
  timestamp, else the time received; both are requested from the server.
- Quality: Good / Uncertain / Bad status codes map to ``Quality``.
- Security: username/password, and certificate security (Basic256Sha256 etc.) from the
  mapping file.
- Reconnect: if the server goes away, the session is rebuilt with exponential back-off and
  the subscriptions are created again.
- OPC UA acknowledges notifications inside the protocol, so ``ack`` is a no-op here; values
  that change while the connection is down are not replayed by a server after a restart
  (the new subscription starts with each tag's current value).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asyncua import Client, Node, ua
from asyncua.crypto import security_policies, uacrypto
from cryptography import x509

from axhub.core.domain import Quality
from axhub.ingest.connectors.base import Backoff, Delivery, DeliveryBuffer, Rejected, Source, columns_to_batch
from axhub.ingest.tag_mapping import OpcUaBrowse, OpcUaConfig, Scaling, fill

log = logging.getLogger(__name__)


def status_to_quality(status: ua.StatusCode | None) -> Quality:
    """OPC UA status code → AX Hub quality (Good / Uncertain / Bad)."""
    if status is None or status.is_good():
        return Quality.GOOD
    if status.is_uncertain():
        return Quality.UNCERTAIN
    return Quality.BAD


def _file_format(path: str) -> str:
    """'pem' or 'der', from the file's content (asyncua would go by the name: only .pem is PEM)."""
    with open(path, "rb") as f:
        return "pem" if f.read(11) == b"-----BEGIN " else "der"


def _us(when: datetime | None) -> int | None:
    return None if when is None else int(when.timestamp() * 1_000_000)


_Rows = tuple[list[str], list[str], list[int], list[float | None], list[int]]


@dataclass(frozen=True)
class Tag:
    asset: str
    signal: str
    scaling: Scaling


async def browse_variables(client: Client, rule: OpcUaBrowse) -> dict[str, Tag]:
    """Variables below ``rule.root`` named by the rule's templates ({name}, {parent}, {path})."""
    found: dict[str, Tag] = {}

    async def walk(node: Node, names: list[str], depth: int) -> None:
        for child in await node.get_children(refs=ua.ObjectIds.HierarchicalReferences):
            node_class = await child.read_node_class()
            name = (await child.read_browse_name()).Name
            if node_class == ua.NodeClass.Variable:
                values = {
                    "name": name,
                    "parent": names[-1] if names else "",
                    "path": ".".join([*names, name]),
                }
                asset, signal = fill(rule.asset, values), fill(rule.signal, values)
                if asset and signal:
                    found[child.nodeid.to_string()] = Tag(asset, signal, rule)
            elif node_class == ua.NodeClass.Object and depth < rule.max_depth:
                await walk(child, [*names, name], depth + 1)

    root = client.get_node(rule.root)
    await walk(root, [(await root.read_browse_name()).Name], 1)
    return found


class OpcUaSource(Source):
    """Subscribes to the mapping's nodes (and browsed variables) on one OPC UA server."""

    kind = "opcua"

    def __init__(self, config: OpcUaConfig) -> None:
        self.config = config
        self._buffer = DeliveryBuffer()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._connected = threading.Event()
        self.tags: dict[str, Tag] = {}
        self.connects = 0
        self.notifications = 0
        self._rows: tuple[list[str], list[str], list[int], list[float | None], list[int]] = (
            [],
            [],
            [],
            [],
            [],
        )
        self._rejected: list[Rejected] = []

    # -- the asyncio side -------------------------------------------------------------------
    async def _make_client(self) -> Client:
        cfg = self.config
        client = Client(cfg.endpoint, timeout=cfg.timeout_s)
        if cfg.username:
            client.set_user(cfg.username)
        if cfg.password:
            client.set_password(cfg.password)
        if cfg.security_policy != "None":
            await self._set_security(client)
        return client

    async def _set_security(self, client: Client) -> None:
        """Certificate security from the mapping: policy, mode, our certificate and key.

        Not asyncua's ``set_security_string``: that guesses PEM/DER from the file name (a PEM
        key named ``client.key`` fails to load), and splits on commas in paths. The client's
        ApplicationUri is taken from its certificate, as OPC UA requires (servers refuse a
        session whose URI is not the certificate's). Without ``server_certificate`` the
        server's certificate is taken from its endpoint listing.
        """
        cfg = self.config
        if cfg.security_mode == "None":
            raise ValueError(
                f"security_policy {cfg.security_policy} needs security_mode Sign or SignAndEncrypt"
            )
        cert_path = cfg.certificate or ""
        key_path, _, key_password = (cfg.private_key or "").partition("::")
        cert = await uacrypto.load_certificate(cert_path, _file_format(cert_path))
        with contextlib.suppress(x509.ExtensionNotFound):
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            uris = san.get_values_for_type(x509.UniformResourceIdentifier)
            if uris:
                client.application_uri = uris[0]
        server_cert = (
            uacrypto.CertProperties(cfg.server_certificate, _file_format(cfg.server_certificate))
            if cfg.server_certificate
            else None
        )
        await client.set_security(
            getattr(security_policies, f"SecurityPolicy{cfg.security_policy}"),
            uacrypto.CertProperties(cert_path, _file_format(cert_path)),
            uacrypto.CertProperties(key_path, _file_format(key_path), password=key_password or None),
            server_certificate=server_cert,
            mode=getattr(ua.MessageSecurityMode, cfg.security_mode),
        )

    async def _resolve_tags(self, client: Client) -> dict[str, Tag]:
        tags: dict[str, Tag] = {}
        for rule in self.config.browse:
            tags.update(await browse_variables(client, rule))
        for node in self.config.nodes:
            tags[ua.NodeId.from_string(node.node).to_string()] = Tag(node.asset, node.signal, node)
        return tags

    def _on_change(self, node_id: str, value: Any, dv: ua.DataValue | None) -> None:
        tag = self.tags.get(node_id)
        if tag is None:
            return
        self.notifications += 1
        ts = (
            _us(dv.SourceTimestamp if dv is not None else None)
            or _us(dv.ServerTimestamp if dv is not None else None)
            or time.time_ns() // 1000
        )
        quality = status_to_quality(dv.StatusCode if dv is not None else None)
        if value is None or isinstance(value, bool | int | float):
            number = None if value is None else tag.scaling.apply(float(value))
            assets, signals, stamps, values, quals = self._rows
            assets.append(tag.asset)
            signals.append(tag.signal)
            stamps.append(ts)
            values.append(number)
            quals.append(int(quality))
        else:
            reason = f"value of type {type(value).__name__} is not a number"
            self._rejected.append(Rejected("opcua", node_id, reason, repr(value)[:1000].encode()))

    def _hand_over(self) -> None:
        assets, signals, stamps, values, quals = self._rows
        if not assets and not self._rejected:
            return
        batch = columns_to_batch(assets, signals, stamps, values, quals)
        self._buffer.put(Delivery(batch, self._rejected))
        self._rows = ([], [], [], [], [])
        self._rejected = []

    async def _consume(self, sub: Any, stop: asyncio.Event, lost: asyncio.Event) -> None:
        interval = self.config.publishing_interval_ms / 1000
        next_hand_over = time.monotonic() + interval
        while not stop.is_set():
            if lost.is_set():
                raise ConnectionError("connection to the OPC UA server lost")
            event = await sub.next_event(timeout=interval)
            if event is not None and hasattr(event, "node"):
                self._on_change(event.node.nodeid.to_string(), event.value, event.data.monitored_item.Value)
            if time.monotonic() >= next_hand_over:
                self._hand_over()
                next_hand_over = time.monotonic() + interval

    async def _session(self, stop: asyncio.Event) -> None:
        client = await self._make_client()
        lost = asyncio.Event()

        async def on_lost(_exc: Exception) -> None:
            lost.set()

        # Our own reconnect (a fresh session, browse and subscription, with back-off) has
        # proved quicker and more predictable after a server restart than asyncua's.
        client.connection_lost_callback = on_lost
        await client.connect(auto_reconnect=False)
        try:
            self.tags = await self._resolve_tags(client)
            if not self.tags:
                log.warning("OPC UA: no variables found for the mapping at %s", self.config.endpoint)
            sub = await client.create_subscription(
                self.config.publishing_interval_ms, None, queue_maxsize=1_000_000
            )
            nodes = [client.get_node(nid) for nid in self.tags]
            # Subscribe in chunks: one request for thousands of items can exceed message limits.
            for i in range(0, len(nodes), 500):
                await sub.subscribe_data_change(
                    nodes[i : i + 500],
                    queuesize=self.config.queue_size,
                    sampling_interval=ua.Double(self.config.sampling_interval_ms),
                )
            self.connects += 1
            self._connected.set()
            log.info("OPC UA subscribed to %d variables at %s", len(nodes), self.config.endpoint)
            await self._consume(sub, stop, lost)
        finally:
            self._connected.clear()
            try:
                await asyncio.wait_for(client.disconnect(), 1)
            except Exception:
                log.debug("OPC UA disconnect failed", exc_info=True)

    async def _main(self) -> None:
        self._stop = stop = asyncio.Event()
        backoff = Backoff(self.config.reconnect_min_s, self.config.reconnect_max_s)
        while not stop.is_set():
            try:
                await self._session(stop)
                backoff.reset()
            except Exception as exc:
                self._hand_over()
                delay = backoff.next_delay()
                log.warning("OPC UA %s: %s; retrying in %.1fs", self.config.endpoint, exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
        self._hand_over()

    # -- Source -----------------------------------------------------------------------------
    def connect(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            task = loop.create_task(self._main())
            started.set()
            loop.run_until_complete(task)
            loop.close()

        self._thread = threading.Thread(target=run, name="opcua-source", daemon=True)
        self._thread.start()
        started.wait(5)

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def poll(self, timeout: float) -> list[Delivery]:
        return self._buffer.drain(timeout)

    def close(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._stop is not None:
            loop.call_soon_threadsafe(self._stop.set)
        thread.join(10)
        self._loop = self._thread = None
