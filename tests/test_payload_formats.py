"""Gateway payload formats at the parser level: time keys, quality codes, text numbers, and the
Sparkplug B host state (fuzzed with hypothesis: nothing a publisher sends raises)."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from axhub.core.domain import Quality
from axhub.core.readings import READINGS_SCHEMA
from axhub.ingest.connectors import sparkplug_schema as spb
from axhub.ingest.connectors.json_payload import JsonPayloadParser
from axhub.ingest.connectors.sparkplug import SparkplugParser
from axhub.ingest.tag_mapping import MqttTopicRule

T_MS = 1_700_000_000_000
TOPIC = {"asset": "press-1", "signal": "s"}


def parse(payload: Any, **rule: Any) -> tuple[list[dict[str, Any]], list[str]]:
    parser = JsonPayloadParser(MqttTopicRule(topic="p/{asset}/{signal}", **rule))
    table, reasons = parser.parse(json.dumps(payload).encode(), TOPIC, 42)
    return table.to_pylist(), reasons


def test_time_keys_are_read_or_refused_never_replaced_by_arrival_time() -> None:
    rows, _ = parse({"timestamp": T_MS, "value": 1})
    assert rows[0]["ts"].timestamp() == T_MS / 1000
    rows, reasons = parse({"time": T_MS, "value": 1})
    assert rows == [] and "set ts_key: time" in reasons[0]
    rows, _ = parse({"time": T_MS, "value": 1}, ts_key="time")
    assert rows[0]["ts"].timestamp() == T_MS / 1000
    rows, reasons = parse({"ts": T_MS, "value": 1}, ts_key="t")  # 'ts' present but not the rule's key
    assert rows == [] and "'ts'" in reasons[0]
    rows, _ = parse({"value": 1})  # no time at all: arrival time
    assert int(rows[0]["ts"].timestamp() * 1e6) == 42


def test_quality_codes() -> None:
    def quality(q: Any, **rule: Any) -> int | str:
        rows, reasons = parse({"ts": T_MS, "value": 1, "quality": q}, **rule)
        return rows[0]["quality"] if rows else reasons[0]

    assert quality(192) == Quality.GOOD and quality(216) == Quality.GOOD  # OPC DA good + limit bits
    assert quality(64) == Quality.UNCERTAIN and quality(24) == Quality.BAD
    assert quality(0) == Quality.GOOD and quality(0, quality_codes="opc-da") == Quality.BAD
    assert quality(0x80000000) == Quality.BAD and quality(0x40000000) == Quality.UNCERTAIN  # OPC UA
    assert quality(True) == Quality.GOOD and quality(False) == Quality.BAD
    assert "quality must be 0" in str(quality(5, quality_codes="axhub"))


def test_numbers_as_strings_only_when_the_rule_says_so() -> None:
    rows, reasons = parse({"ts": T_MS, "value": " 12.5 "})
    assert rows == [] and "numbers_as_strings" in reasons[0]
    rows, _ = parse({"ts": T_MS, "value": " 12.5 "}, numbers_as_strings=True)
    assert rows[0]["value"] == 12.5
    rows, reasons = parse({"ts": T_MS, "value": "high"}, numbers_as_strings=True)
    assert rows == [] and "not a number" in reasons[0]


def test_gateway_device_names_need_a_map_or_make_ids() -> None:
    doc = {"Device A": [{"ts": T_MS, "values": {"temp": 1}}]}
    rows, _ = parse(doc)  # kept as sent: the reading rule refuses it later, with its reason
    assert rows[0]["asset"] == "Device A"
    rows, _ = parse(doc, assets={"Device A": "dev-a"})
    assert rows[0]["asset"] == "dev-a"
    rows, _ = parse(doc, make_ids=True)
    assert rows[0]["asset"].startswith("device-a-")


def _payload(seq: int, metrics: list[dict[str, Any]], ts: int | None = T_MS) -> bytes:
    msg = spb.Payload(seq=seq)
    if ts is not None:
        msg.timestamp = ts
    for m in metrics:
        metric = msg.metrics.add()
        for key, value in m.items():
            setattr(metric, key, value)
    return bytes(msg.SerializeToString())


def test_sparkplug_data_before_birth_and_unknown_alias_ask_for_a_rebirth() -> None:
    parser = SparkplugParser(MqttTopicRule(topic="spBv1.0/#", format="sparkplug"))
    topic = "spBv1.0/g1/NDATA/edge-9"
    result = parser.parse_message(
        topic, _payload(5, [{"alias": 3, "datatype": spb.DOUBLE, "double_value": 1.0}]), 0
    )
    assert result.batch.num_rows == 0
    assert [t for t, _p in result.publish] == ["spBv1.0/g1/NCMD/edge-9"]
    request = spb.Payload.FromString(result.publish[0][1])
    assert request.metrics[0].name == "Node Control/Rebirth" and request.metrics[0].boolean_value
    assert any("before its NBIRTH" in r for r in result.reasons)
    birth = _payload(0, [{"name": "Temp/Zone 1", "alias": 3, "datatype": spb.DOUBLE, "double_value": 2.0}])
    result = parser.parse_message("spBv1.0/g1/NBIRTH/edge-9", birth, 0)
    assert result.batch.to_pylist()[0]["signal"] == "Temp.Zone 1" and not result.reasons
    result = parser.parse_message(
        topic, _payload(1, [{"alias": 3, "datatype": spb.DOUBLE, "double_value": 3.0}]), 0
    )
    assert result.batch["value"].to_pylist() == [3.0] and not result.publish
    state = parser.parse_message("spBv1.0/STATE/scada-1", b'{"online": true, "timestamp": 1}', 0)
    assert state.batch.num_rows == 0 and state.reasons == []  # another host's state: not readings


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(["NBIRTH", "NDATA", "DBIRTH", "DDATA", "NDEATH", "DDEATH", "BOGUS"]),
    payload=st.binary(max_size=80),
)
def test_sparkplug_parser_never_raises(kind: str, payload: bytes) -> None:
    parser = SparkplugParser(MqttTopicRule(topic="spBv1.0/#", format="sparkplug"))
    result = parser.parse_message(f"spBv1.0/g/{kind}/n/d", payload, T_MS * 1000)
    assert result.batch.schema == READINGS_SCHEMA
    assert isinstance(result.batch, pa.Table)


def test_mapping_names_follow_the_rule_when_the_file_loads() -> None:
    import pytest

    from axhub.core.errors import InputValidationError
    from axhub.ingest.tag_mapping import parse_mapping

    ok = parse_mapping({"modbus": {"registers": [{"address": 1, "asset": "press-1", "signal": "주축 부하"}]}})
    assert ok.modbus is not None and ok.modbus.registers[0].signal == "주축 부하"
    with pytest.raises(InputValidationError, match=r"modbus\.registers\.0\.signal.*contains '<'"):
        parse_mapping({"modbus": {"registers": [{"address": 1, "asset": "press-1", "signal": "a<b>"}]}})
    with pytest.raises(InputValidationError, match=r"opcua\.nodes\.0\.asset.*not an asset id"):
        parse_mapping({"opcua": {"nodes": [{"node": "ns=1;s=x", "asset": "프레스", "signal": "s"}]}})
    with pytest.raises(InputValidationError, match="not an asset id"):
        parse_mapping({"mqtt": {"topics": [{"topic": "a/#", "assets": {"프레스": "프레스"}}]}})


def test_sparkplug_rules_refuse_shared_subscriptions() -> None:
    import pytest

    from axhub.core.errors import InputValidationError
    from axhub.ingest.tag_mapping import parse_mapping

    with pytest.raises(InputValidationError, match="Sparkplug B rules cannot use shared_group"):
        parse_mapping(
            {"mqtt": {"shared_group": "g", "topics": [{"topic": "spBv1.0/#", "format": "sparkplug"}]}}
        )


def test_opcua_failures_are_described_not_left_empty() -> None:
    from axhub.ingest.connectors.opcua import describe_failure
    from axhub.ingest.tag_mapping import OpcUaConfig

    secure = OpcUaConfig(
        endpoint="opc.tcp://plc:4840",
        security_policy="Basic256Sha256",
        security_mode="SignAndEncrypt",
        certificate="/etc/axhub/client.pem",
        private_key="/etc/axhub/client.key",
        nodes=[{"node": "ns=1;s=x", "asset": "a", "signal": "s"}],
    )
    refused = describe_failure(ConnectionRefusedError(111, "refused"), secure)
    assert "nothing listens at opc.tcp://plc:4840" in refused and "certificate" not in refused
    closed = describe_failure(ConnectionError(""), secure)
    assert "trust this client certificate on the server (/etc/axhub/client.pem)" in closed
    later = describe_failure(ConnectionError("Connection is closed"), secure, connecting=False)
    assert later == "Connection is closed"  # a session that worked and then dropped: no certificate advice
    assert (
        describe_failure(TimeoutError(), secure.model_copy(update={"security_policy": "None"}))
        == "TimeoutError"
    )


def test_sparkplug_stale_will_of_an_older_session_is_ignored() -> None:
    parser = SparkplugParser(MqttTopicRule(topic="spBv1.0/#", format="sparkplug"))
    metrics = [{"name": "bdSeq", "datatype": spb.INT64, "long_value": 4}]
    metrics.append({"name": "rpm", "alias": 1, "datatype": spb.DOUBLE, "double_value": 1.0})
    parser.parse_message("spBv1.0/g/NBIRTH/n1", _payload(0, metrics), 0)
    stale = _payload(0, [{"name": "bdSeq", "datatype": spb.INT64, "long_value": 3}], ts=None)
    assert parser.parse_message("spBv1.0/g/NDEATH/n1", stale, T_MS * 1000).batch.num_rows == 0
    current = _payload(0, [{"name": "bdSeq", "datatype": spb.INT64, "long_value": 4}], ts=None)
    death = parser.parse_message("spBv1.0/g/NDEATH/n1", current, T_MS * 1000).batch.to_pylist()
    assert [(r["signal"], r["value"], r["quality"]) for r in death] == [("rpm", None, Quality.BAD)]
