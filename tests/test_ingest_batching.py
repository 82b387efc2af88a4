"""The MQTT source's batching keeps parsing exact: the one-reading fast path gives what the
general path gives, and many payloads gathered into one batch equal each parsed alone."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from axhub.ingest.connectors.json_payload import BatchBuilder, JsonPayloadParser
from axhub.ingest.tag_mapping import MqttTopicRule

RULES = [
    {"topic": "f/{asset}/{signal}"},
    {"topic": "f/{asset}/{signal}", "ts_unit": "s", "scale": 0.1, "offset": -3.0},
    {"topic": "f/{asset}/{signal}", "ts_unit": "us", "rename": {"t1": "temperature"}},
    {"topic": "f/{asset}/{signal}", "asset": "plant-{asset}"},
]
READINGS = [
    (1_700_000_000_000, 1.5),
    (1_700_000_000_001, 16777217),
    (1_700_000_000.25, -123456789),
    (1_700_000_000_002, 1e39),
    (1_700_000_000_003, 0),
    (1_700_000_000_004, 2**53),
]


def _rows(table: pa.Table) -> list[tuple[Any, ...]]:
    table = table.set_column(2, "ts", table["ts"].cast(pa.int64()))
    cols = [table[c].to_pylist() for c in ("asset", "signal", "ts", "value", "quality")]
    return list(zip(*cols, strict=True))


@pytest.mark.parametrize("rule", RULES)
def test_one_reading_fast_path_equals_the_general_path(rule: dict[str, Any]) -> None:
    parser = JsonPayloadParser(MqttTopicRule.model_validate(rule))
    values = {"asset": "m-01", "signal": "t1"}
    assert parser._names_from_topic(values) is not None  # the fast path is on for these rules
    for ts, value in READINGS:
        fast, reasons = parser.parse(json.dumps({"ts": ts, "value": value}).encode(), values, 0)
        assert not reasons
        # A third key takes the general path (quality "good" is the default).
        slow, reasons = parser.parse(
            json.dumps({"ts": ts, "value": value, "quality": "good"}).encode(), values, 0
        )
        assert not reasons
        assert _rows(fast) == _rows(slow)


def test_unusual_one_reading_payloads_take_the_general_path() -> None:
    parser = JsonPayloadParser(MqttTopicRule.model_validate({"topic": "f/{asset}/{signal}"}))
    values = {"asset": "m-01", "signal": "t1"}
    for payload in [{"ts": True, "value": 1.0}, {"ts": 1, "value": "1.5"}, {"ts": 1, "value": 2**60}]:
        general, general_reasons = parser.parse(json.dumps({**payload, "quality": 0}).encode(), values, 0)
        got, reasons = parser.parse(json.dumps(payload).encode(), values, 0)
        assert bool(reasons) == bool(general_reasons) and _rows(got) == _rows(general)


def test_gathered_payloads_equal_each_parsed_alone_in_order() -> None:
    parser = JsonPayloadParser(MqttTopicRule.model_validate({"topic": "f/{asset}/batch"}))
    values = {"asset": "m-01"}
    payloads = [
        json.dumps({"signal": "a", "ts": 1_700_000_000_000, "value": 1.0}),
        json.dumps([{"signal": "b", "ts": 1_700_000_000_000 + i, "value": float(i)} for i in range(5)]),
        "not json",
        json.dumps({"signal": "c", "ts": 1_700_000_000_000, "values": {"x": 1, "y": 2}}),
        json.dumps([{"signal": "d", "ts": 1_700_000_000_000, "value": 1.0}, {"signal": "d", "value": "bad"}]),
        json.dumps({"signal": "e", "ts": 1_700_000_000_000, "value": 7}),
    ]
    builder = BatchBuilder()
    gathered_reasons = [builder.add(parser, p.encode(), values, 5) for p in payloads]
    alone = [parser.parse(p.encode(), values, 5) for p in payloads]
    assert gathered_reasons == [r for _t, r in alone]
    assert _rows(builder.table()) == [row for t, _r in alone for row in _rows(t)]


ROW = st.fixed_dictionaries(
    {
        "ts": st.one_of(
            st.integers(1_600_000_000_000, 1_800_000_000_000), st.floats(1.6e12, 1.8e12, allow_nan=False)
        ),
        "value": st.one_of(
            st.floats(allow_nan=False, allow_infinity=False),
            st.integers(-(2**64), 2**64),
            st.sampled_from([2**53 - 1, 2**53, 2**53 + 1, -(2**53) - 1, 2**63 - 1, -(2**63), 2**64 - 1]),
        ),
    },
    optional={
        "signal": st.sampled_from(["t1", "압력", "Zone1 °C", ""]),
        "asset": st.sampled_from(["m-02", "m 3"]),
    },
)


@pytest.mark.parametrize("rule", RULES)
@settings(max_examples=60, deadline=None)
@given(rows=st.lists(ROW, min_size=1, max_size=12))
def test_batched_array_fast_path_equals_the_general_path(
    rule: dict[str, Any], rows: list[dict[str, Any]]
) -> None:
    """A JSON array of flat readings (read by msgspec, vectorised) gives exactly what the
    general path gives the same readings (forced there by a quality on each row), exact
    integers and refusals included."""
    parser = JsonPayloadParser(MqttTopicRule.model_validate(rule))
    values = {"asset": "m-01", "signal": "t1"}
    fast, fast_reasons = parser.parse(json.dumps(rows).encode(), values, 0)
    slow, slow_reasons = parser.parse(
        json.dumps([{**r, "quality": "good"} for r in rows]).encode(), values, 0
    )
    assert fast_reasons == slow_reasons
    assert _rows(fast) == _rows(slow)
    exact = [
        t["value_int"].to_pylist() if "value_int" in t.column_names else [None] * t.num_rows
        for t in (fast, slow)
    ]
    assert exact[0] == exact[1]
