"""OPC UA source (asyncua): browse, subscribe to data changes, map status codes to quality.

The asyncua client runs on its own event loop in a background thread. Notifications are
gathered and handed to the worker once per publishing interval as one ``Delivery``.

- Timestamps: the value's SourceTimestamp (when the PLC produced it), else the server's
  timestamp, else the time received; both are requested from the server.
- Quality: Good / Uncertain / Bad status codes map to ``Quality``.
- Security: username/password, and certificate security (Basic256Sha256 etc.) from the
  mapping file.
- Reconnect: if the server goes away, the session is rebuilt with exponential back-off and
  the subscriptions are created again; the back-off starts afresh after each session that
  got as far as subscribing, so a server that is back is reconnected within ``reconnect_min_s``.
- Problems a person must fix are said at connect time and kept in the health: NodeIds the
  server does not have, objects below the browse depth that were not browsed, browse names
  that are not valid names (turned into valid ids, the original kept as display name), and a
  certificate the server does not trust (with the file to trust on the server).
- Speed: PublishResponses are decoded in bulk (``opcua_bulk``): the data changes of a response
  go to ``_on_changes`` as columns in one call, not as one asyncua object per change (3,000
  tags at 10 Hz on two shared cores; see the bench opcua section of docs/benchmarks.md).
  Everything else (events, status changes, a response the bulk decoder cannot read) takes
  asyncua's own path into the subscription's queue, read by ``_consume``.
- Nothing lost at a crash (``opcua_resume``): a NotificationMessage is acknowledged to the
  server only after its changes are stored (the delivery's ``ack``), and the subscription is
  kept in a state file, so a worker that was killed, or a connection that dropped, takes the
  same subscription over in a new session and the server republishes what was not
  acknowledged, then the changes it queued meanwhile (``queue_size`` per tag). A server that
  was itself restarted has no subscription to hand over: the new subscription starts with
  each tag's current value, and what changed while it was down is not replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from asyncua import Client, Node, ua
from asyncua.common.subscription import StatusChangeEvent, Subscription
from asyncua.crypto import security_policies, uacrypto
from filelock import FileLock, Timeout

from axhub.core.domain import Quality
from axhub.core.reading_rules import asset_id_from_name, signal_name_from
from axhub.ingest.connectors import opcua_bulk
from axhub.ingest.connectors.base import Backoff, Delivery, DeliveryBuffer, Rejected, Source, columns_to_batch
from axhub.ingest.connectors.opcua_bulk import DataChanges
from axhub.ingest.connectors.opcua_certificate import uri_in_certificate
from axhub.ingest.connectors.opcua_resume import AckLedger, SubscriptionState, transfer
from axhub.ingest.tag_mapping import OpcUaBrowse, OpcUaConfig, Scaling, fill

log = logging.getLogger(__name__)


def status_to_quality(status: ua.StatusCode | None) -> Quality:
    """OPC UA status code → AX Hub quality (Good / Uncertain / Bad)."""
    return code_to_quality(0 if status is None else status.value)


def code_to_quality(code: int) -> Quality:
    """A StatusCode's value → quality, by its severity (top two bits: 00 Good, 01 Uncertain)."""
    severity = code >> 30
    if severity == 0:
        return Quality.GOOD
    if severity == 1:
        return Quality.UNCERTAIN
    return Quality.BAD


def _file_format(path: str) -> str:
    """'pem' or 'der', from the file's content (asyncua would go by the name: only .pem is PEM)."""
    with open(path, "rb") as f:
        return "pem" if f.read(11) == b"-----BEGIN " else "der"


def _us(when: datetime | None) -> int | None:
    return None if when is None else int(when.timestamp() * 1_000_000)


# Servers whose taking over of a subscription is known not to work, and how it fails.
NO_TRANSFER_PRODUCTS = {
    "urn:freeopcua.github.io:python:server": (
        "asyncua's server, up to 2.1 at least, answers the subscription's publishing under the "
        "id of the TransferSubscriptions request, which breaks the connection"
    ),
}
# A session that took a subscription over and failed sooner than this subscribes afresh next.
_RESUME_TRIAL_S = 10.0


