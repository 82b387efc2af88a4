"""Mapping files: from protocol addresses (MQTT topics, OPC UA node ids, Modbus registers)
to AX Hub's asset/signal, with scaling, byte/word order and register types.

One YAML file describes one connection. Example::

    org: demo
    mqtt:
      host: 127.0.0.1
      port: 1883
      version: "5"              # or "3.1.1"
      client_id: axhub-ingest   # fixed id = persistent session across restarts
      shared_group: ingest      # MQTT 5 shared subscription: workers split the stream
      topics:
        - topic: plant/{asset}/{signal}      # {name} = one topic level, becomes '+'
        - topic: plant/{asset}/batch         # JSON arrays of readings
          ts_unit: ms
        - topic: v1/gateway/telemetry        # ThingsBoard gateway: device names -> asset ids
          assets: {"프레스 1": press-01}
          make_ids: true                     # other names get ids made from them
        - topic: spBv1.0/plant/#             # Sparkplug B edge nodes
          format: sparkplug
    opcua:
      endpoint: opc.tcp://127.0.0.1:4840
      username: operator
      password: secret
      nodes:
        - {node: "ns=2;s=pump-01.pressure", asset: pump-01, signal: pressure}
      browse:
        - {root: "ns=2;s=Plant", asset: "{parent}", signal: "{name}"}
    modbus:
      host: 127.0.0.1
      port: 5020
      registers:
        - {address: 0, kind: holding, type: float32, word_order: little,
           asset: pump-01, signal: pressure, scale: 1.0}

Templates use ``{name}`` placeholders filled from the topic (MQTT) or from the browse
path (OPC UA: ``{name}`` the variable's browse name, ``{parent}`` its parent's).
"""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from axhub.core.errors import InputProblem, InputValidationError
from axhub.core.reading_rules import asset_id_problem, exact_value, signal_name_problem

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_asset(value: str) -> str:
    problem = asset_id_problem(value)
    if problem is not None:
        raise ValueError(problem.en)
    return value


def _check_signal(value: str) -> str:
    problem = signal_name_problem(value)
    if problem is not None:
        raise ValueError(problem.en)
    return value


# Fixed names in a mapping follow the one rule for readings, checked when the file loads.
AssetId = Annotated[str, AfterValidator(_check_asset)]
SignalName = Annotated[str, AfterValidator(_check_signal)]


class Scaling(_Model):
    """engineering value = raw * scale + offset."""

    scale: float = 1.0
    offset: float = 0.0

    def apply(self, raw: float) -> float:
        return raw * self.scale + self.offset

    def apply_exact(self, raw: int) -> float | int:
        """Like ``apply`` for an integer reading, kept exact where it is not scaled: beyond
        +-2^53 the int itself (``reading_rules.exact_value``; raises ``ValueError`` if int64
        cannot hold it). A scaled reading is a float64 computation, as ``apply``."""
        if self.scale == 1.0 and self.offset == 0.0:
            return exact_value(raw)
        return self.apply(float(raw))


# ---------------------------------------------------------------------------------- MQTT
class MqttTopicRule(Scaling):
    """One subscription and how to read its messages.

    ``topic`` is a template: each ``{name}`` stands for one topic level (subscribed as ``+``);
    a trailing ``#`` is allowed. ``asset`` / ``signal`` are templates over those names; a
    reading's own ``asset`` / ``signal`` fields win over them.
    """

    topic: str
    asset: str = "{asset}"
    signal: str = "{signal}"
    # Unit of numeric timestamps in payloads; ISO-8601 strings are always accepted.
    ts_unit: Literal["s", "ms", "us", "ns"] = "ms"
    # Rename signals coming from the payload: {"temp_c": "temperature"}.
    rename: dict[str, str] = Field(default_factory=dict)
    # "json": every JSON shape below is recognised by itself (AX Hub readings/records/columns,
    # ThingsBoard device and gateway telemetry, Kepware IoT Gateway, Node-RED objects);
    # "sparkplug": Sparkplug B protobuf on spBv1.0/<group>/<type>/<node>[/<device>] topics.
    format: Literal["json", "sparkplug"] = "json"
    # The payload key holding the time; default: 'ts', then 'timestamp' (Node-RED, Kepware).
    # A time under any other key is refused, never replaced by the arrival time.
    ts_key: str | None = None
    # Gateways that send numbers as text ("12.5"): opt in per rule; off, such values are refused.
    numbers_as_strings: bool = False
    # Numeric quality codes: 0/1/2 are AX Hub's (good/uncertain/bad), 3-255 OPC Classic (DA)
    # quality bytes (192 = good), larger OPC UA status codes; or force one reading.
    quality_codes: Literal["auto", "axhub", "opc-da", "opc-ua"] = "auto"
    # Asset names as machines send them -> asset ids ({"프레스 1": "press-01", "Device A": "dev-a"}).
    assets: dict[str, AssetId] = Field(default_factory=dict)
    # Names that are not asset ids and not in 'assets' become ids made from them (the name kept
    # as display name) instead of being refused.
    make_ids: bool = False

    @field_validator("topic")
    @classmethod
    def _check_topic(cls, value: str) -> str:
        levels = value.split("/")
        for i, level in enumerate(levels):
            if level == "#" and i != len(levels) - 1:
                raise ValueError("'#' may only be the last topic level")
            if ("+" in level and level != "+") or ("#" in level and level != "#"):
                raise ValueError(f"wildcard must fill a whole topic level, got {level!r}")
            if "{" in level and not _PLACEHOLDER.fullmatch(level):
                raise ValueError(f"a placeholder must fill a whole topic level, got {level!r}")
        return value

    @property
    def subscription(self) -> str:
        """The MQTT topic filter (placeholders become ``+``)."""
        return "/".join("+" if _PLACEHOLDER.fullmatch(lv) else lv for lv in self.topic.split("/"))

    def match(self, topic: str) -> dict[str, str] | None:
        """Placeholder values if ``topic`` matches this rule, else None."""
        pattern = self.topic.split("/")
        levels = topic.split("/")
        found: dict[str, str] = {}
        for i, p in enumerate(pattern):
            if p == "#":
                found["rest"] = "/".join(levels[i:])
                return found
            if i >= len(levels):
                return None
            m = _PLACEHOLDER.fullmatch(p)
            if m:
                found[m.group(1)] = levels[i]
            elif p != "+" and p != levels[i]:
                return None
        return found if len(levels) == len(pattern) else None


