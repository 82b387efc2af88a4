"""Sparkplug B (Eclipse Sparkplug 3.0) messages turned into readings, as a host application would.

Topics are ``spBv1.0/<group>/<type>/<edge node>[/<device>]``. Per edge node this keeps what the
specification asks a host to keep:

- **Births** (NBIRTH, DBIRTH) name every metric and give it an alias; DATA messages (NDATA,
  DDATA) may then send only aliases. A birth resets the node's (or device's) aliases.
- **Sequence numbers**: every message of a node carries ``seq`` 0-255, one more than the last.
  A gap (a lost message), data before any birth, or an alias no birth named makes the host ask
  for a **rebirth** (an NCMD with ``Node Control/Rebirth = true``), at most once per
  ``REBIRTH_EVERY_S`` per node; the data that can be read is stored meanwhile.
- **Deaths** (NDEATH, DDEATH) become readings: every metric of the node (or device) gets a
  null value with quality *bad* at the time of death, so charts and models see the gap. An
  NDEATH is the MQTT will registered at connect time, so its arrival is the time of death; one
  whose ``bdSeq`` is not the current birth's is an older session's will and is ignored.

Names: the asset is the device id (DDATA...) or the edge node id (NDATA...), through the rule's
``assets`` map and ``make_ids``; a metric name's folder separators ('/') become '.', so
``Motor/Speed`` is the signal ``Motor.Speed``. Control metrics (``Node Control/...``,
``Device Control/...``, ``Properties/...``, ``bdSeq``) are not readings.

Values: integers (signed ones are two's complement in the unsigned protobuf fields), floats,
booleans (1/0); text metrics only with the rule's ``numbers_as_strings``; others (data sets,
templates, bytes, DateTime) are reported once at birth and not stored. A metric property
``Quality`` (an OPC-style code such as 192) gives the reading's quality.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from google.protobuf.message import DecodeError

from axhub.core.domain import Quality
from axhub.core.readings import READINGS_SCHEMA
from axhub.ingest.connectors import sparkplug_schema as spb
from axhub.ingest.connectors.json_payload import JsonPayloadParser, PayloadError, _Columns, _quality_code
from axhub.ingest.tag_mapping import MqttTopicRule

log = logging.getLogger(__name__)

NAMESPACE = "spBv1.0"
REBIRTH_EVERY_S = 5.0
_CONTROL_PREFIXES = ("Node Control/", "Device Control/", "Properties/", "bdSeq")
_NUMERIC = {
    spb.INT8,
    spb.INT16,
    spb.INT32,
    spb.INT64,
    spb.UINT8,
    spb.UINT16,
    spb.UINT32,
    spb.UINT64,
    spb.FLOAT,
    spb.DOUBLE,
    spb.BOOLEAN,
}
_TEXT = {spb.STRING, spb.TEXT}
_SIGNED_32 = {spb.INT8, spb.INT16, spb.INT32}


@dataclass
class _Metric:
    name: str
    datatype: int


@dataclass
class _Node:
    """What a host keeps per edge node: the last seq, and metric aliases per device ('' = node)."""

    seq: int | None = None
    born: bool = False
    bd_seq: int | None = None  # the birth/death sequence of the current session (NBIRTH's bdSeq)
    devices: dict[str, dict[int, _Metric]] = field(default_factory=dict)
    names: dict[str, dict[str, _Metric]] = field(default_factory=dict)
    last_rebirth: float = 0.0


@dataclass
class SparkplugResult:
    batch: pa.Table
    reasons: list[str]
    # Messages to publish (topic, payload): rebirth requests.
    publish: list[tuple[str, bytes]]


def rebirth_request(received_ms: int) -> bytes:
    """An NCMD payload asking an edge node to publish its births again."""
    payload = spb.Payload(timestamp=received_ms)
    metric = payload.metrics.add(name="Node Control/Rebirth", datatype=spb.BOOLEAN)
    metric.boolean_value = True
    return bytes(payload.SerializeToString())


def _bd_seq(msg: Any) -> int | None:
    for metric in msg.metrics:
        if metric.name == "bdSeq":
            kind = metric.WhichOneof("value")
            return int(getattr(metric, kind)) if kind in ("int_value", "long_value") else None
    return None


def signal_from_metric(name: str) -> str:
    return name.replace("/", ".")


class SparkplugParser:
    """Decodes the Sparkplug B messages of one topic rule, keeping the per-node host state."""

    def __init__(self, rule: MqttTopicRule) -> None:
        self.rule = rule
        self._json = JsonPayloadParser(rule)  # for the rule's names, values and quality codes
        self.nodes: dict[tuple[str, str], _Node] = {}
        self.gaps = 0
        self.rebirths = 0

    @property
    def display_names(self) -> dict[str, str]:
        return self._json.display_names

    # -- helpers --------------------------------------------------------------------------
    def _rebirth(self, group: str, node_id: str, node: _Node, why: str, out: list[tuple[str, bytes]]) -> str:
        now = time.monotonic()
        if now - node.last_rebirth < REBIRTH_EVERY_S:
            return f"{why}; rebirth already requested"
        node.last_rebirth = now
        self.rebirths += 1
        out.append((f"{NAMESPACE}/{group}/NCMD/{node_id}", rebirth_request(time.time_ns() // 1_000_000)))
        log.warning("Sparkplug %s/%s: %s; rebirth requested", group, node_id, why)
        return f"{why}; rebirth requested"

    def _value(self, metric: Any, datatype: int) -> float | int | None:
        if metric.is_null:
            return None
        kind = metric.WhichOneof("value")
        if kind is None:
            return None
        raw = getattr(metric, kind)
        if kind == "int_value" and datatype in _SIGNED_32 and raw >= 1 << 31:
            raw -= 1 << 32  # two's complement in an unsigned field
        elif kind == "long_value" and datatype == spb.INT64 and raw >= 1 << 63:
            raw -= 1 << 64
        if kind == "string_value":
            return self._json._value(raw)  # refused unless numbers_as_strings
        if kind in ("bytes_value",):
            raise PayloadError("bytes are not a reading")
        return self._json._value(raw)

    def _quality(self, metric: Any) -> int:
        props = metric.properties
        for key, value in zip(props.keys, props.values, strict=False):
            if key.lower() == "quality":
                kind = value.WhichOneof("value")
                if kind in ("int_value", "long_value"):
                    return _quality_code(int(getattr(value, kind)), self.rule.quality_codes)
        return int(Quality.GOOD)

    # -- entry point ------------------------------------------------------------------------
    def parse_message(self, topic: str, payload: bytes, received_us: int) -> SparkplugResult:
        """Readings, reasons for what was refused, and messages to publish. Never raises."""
        publish: list[tuple[str, bytes]] = []
        try:
            batch, reasons = self._parse(topic, payload, received_us, publish)
        except Exception as exc:  # nothing a publisher sends may stop the worker
            batch, reasons = (
                READINGS_SCHEMA.empty_table(),
                [f"Sparkplug message could not be read ({exc})"[:300]],
            )
        return SparkplugResult(batch, reasons, publish)

    def _parse(
        self, topic: str, payload: bytes, received_us: int, publish: list[tuple[str, bytes]]
    ) -> tuple[pa.Table, list[str]]:
        empty = READINGS_SCHEMA.empty_table()
        parts = topic.split("/")
        if len(parts) >= 2 and parts[0] == NAMESPACE and parts[1] == "STATE":
            return empty, []  # another host application's state (spBv1.0/STATE/<host>): not readings
        if len(parts) not in (4, 5) or parts[0] != NAMESPACE:
            return empty, [f"not a Sparkplug B topic ({NAMESPACE}/<group>/<type>/<node>[/<device>])"]
        _ns, group, kind, node_id, *rest = parts
        device = rest[0] if rest else ""
        if kind in ("NCMD", "DCMD", "STATE"):
            return empty, []  # commands and host state: not readings
        if kind not in ("NBIRTH", "DBIRTH", "NDATA", "DDATA", "NDEATH", "DDEATH"):
            return empty, [f"unknown Sparkplug message type {kind!r}"]
        try:
            msg = spb.Payload.FromString(payload)
        except DecodeError as exc:
            return empty, [f"not a Sparkplug B payload: {exc}"]
        node = self.nodes.setdefault((group, node_id), _Node())
        reasons: list[str] = []
        if kind == "NDEATH":
            bd_seq = _bd_seq(msg)
            if bd_seq is not None and node.bd_seq is not None and bd_seq != node.bd_seq:
                return empty, []  # the will of an older session: this one is alive
            return self._death(node, node_id, None, received_us), []
        # Sequence check (every message of the node but NDEATH carries seq).
        seq = int(msg.seq) if msg.HasField("seq") else None
        if kind == "NBIRTH":
            node.seq, node.born, node.bd_seq = seq, True, _bd_seq(msg)
            node.devices, node.names = {}, {}
        elif not node.born:
            reasons.append(
                self._rebirth(group, node_id, node, f"{kind} from {node_id} before its NBIRTH", publish)
            )
        elif seq is not None and node.seq is not None and seq != (node.seq + 1) % 256:
            self.gaps += 1
            reasons.append(
                self._rebirth(
                    group, node_id, node, f"sequence gap at {node_id}: got {seq} after {node.seq}", publish
                )
            )
        if seq is not None:
            node.seq = seq
        if kind == "DDEATH":
            return self._death(node, node_id, device, received_us, msg), reasons
        is_birth = kind.endswith("BIRTH")
        scope = device if kind.startswith("D") else ""
        if is_birth:
            node.devices[scope], node.names[scope] = {}, {}
        aliases = node.devices.setdefault(scope, {})
        names = node.names.setdefault(scope, {})
        asset = self._json.asset_id(device or node_id)
        payload_ts = int(msg.timestamp) * 1000 if msg.HasField("timestamp") else received_us
        out = _Columns()
        for metric in msg.metrics:
            if metric.HasField("name") and metric.name:
                datatype = metric.datatype or (names[metric.name].datatype if metric.name in names else 0)
                known = _Metric(metric.name, datatype)
                if is_birth or metric.name not in names:
                    names[metric.name] = known
                    if metric.HasField("alias"):
                        aliases[int(metric.alias)] = known
            elif metric.HasField("alias") and int(metric.alias) in aliases:
                known = aliases[int(metric.alias)]
            else:
                why = (
                    f"alias {metric.alias} of {node_id}{'/' + device if device else ''} was named by no birth"
                )
                reasons.append(self._rebirth(group, node_id, node, why, publish))
                continue
            if known.name.startswith(_CONTROL_PREFIXES):
                continue
            datatype = metric.datatype or known.datatype
            if datatype not in _NUMERIC and not (datatype in _TEXT and self.rule.numbers_as_strings):
                if is_birth:
                    reasons.append(
                        f"metric {known.name!r} is {spb.DATATYPE_NAMES.get(datatype, datatype)}: not stored "
                        "(readings are numbers; numbers_as_strings parses text)"
                    )
                continue
            try:
                value = self._value(metric, datatype)
                ts = int(metric.timestamp) * 1000 if metric.HasField("timestamp") else payload_ts
                out.add(asset, signal_from_metric(known.name), ts, value, self._quality(metric))
            except PayloadError as exc:
                reasons.append(f"metric {known.name!r}: {exc}")
        return out.table(), reasons

    def _death(
        self, node: _Node, node_id: str, device: str | None, received_us: int, msg: Any = None
    ) -> pa.Table:
        """Null readings with quality bad for every metric of the dead node (or device)."""
        out = _Columns()
        if device is None:
            scopes = list(node.names)
            node.born = False
            at = received_us  # NDEATH is the will registered at connect: its arrival is the death
        else:
            scopes = [device]
            at = int(msg.timestamp) * 1000 if msg is not None and msg.HasField("timestamp") else received_us
        for scope in scopes:
            asset = self._json.asset_id(scope or node_id)
            for name, metric in node.names.get(scope, {}).items():
                if name.startswith(_CONTROL_PREFIXES) or metric.datatype not in _NUMERIC:
                    continue
                out.add(asset, signal_from_metric(name), at, None, int(Quality.BAD))
        return out.table()