def _ends_subscription(event: StatusChangeEvent) -> bool:
    """A status change after which the subscription sends nothing more on this session."""
    status = event.notification.Status
    return status is not None and (
        status.value == ua.StatusCodes.GoodSubscriptionTransferred or not status.is_good()
    )


_Rows = tuple[list[str], list[str], list[int], list[float | int | None], list[int]]


@dataclass(frozen=True)
class Tag:
    asset: str
    signal: str
    scaling: Scaling
    asset_display: str = ""  # the browse name the asset id was made from


@dataclass
class BrowseResult:
    tags: dict[str, Tag]
    # Objects at the depth limit that have children: their variables were not browsed.
    too_deep: list[str]


async def browse_variables(client: Client, rule: OpcUaBrowse) -> BrowseResult:
    """Variables below ``rule.root`` named by the rule's templates ({name}, {parent}, {path}).

    Browse names become valid names by the one rule for readings: the asset an asset id
    (``asset_id_from_name``: 'Line 1' -> 'line-1-<hash>'), the signal a signal name ('Door Open'
    and 'Zone1 °C' already are); a tag keeps the original as its display name.
    """
    found: dict[str, Tag] = {}
    too_deep: list[str] = []

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
                    found[child.nodeid.to_string()] = Tag(
                        asset_id_from_name(asset), signal_name_from(signal), rule, asset_display=asset
                    )
            elif node_class == ua.NodeClass.Object:
                if depth < rule.max_depth:
                    await walk(child, [*names, name], depth + 1)
                elif await child.get_children(refs=ua.ObjectIds.HierarchicalReferences):
                    too_deep.append(".".join([*names, name]))

    root = client.get_node(rule.root)
    await walk(root, [(await root.read_browse_name()).Name], 1)
    return BrowseResult(found, too_deep)


def describe_failure(exc: BaseException, cfg: OpcUaConfig, *, connecting: bool = True) -> str:
    """What went wrong, in words a person can act on (asyncua's own text is often empty).

    ``connecting``: the failure came before a session was established, where a server that
    refuses our certificate simply closes the secure channel.
    """
    if isinstance(exc, ConnectionRefusedError):
        return f"nothing listens at {cfg.endpoint} (is the server running, the port right?)"
    text = str(exc).strip()
    code = getattr(exc, "code", None)
    if isinstance(exc, ua.UaStatusCodeError) and code is not None:
        name = ua.status_codes.get_name_and_doc(code)[0]
        text = f"{name}: {text}" if text and name not in text else (text or name)
    text = text or type(exc).__name__
    certificate_words = (
        "Certificate",
        "SecurityChecksFailed",
        "SecurityPolicyRejected",
        "NoValidCertificates",
    )
    refused_during_handshake = isinstance(exc, ConnectionError | TimeoutError | asyncio.IncompleteReadError)
    closed = refused_during_handshake or not str(exc).strip()
    if cfg.security_policy != "None" and (
        any(w in text for w in certificate_words) or (connecting and closed)
    ):
        text += (
            f". The server did not accept our certificate ({cfg.security_policy}, {cfg.security_mode}): "
            f"trust this client certificate on the server ({cfg.certificate}), e.g. move it from the "
            "server's rejected folder to its trusted folder; the connection is retried by itself"
        )
    return text