def fill(template: str, values: dict[str, str]) -> str | None:
    """Fill ``{name}`` placeholders; None when a name is missing (the payload must say it)."""
    missing = False

    def sub(m: re.Match[str]) -> str:
        nonlocal missing
        if m.group(1) not in values:
            missing = True
            return ""
        return values[m.group(1)]

    out = _PLACEHOLDER.sub(sub, template)
    return None if missing else out


class MqttConfig(_Model):
    host: str = "127.0.0.1"
    port: int = 1883
    version: Literal["3.1.1", "5"] = "5"
    # A fixed client id gives a persistent session: QoS 1 messages published while the
    # worker is down wait at the broker. Workers of one shared group need distinct ids.
    client_id: str = "axhub-ingest"
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_certs: str | None = None
    keepalive: int = 30
    qos: Literal[0, 1] = 1
    shared_group: str | None = None
    session_expiry_s: int = 7 * 24 * 3600
    # MQTT 5 flow control: at most this many unacknowledged messages in flight to us. This
    # is the back-pressure: a slow store means no acks, so the broker stops sending.
    receive_maximum: int = Field(default=2000, ge=1, le=65535)
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    topics: list[MqttTopicRule] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_shared(self) -> MqttConfig:
        if self.shared_group and self.version != "5":
            raise ValueError("shared_group needs MQTT version '5'")
        if self.shared_group and any(t.format == "sparkplug" for t in self.topics):
            # A host must see every message of an edge node to check its sequence numbers.
            raise ValueError(
                "Sparkplug B rules cannot use shared_group: each worker would see only part of a "
                "node's messages; run one worker for the Sparkplug topics"
            )
        return self

    def subscriptions(self) -> list[str]:
        subs = [rule.subscription for rule in self.topics]
        if self.shared_group:
            subs = [f"$share/{self.shared_group}/{s}" for s in subs]
        return subs

    def rule_for(self, topic: str) -> tuple[MqttTopicRule, dict[str, str]] | None:
        for rule in self.topics:
            found = rule.match(topic)
            if found is not None:
                return rule, found
        return None


# -------------------------------------------------------------------------------- OPC UA
class OpcUaNode(Scaling):
    node: str
    asset: AssetId
    signal: SignalName


class OpcUaBrowse(Scaling):
    """Subscribe to every variable below ``root`` (depth-limited), named by templates."""

    root: str
    asset: str = "{parent}"
    signal: str = "{name}"
    max_depth: int = Field(default=3, ge=1, le=10)


class OpcUaConfig(_Model):
    endpoint: str = "opc.tcp://127.0.0.1:4840"
    username: str | None = None
    password: str | None = None
    # Certificate security, e.g. policy Basic256Sha256, mode SignAndEncrypt.
    security_policy: Literal["None", "Basic256Sha256", "Aes128Sha256RsaOaep", "Aes256Sha256RsaPss"] = "None"
    security_mode: Literal["None", "Sign", "SignAndEncrypt"] = "None"
    certificate: str | None = None
    private_key: str | None = None
    server_certificate: str | None = None
    publishing_interval_ms: int = Field(default=100, ge=1)
    sampling_interval_ms: int = Field(default=0, ge=0)
    queue_size: int = Field(default=100, ge=1)
    timeout_s: float = 5.0
    # How long the server keeps the session of a worker that died (its subscription can be
    # taken over by the next one; see connectors/opcua_resume).
    session_timeout_s: float = Field(default=120.0, gt=0)
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    nodes: list[OpcUaNode] = Field(default_factory=list)
    browse: list[OpcUaBrowse] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> OpcUaConfig:
        if not self.nodes and not self.browse:
            raise ValueError("give 'nodes' or 'browse' (or both)")
        if self.security_policy != "None" and not (self.certificate and self.private_key):
            raise ValueError("certificate security needs 'certificate' and 'private_key'")
        if self.security_policy != "None" and self.security_mode == "None":
            raise ValueError(
                f"security_policy {self.security_policy} needs security_mode Sign or SignAndEncrypt"
            )
        return self


