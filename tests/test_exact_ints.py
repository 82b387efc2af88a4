"""Integers beyond ±2^53 (which float64 rounds) travel and are stored exactly in ``value_int``.

The store keeps them through the write-ahead log, Parquet, compaction and merges; sources put
them there only for unscaled integer readings; an integer no int64 holds is refused with a
reason, never stored rounded. (The same against independent peers: test_peers_exact_ints.py.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from axhub.core.reading_rules import exact_value, integer_problem
from axhub.core.readings import concat_readings, make_batch, with_exact_ints
from axhub.ingest.connectors.base import columns_to_batch
from axhub.ingest.connectors.json_payload import JsonPayloadParser
from axhub.ingest.tag_mapping import ModbusRegister, MqttTopicRule
from axhub.store.timeseries import TimeSeriesStore
from axhub.store.ts_files import read_manifest

P53 = 2**53 + 1
BIG = [P53, 2**63 - 1, -(2**63), -P53, 2**62 + 7]
T = 1_735_689_600_000_000  # 2025-01-01T00:00:00Z


def _exact(store: TimeSeriesStore, asset: str = "m1") -> list[int | float]:
    frame = store.query("org", asset, exact=True)
    return [v if pd.isna(i) else int(i) for v, i in zip(frame["value"], frame["value_int"], strict=True)]


def _counter_batch(values: list[int], t0: int = T) -> pa.Table:
    batch = make_batch("m1", "counter", [t0 + i for i in range(len(values))], [float(v) for v in values])
    return with_exact_ints(batch, dict(enumerate(values)))


@pytest.mark.parametrize("path", ["write", "append"])
def test_store_keeps_integers_beyond_float64_exactly(tmp_path: Path, path: str) -> None:
    store = TimeSeriesStore(tmp_path, wal_max_age_s=3600)
    try:
        getattr(store, path)("org", _counter_batch(BIG))
        getattr(store, path)("org", make_batch("m1", "counter", [T + 100], [1.5]))  # a float beside them
        assert _exact(store) == [*BIG, 1.5]
        # float64 alone would have rounded them: the plain query shows the nearest doubles.
        plain = store.query("org", "m1")
        assert "value_int" not in plain and plain["value"].iloc[0] == float(P53) != P53
        store.compact("org")  # log -> Parquet -> one merged file
        assert _exact(store) == [*BIG, 1.5]
        [partition] = (tmp_path / "org=org" / "asset=m1").iterdir()
        [merged] = read_manifest(partition).files
        assert merged.exact_ints and merged.rows == len(BIG) + 1
        # Aggregates are over the float64 values, and the exact column never gets in their way.
        assert store.query("org", "m1", interval="1h", agg="max")["value"].iloc[0] == float(2**63 - 1)
    finally:
        store.close()


def test_small_integers_need_no_extra_column(tmp_path: Path) -> None:
    store = TimeSeriesStore(tmp_path)
    try:
        store.write("org", _counter_batch([1, 2**53, -(2**53)]))
        [partition] = (tmp_path / "org=org" / "asset=m1").iterdir()
        [part] = read_manifest(partition).files
        assert not part.exact_ints and part.value_type == "dec0"  # float64 holds them exactly
        assert _exact(store) == [1, 2**53, -(2**53)]
    finally:
        store.close()


def test_value_follows_the_exact_integer_and_duplicates_keep_the_first(tmp_path: Path) -> None:
    store = TimeSeriesStore(tmp_path)
    try:
        wrong = make_batch("m1", "counter", [T], [0.0])  # a value that disagrees with value_int
        store.write("org", with_exact_ints(wrong, {0: P53}))
        result = store.write("org", _counter_batch([P53 + 2]))  # same key: first write wins
        assert result.duplicates == 1
        frame = store.query("org", "m1", exact=True)
        assert frame["value"].tolist() == [float(P53)] and frame["value_int"].tolist() == [P53]
    finally:
        store.close()


def test_log_records_with_and_without_exact_ints_read_together(tmp_path: Path) -> None:
    store = TimeSeriesStore(tmp_path, wal_max_age_s=3600)
    try:
        store.append("org", make_batch("m1", "counter", [T], [1.0]))
        store.append("org", _counter_batch([P53], T + 1))
        store.append("org", make_batch("m1", "counter", [T + 2], [2.0]))
        assert _exact(store) == [1.0, P53, 2.0]
        assert store.flush_wal("org") == 3
        assert _exact(store) == [1.0, P53, 2.0]
    finally:
        store.close()


def test_integers_int64_cannot_hold_are_refused_not_rounded() -> None:
    assert integer_problem(2**63 - 1) is None and integer_problem(-(2**63)) is None
    problem = integer_problem(2**64 - 1)
    assert problem is not None and problem.code == "value_int_range" and "2^63-1" in problem.en
    assert "정수" in problem.ko
    assert exact_value(5) == 5.0 and type(exact_value(5)) is float
    assert exact_value(P53) == P53 and type(exact_value(P53)) is int
    with pytest.raises(ValueError, match="64-bit signed range"):
        exact_value(-(2**63) - 1)


def _parse(payload: str, **rule: object) -> tuple[pa.Table, list[str]]:
    parser = JsonPayloadParser(MqttTopicRule.model_validate({"topic": "t/{asset}/{signal}", **rule}))
    return parser.parse(payload.encode(), {"asset": "m1", "signal": "s"}, T)


def test_json_integers_are_exact_unless_scaled() -> None:
    for payload in (
        f'{{"ts": 1735689600000, "value": {P53}}}',
        f'[{{"ts": 1735689600000, "value": {P53}}}, {{"ts": 1735689600001, "value": 1.5}}]',
        f'{{"ts": 1735689600000, "values": {{"s": {P53}}}}}',
    ):
        table, reasons = _parse(payload)
        assert not reasons and table["value_int"].to_pylist()[0] == P53, payload
    table, reasons = _parse(f'{{"ts": 1735689600000, "value": "{P53}"}}', numbers_as_strings=True)
    assert not reasons and table["value_int"].to_pylist() == [P53]
    # A scaled reading is a float64 computation: no exact column, nothing refused.
    table, reasons = _parse(f'{{"ts": 1735689600000, "value": {P53}}}', scale=0.5)
    assert not reasons and "value_int" not in table.column_names and table["value"][0].as_py() == P53 * 0.5
    table, reasons = _parse(
        json.dumps([{"ts": 1735689600000, "value": 2**64 - 1}, {"ts": 1735689600000, "value": 1}])
    )
    assert table["value"].to_pylist() == [1.0] and "value_int" not in table.column_names
    assert len(reasons) == 1 and "18446744073709551615" in reasons[0] and "64-bit" in reasons[0]


def test_batches_with_and_without_exact_ints_concatenate() -> None:
    a = columns_to_batch(["m1"], ["s"], [T], [1.5], [0])
    b = columns_to_batch(["m1", "m1"], ["s", "s"], [T + 1, T + 2], [P53, 2.0], [0, 0])
    assert "value_int" not in a.column_names and b["value_int"].to_pylist() == [P53, None]
    both = concat_readings([a, b])
    assert both["value_int"].to_pylist() == [None, P53, None]
    assert both["value"].to_pylist() == [1.5, float(P53), 2.0]


@pytest.mark.parametrize("kind", ["int64", "uint64"])
@pytest.mark.parametrize("word_order", ["big", "little"])
def test_modbus_64_bit_registers_round_trip(kind: str, word_order: str) -> None:
    reg = ModbusRegister.model_validate(
        {"address": 0, "type": kind, "word_order": word_order, "asset": "m1", "signal": "s"}
    )
    values = [P53, 2**63 - 1, 0, 12345] + ([-(2**63), -P53] if kind == "int64" else [])
    for value in values:
        regs = reg.encode(value)
        assert len(regs) == 4 and reg.decode(regs) == value
    if kind == "uint64":
        with pytest.raises(ValueError, match="64-bit signed range"):
            reg.decode([0xFFFF] * 4)
    double = ModbusRegister.model_validate({"address": 0, "type": "float64", "asset": "m1", "signal": "s"})
    assert double.decode(double.encode(0.1)) == 0.1