class OpcUaSource(Source):
    """Subscribes to the mapping's nodes (and browsed variables) on one OPC UA server."""

    kind = "opcua"

    def __init__(self, config: OpcUaConfig, *, state_file: Path | None = None) -> None:
        self.config = config
        # Where the subscription is kept for a worker that starts again (None: in memory only,
        # which still lets a dropped connection take its subscription over).
        self.state_file = state_file
        self._state: SubscriptionState | None = None
        self._ledger = AckLedger()
        self.resumes = 0  # subscriptions taken over after a crash or a dropped connection
        self._refused_transfer_said = False
        self._state_lock: FileLock | None = None
        self._buffer = DeliveryBuffer()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._connected = threading.Event()
        self.tags: dict[str, Tag] = {}
        # What a person must fix, found at connect time (missing nodes, browse depth, names).
        self.problems: list[str] = []
        self.last_error: str | None = None
        self.connects = 0
        self.notifications = 0
        self._rows: tuple[list[str], list[str], list[int], list[float | int | None], list[int]] = (
            [],
            [],
            [],
            [],
            [],
        )
        self._rejected: list[Rejected] = []
        # Bulk path: client handle -> (NodeId, tag), filled from the subscription on first use.
        self._sub: Any = None
        self._handles: dict[int, tuple[str, Tag]] = {}
        self._node_ids: dict[int, str] = {}
        # Off: every change through asyncua's per-change objects (the reference for tests).
        self.bulk_decode = True

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
        uri = uri_in_certificate(cert)
        if uri:
            client.application_uri = uri
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
        problems: list[str] = []
        for rule in self.config.browse:
            found = await browse_variables(client, rule)
            tags.update(found.tags)
            if found.too_deep:
                shown = ", ".join(found.too_deep[:5]) + (" ..." if len(found.too_deep) > 5 else "")
                problems.append(
                    f"browse of {rule.root} stopped at max_depth {rule.max_depth}: {len(found.too_deep)} "
                    f"object(s) below were not browsed ({shown}); raise max_depth to include them"
                )
        configured = [(ua.NodeId.from_string(n.node).to_string(), n) for n in self.config.nodes]
        if configured:
            # Read each configured node's class: a NodeId the server lacks answers BadNodeIdUnknown
            # (and would otherwise be subscribed to silently, never giving data).
            results = await client.read_attributes(
                [client.get_node(nid) for nid, _n in configured], ua.AttributeIds.NodeClass
            )
            for (nid, node), result in zip(configured, results, strict=True):
                status = result.StatusCode
                if status is not None and not status.is_good():
                    problems.append(
                        f"node {node.node} ({node.asset}/{node.signal}) does not exist on "
                        f"{self.config.endpoint} ({status.name}); fix the mapping"
                    )
                    continue
                tags[nid] = Tag(node.asset, node.signal, node)
        for problem in problems:
            if problem not in self.problems:
                log.warning("OPC UA: %s", problem)
                self._rejected.append(Rejected("opcua", self.config.endpoint, problem, b""))
        self.problems = problems
        return tags

    def _on_change(self, node_id: str, value: Any, dv: ua.DataValue | None) -> None:
        """One change as asyncua's objects (the path when bulk decoding is not installed)."""
        tag = self.tags.get(node_id)
        if tag is None:
            return
        ts = (
            _us(dv.SourceTimestamp if dv is not None else None)
            or _us(dv.ServerTimestamp if dv is not None else None)
            or time.time_ns() // 1000
        )
        status = dv.StatusCode if dv is not None else None
        self._add(node_id, tag, value, ts, 0 if status is None else status.value)

    def _on_changes(self, changes: DataChanges) -> None:
        """The changes of one DataChangeNotification, decoded in bulk (``opcua_bulk``)."""
        handles = self._handles
        add = self._add
        now: int | None = None
        for handle, value, status, source, server in zip(
            changes.handles, changes.values, changes.status, changes.source_us, changes.server_us, strict=True
        ):
            entry = handles.get(handle) or self._handle_entry(handle)
            if entry is None:
                continue
            ts = source or server
            if not ts:  # neither timestamp sent: the time received, as on the other path
                if now is None:
                    now = time.time_ns() // 1000
                ts = now
            add(entry[0], entry[1], value, ts, status)

    def _handle_entry(self, handle: int) -> tuple[str, Tag] | None:
        """NodeId and tag of a monitored item's client handle (looked up once, then cached)."""
        sub = self._sub
        data = None if sub is None else getattr(sub, "_monitored_items", {}).get(handle)
        node = getattr(data, "node", None)
        if node is None:
            return None
        node_id = self._node_ids.get(id(node)) or node.nodeid.to_string()
        tag = self.tags.get(node_id)
        if tag is None:
            return None
        self._handles[handle] = (node_id, tag)
        return node_id, tag

    def _add(self, node_id: str, tag: Tag, value: Any, ts: int, status: int) -> None:
        """Append one change to the rows of this publishing interval (or a rejection)."""
        self.notifications += 1
        quality = code_to_quality(status)
        if value is None or isinstance(value, bool | int | float):
            number: float | int | None = None
            if type(value) is int:
                try:  # Int64/UInt64 beyond float64's reach stay exact (value_int)
                    number = tag.scaling.apply_exact(value)
                except ValueError as exc:
                    self._rejected.append(Rejected("opcua", node_id, str(exc), repr(value).encode()))
                    return
            elif value is not None:
                number = tag.scaling.apply(float(value))
            if number is not None and not math.isfinite(number):
                # A PLC's NaN/infinity means "no valid value" (as with Modbus): stored as a
                # missing value of bad quality rather than a dead letter at every change.
                number, quality = None, Quality.BAD
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
        ack = self._ledger.hand_over()
        if not assets and not self._rejected:
            ack()  # messages with nothing to store (e.g. only tags we do not map)
            return
        batch = columns_to_batch(assets, signals, stamps, values, quals)
        self._buffer.put(Delivery(batch, self._rejected, ack=ack))
        self._rows = ([], [], [], [], [])
        self._rejected = []

    async def _consume(
        self, sub: Any, stop: asyncio.Event, lost: asyncio.Event, node_ids: dict[int, str]
    ) -> None:
        """Hand the subscription's changes over every publishing interval.

        With bulk decoding the changes are already in the rows (``_on_changes``, called from
        asyncua's publish loop on this event loop); the queue carries only what asyncua decoded.

        On the per-change path, at thousands of changes per second the cost per change matters:
        the NodeId string of each change comes from the Node object we subscribed (``node_ids``,
        by identity) rather than being formatted again, and the changes a publish response
        brought are taken from asyncua's event queue without an awaited timeout each
        (``_event_queue``, its iterator queue; without it, one ``next_event`` per change).
        """
        interval = self.config.publishing_interval_ms / 1000
        queue = getattr(sub, "_event_queue", None)
        next_hand_over = time.monotonic() + interval
        while not stop.is_set():
            if lost.is_set():
                raise ConnectionError("connection to the OPC UA server lost")
            event = await sub.next_event(timeout=max(0.001, next_hand_over - time.monotonic()))
            while event is not None:
                if isinstance(event, StatusChangeEvent) and _ends_subscription(event):
                    # e.g. GoodSubscriptionTransferred: another session took it over; ours
                    # would receive nothing more without a word.
                    code = event.notification.Status
                    raise ConnectionError(f"the server ended our subscription ({code.name})")
                if hasattr(event, "node"):
                    node_id = node_ids.get(id(event.node)) or event.node.nodeid.to_string()
                    self._on_change(node_id, event.value, event.data.monitored_item.Value)
                if queue is None or queue.empty() or time.monotonic() >= next_hand_over:
                    break
                event = queue.get_nowait()
            if time.monotonic() >= next_hand_over:
                self._hand_over()
                next_hand_over = time.monotonic() + interval

    @staticmethod
    async def _product_uri(client: Client) -> str:
        """The server's ProductUri (Server.ServerStatus.BuildInfo), "" where it does not say."""
        try:
            value = await client.get_node(ua.ObjectIds.Server_ServerStatus_BuildInfo_ProductUri).read_value()
        except Exception:
            return ""
        return str(value or "")

    async def _resume(self, client: Client) -> Any | None:
        """Take the saved subscription over (see ``opcua_resume``); None: subscribe afresh."""
        state = self._state
        if not self.bulk_decode or state is None:
            return None
        if state.endpoint != self.config.endpoint or set(state.handles.values()) != set(self.tags):
            log.info(
                "OPC UA: the mapping changed since subscription %d; subscribing afresh", state.subscription_id
            )
            return None
        product = await self._product_uri(client)
        if product in NO_TRANSFER_PRODUCTS:
            log.info(
                "OPC UA: %s does not take subscriptions over (%s); subscribing afresh",
                product,
                NO_TRANSFER_PRODUCTS[product],
            )
            return None
        session = client.uaclient.session
        available, reason = await transfer(session, state.subscription_id)
        sid = state.subscription_id
        if available is None:
            self._ledger.forget(sid)
            if "Access" in reason or "Identity" in reason:
                if not self._refused_transfer_said:
                    log.warning(
                        "OPC UA %s refused to hand subscription %d over to a new session (%s): changes "
                        "not yet stored when the worker stops or the connection drops can be lost. "
                        "Servers hand a subscription over to the same user: connect with a user "
                        "name, or with a signed channel (security_mode Sign)",
                        self.config.endpoint,
                        sid,
                        reason,
                    )
                    self._refused_transfer_said = True
            else:
                log.info("OPC UA: subscription %d is gone (%s); subscribing afresh", sid, reason)
            return None
        params = ua.CreateSubscriptionParameters(
            RequestedPublishingInterval=float(self.config.publishing_interval_ms)
        )
        sub = Subscription(session, params, None, queue_maxsize=1_000_000)
        sub.subscription_id = sid
        session._subscription_callbacks[sid] = sub.publish_callback
        self._sub, self._node_ids = sub, {}
        self._handles = {h: (nid, self.tags[nid]) for h, nid in state.handles.items()}
        if not opcua_bulk.install(session, sub, self._on_changes, self._ledger):
            return None
        # What the server kept unacknowledged, oldest first; then the publish loop brings the
        # changes it queued while nobody was connected.
        republished = 0
        for sequence in available:
            try:
                message = await opcua_bulk.republish(session, sid, sequence)
            except ua.UaStatusCodeError as exc:  # e.g. BadMessageNotAvailable: no longer held
                log.info("OPC UA: message %d of subscription %d not republished (%s)", sequence, sid, exc)
                continue
            changes = [n for n in message.NotificationData or [] if isinstance(n, DataChanges)]
            for n in changes:
                self._on_changes(n)
            if changes:
                self._ledger.received(sid, sequence)
            else:
                self._ledger.durable([(sid, sequence)])
            republished += 1
        session.ensure_publish_loop()
        self.resumes += 1
        log.info(
            "OPC UA resumed subscription %d to %d variables at %s (%d unacknowledged messages republished)",
            sid,
            len(state.handles),
            self.config.endpoint,
            republished,
        )
        return sub

    async def _subscribe(self, client: Client) -> tuple[Any, dict[int, str]]:
        """A new subscription to every tag; its state saved for ``_resume``."""
        sub = await client.create_subscription(
            self.config.publishing_interval_ms, None, queue_maxsize=1_000_000
        )
        nodes = [client.get_node(nid) for nid in self.tags]
        node_ids = {id(node): nid for node, nid in zip(nodes, self.tags, strict=True)}
        self._sub, self._node_ids, self._handles = sub, node_ids, {}
        session = client.uaclient.session
        if self.bulk_decode and not opcua_bulk.install(session, sub, self._on_changes, self._ledger):
            log.warning("OPC UA: bulk decoding not available with this asyncua; decoding per change")
        # Subscribe in chunks: one request for thousands of items can exceed message limits.
        for i in range(0, len(nodes), 500):
            await sub.subscribe_data_change(
                nodes[i : i + 500],
                queuesize=self.config.queue_size,
                sampling_interval=ua.Double(self.config.sampling_interval_ms),
            )
        handles = {
            h: item.node.nodeid.to_string()
            for h, item in getattr(sub, "_monitored_items", {}).items()
            if item.node is not None and item.node.nodeid.to_string() in self.tags
        }
        sid = sub.subscription_id
        if sid is None:  # asyncua sets it from the server's answer; never None once created
            raise ConnectionError("the OPC UA server gave the subscription no id")
        self._state = SubscriptionState(self.config.endpoint, sid, handles)
        if self.state_file is not None:
            try:
                self._state.save(self.state_file)
            except OSError as exc:  # the data still flow; only a restart cannot take over
                log.warning("OPC UA: could not keep the subscription state in %s (%s)", self.state_file, exc)
        log.info("OPC UA subscribed to %d variables at %s", len(nodes), self.config.endpoint)
        return sub, node_ids

    async def _session(self, stop: asyncio.Event) -> None:
        client = await self._make_client()
        # A session whose worker died is closed by the server after this long; the subscription
        # stays available to take over until its own lifetime runs out.
        client.session_timeout = int(self.config.session_timeout_s * 1000)
        lost = asyncio.Event()

        async def on_lost(_exc: Exception) -> None:
            lost.set()

        # Our own reconnect (a fresh session, browse and subscription, with back-off) has
        # proved quicker and more predictable after a server restart than asyncua's.
        client.connection_lost_callback = on_lost
        await client.connect(auto_reconnect=False)
        resumed = None
        started = time.monotonic()
        try:
            self.tags = await self._resolve_tags(client)
            if not self.tags:
                log.warning("OPC UA: no variables found for the mapping at %s", self.config.endpoint)
            sub = resumed = await self._resume(client)
            node_ids: dict[int, str] = {}
            if sub is None:
                sub, node_ids = await self._subscribe(client)
            self.connects += 1
            self._connected.set()
            await self._consume(sub, stop, lost, node_ids)
        finally:
            self._connected.clear()
            if resumed is not None and not stop.is_set() and time.monotonic() - started < _RESUME_TRIAL_S:
                # Taken over, then the session failed at once (seen with a server that keeps
                # subscriptions across its own restart but answers their publishing on the
                # old connection's request ids): the next session subscribes afresh rather
                # than loop on taking it over.
                log.info(
                    "OPC UA: the session failed %.1f s after taking subscription %s over; subscribing afresh",
                    time.monotonic() - started,
                    resumed.subscription_id,
                )
                self._state = None
            try:
                await asyncio.wait_for(client.disconnect(), 1)
            except Exception:
                log.debug("OPC UA disconnect failed", exc_info=True)

    async def _main(self) -> None:
        self._stop = stop = asyncio.Event()
        backoff = Backoff(self.config.reconnect_min_s, self.config.reconnect_max_s)
        while not stop.is_set():
            connects = self.connects
            try:
                await self._session(stop)
                backoff.reset()
            except Exception as exc:
                self._hand_over()
                if self.connects > connects:
                    backoff.reset()  # that session worked: a server that is back is retried soon
                delay = backoff.next_delay()
                self.last_error = describe_failure(exc, self.config, connecting=self.connects == connects)
                log.warning("OPC UA %s: %s; retrying in %.1fs", self.config.endpoint, self.last_error, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
        self._hand_over()

    # -- Source -----------------------------------------------------------------------------
    def connect(self) -> None:
        if self.state_file is not None and self._state_lock is None:
            # One worker per state file: two would take the one subscription from each other.
            lock = FileLock(f"{self.state_file}.lock", thread_local=False)
            try:
                self.state_file.parent.mkdir(parents=True, exist_ok=True)
                lock.acquire(timeout=0)
                self._state_lock = lock
            except (Timeout, OSError) as exc:
                log.warning(
                    "OPC UA: another worker keeps the subscription of %s (%s); this one runs without "
                    "taking it over after a crash: give each worker its own --client-id",
                    self.config.endpoint,
                    type(exc).__name__,
                )
                self.state_file = None
        if self.state_file is not None and self._state is None:
            self._state = SubscriptionState.load(self.state_file)
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

    def health(self) -> dict[str, Any]:
        problems = list(self.problems)
        if not self.connected:
            problems.insert(0, f"not connected to {self.config.endpoint}: {self.last_error or 'connecting'}")
        return {
            "kind": self.kind,
            "ok": self.connected and not self.problems,
            "connected": self.connected,
            "tags": len(self.tags),
            "notifications": self.notifications,
            "resumed": self.resumes,
            "problems": problems,
        }

    def display_names(self) -> dict[str, str]:
        """Asset ids made from browse names -> the names as the server has them."""
        return {
            t.asset: t.asset_display
            for t in self.tags.values()
            if t.asset_display and t.asset_display != t.asset
        }

    def poll(self, timeout: float) -> list[Delivery]:
        return self._buffer.drain(timeout)

    def close(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None:
            if self._stop is not None:
                loop.call_soon_threadsafe(self._stop.set)
            thread.join(10)
            self._loop = self._thread = None
        if self._state_lock is not None:
            self._state_lock.release()
            self._state_lock = None
