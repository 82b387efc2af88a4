"""Sources for the connections named in a mapping file."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from axhub.ingest.connectors.base import Source
from axhub.ingest.tag_mapping import ConnectorConfig

Protocol = Literal["mqtt", "opcua", "modbus"]


def build_source(
    config: ConnectorConfig,
    protocol: Protocol,
    *,
    client_id: str | None = None,
    state_dir: Path | None = None,
) -> Source:
    """The source for one protocol of the mapping (imports only that protocol's library).

    ``state_dir``: where a source keeps what lets the next run carry on where this one
    stopped (OPC UA: the subscription to take over after a crash).
    """
    if protocol == "mqtt" and config.mqtt is not None:
        from axhub.ingest.connectors.mqtt import MqttSource

        return MqttSource(config.mqtt, client_id=client_id)
    if protocol == "opcua" and config.opcua is not None:
        from axhub.ingest.connectors.opcua import OpcUaSource
        from axhub.ingest.connectors.opcua_resume import state_path

        endpoint = config.opcua.endpoint
        state_file = None if state_dir is None else state_path(state_dir, endpoint, client_id or "")
        return OpcUaSource(config.opcua, state_file=state_file)
    if protocol == "modbus" and config.modbus is not None:
        from axhub.ingest.connectors.modbus import ModbusSource

        return ModbusSource(config.modbus)
    raise ValueError(f"the mapping file has no '{protocol}' section")


def quiet_protocol_loggers() -> None:
    """Protocol libraries log whole messages at INFO (asyncua: every publish response, which at
    1,000 tags was 88 MB in 25 s and cost throughput). The worker logs summaries and rates;
    the libraries only their warnings."""
    for name in ("asyncua", "pymodbus", "paho"):
        logging.getLogger(name).setLevel(logging.WARNING)


def configured_protocols(config: ConnectorConfig) -> list[Protocol]:
    out: list[Protocol] = []
    if config.mqtt is not None:
        out.append("mqtt")
    if config.opcua is not None:
        out.append("opcua")
    if config.modbus is not None:
        out.append("modbus")
    return out