# -------------------------------------------------------------------------------- Modbus
RegisterType = Literal["int16", "uint16", "int32", "uint32", "float32", "int64", "uint64", "float64"]
_STRUCT = {
    "int16": "h",
    "uint16": "H",
    "int32": "i",
    "uint32": "I",
    "float32": "f",
    "int64": "q",
    "uint64": "Q",
    "float64": "d",
}
_REGISTERS = {"int32": 2, "uint32": 2, "float32": 2, "int64": 4, "uint64": 4, "float64": 4}


class ModbusRegister(Scaling):
    address: int = Field(ge=0, le=65535)
    kind: Literal["holding", "input"] = "holding"
    type: RegisterType = "uint16"
    byte_order: Literal["big", "little"] = "big"
    # For 32- and 64-bit types: which 16-bit register holds the high word ("big" = first;
    # "little" = the words in reverse order).
    word_order: Literal["big", "little"] = "big"
    asset: AssetId
    signal: SignalName

    @property
    def count(self) -> int:
        return _REGISTERS.get(self.type, 1)

    def decode(self, registers: list[int]) -> float | int:
        """Engineering value from this tag's raw 16-bit registers (a 64-bit integer beyond
        float64's reach comes back as an exact int; ``ValueError`` for a UInt64 above int64)."""
        words = list(registers[: self.count])
        if len(words) != self.count:
            raise ValueError(f"{self.type} needs {self.count} registers, got {len(words)}")
        if self.word_order == "little":
            words.reverse()
        raw = b"".join(
            w.to_bytes(2, "big") if self.byte_order == "big" else w.to_bytes(2, "little") for w in words
        )
        (value,) = struct.unpack(">" + _STRUCT[self.type], raw)
        if isinstance(value, int):
            return self.apply_exact(value)
        return self.apply(value)

    def encode(self, value: float | int) -> list[int]:
        """Registers holding engineering ``value`` (for simulators and tests)."""
        raw_value: float | int = (value - self.offset) / self.scale
        if isinstance(value, int) and self.scale == 1.0 and self.offset == 0.0:
            raw_value = value  # an exact integer (64-bit counters) stays exact
        elif self.type not in ("float32", "float64"):
            raw_value = round(raw_value)
        raw = struct.pack(">" + _STRUCT[self.type], raw_value)
        words = [raw[i : i + 2] for i in range(0, len(raw), 2)]
        regs = [int.from_bytes(w, "big" if self.byte_order == "big" else "little") for w in words]
        if self.word_order == "little":
            regs.reverse()
        return regs


class ModbusConfig(_Model):
    host: str = "127.0.0.1"
    port: int = 502
    unit_id: int = Field(default=1, ge=0, le=247)
    poll_interval_ms: int = Field(default=1000, ge=10)
    timeout_s: float = 3.0
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    registers: list[ModbusRegister] = Field(min_length=1)


class ConnectorConfig(_Model):
    """A mapping file: the organisation and one or more connections."""

    org: str | None = None
    mqtt: MqttConfig | None = None
    opcua: OpcUaConfig | None = None
    modbus: ModbusConfig | None = None

    @model_validator(mode="after")
    def _check_any(self) -> ConnectorConfig:
        if not (self.mqtt or self.opcua or self.modbus):
            raise ValueError("the mapping file names no connection: add 'mqtt', 'opcua' or 'modbus'")
        return self


def parse_mapping(data: Any, *, file: str = "<mapping>") -> ConnectorConfig:
    """Validate a mapping given as a dict; errors name the file and the field path."""
    if not isinstance(data, dict):
        raise InputValidationError(
            InputProblem(file, None, None, "expected a YAML mapping at the top level"),
            hint="see 'axhub connect --help' for an example mapping file",
        )
    try:
        return ConnectorConfig.model_validate(data)
    except ValidationError as exc:
        problems = [
            InputProblem(file, None, ".".join(str(p) for p in err["loc"]) or None, err["msg"])
            for err in exc.errors()
        ]
        raise InputValidationError(problems, hint="fix the mapping file and run again") from exc


def load_mapping(path: str | Path) -> ConnectorConfig:
    """Read and validate a YAML mapping file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputValidationError(
            InputProblem(str(path), None, None, f"cannot read the file: {exc.strerror}"),
            hint="check the path given with --config",
        ) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        raise InputValidationError(
            InputProblem(str(path), None if line is None else line + 1, None, f"not valid YAML: {exc}"),
            hint="fix the YAML syntax",
        ) from exc
    return parse_mapping(data, file=str(path))
