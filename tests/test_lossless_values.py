"""Nothing a machine sent comes back different: exact values through every way into the store.

Values float32 cannot hold (integers above 2^24, 1e39) go in through the store API, a CSV
file, the HTTP readings API and MQTT (the real Mosquitto broker), and must come back out of
a raw query bit for bit. Files written before values were float64 must still read.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from _api_helpers import Hub, make_hub, seed_org
from axhub.core.readings import make_batch
from axhub.ingest.connectors.mqtt import MqttSource
from axhub.ingest.deadletter import DeadLetterStore
from axhub.ingest.files import ingest_file
from axhub.ingest.tag_mapping import MqttConfig
from axhub.ingest.worker import IngestWorker
from axhub.store import ts_files
from axhub.store.timeseries import TimeSeriesStore
from test_connectors_mqtt import BROKER, _broker_up, wait_for

# Each one was changed by the float32 store: 16777217 -> 16777216, 3000000001 -> 3000000000,
# -123456789 -> -123456790, 1e39 -> inf; the others are ordinary readings and edge cases.
EXACT = [16777217.0, 3000000001.0, -123456789.0, 1e39, 0.1, 49.71, 2.0**53, -2.5e-300, 0.0]
T0_US = 1_735_689_600_000_000  # 2025-01-01T00:00:00Z


def _raw(store: TimeSeriesStore, org: str, asset: str, signal: str = "counter") -> list[float]:
    frame = store.query(org, asset, [signal])
    return [float(v) for v in frame["value"]]


def _same(got: list[float], want: list[float]) -> bool:
    return np.array_equal(np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64))


@pytest.mark.parametrize("path", ["write", "append"])
def test_store_round_trips_exact_values(tmp_path: Path, path: str) -> None:
    store = TimeSeriesStore(tmp_path)
    ts = T0_US + np.arange(len(EXACT), dtype=np.int64) * 1_000_000
    getattr(store, path)("acme", make_batch("plc-01", "counter", ts, EXACT))
    assert _same(_raw(store, "acme", "plc-01"), EXACT)  # before compaction (the log, for append)
    store.compact("acme")
    assert _same(_raw(store, "acme", "plc-01"), EXACT)
    # Aggregates see the exact values too (max of the bucket is 1e39, min is -123456789).
    agg = store.query("acme", "plc-01", ["counter"], interval="1D", agg="max")
    assert float(agg["value"].iloc[0]) == 1e39
    store.close()


def test_files_written_as_float32_still_read_beside_new_ones(tmp_path: Path) -> None:
    """A partition written by the float32 store keeps answering as it did, mixed with new files."""
    store = TimeSeriesStore(tmp_path)
    partition = tmp_path / "org=acme" / "asset=plc-01" / "date=2025-01-01"
    partition.mkdir(parents=True)
    legacy = pa.table(
        {
            "signal": pa.array(["temp"] * 3).dictionary_encode(),
            "ts": pa.array(T0_US + np.arange(3) * 1_000_000, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            "value": pa.array([49.71, 20.5, 16777216.0], pa.float32()),
            "quality": pa.array([0, 0, 0], pa.uint8()),
        }
    )
    pq.write_table(legacy, partition / "part-legacy.parquet")
    manifest = {
        "version": 1,
        "files": [
            {
                "name": "part-legacy.parquet",
                "min_us": T0_US,
                "max_us": T0_US + 2_000_000,
                "rows": 3,
                "bytes": (partition / "part-legacy.parquet").stat().st_size,
                "signals": ["temp"],
            }
        ],
    }
    (partition / ts_files.MANIFEST_NAME).write_text(json.dumps(manifest))
    new_ts = T0_US + np.arange(3, 5) * 1_000_000
    store.write("acme", make_batch("plc-01", "temp", new_ts, [16777217.0, 0.1]))
    want = [49.71, 20.5, 16777216.0, 16777217.0, 0.1]
    assert _same(_raw(store, "acme", "plc-01", "temp"), want)
    mean = store.query("acme", "plc-01", ["temp"], interval="1min", agg="min")
    assert float(mean["value"].iloc[0]) == 0.1
    store.compact("acme")  # legacy + new rows merge into one float64 file, values unchanged
    assert _same(_raw(store, "acme", "plc-01", "temp"), want)
    # Rewritten losslessly: all five are 2-decimal numbers, kept as int64 hundredths.
    assert [f.value_type for f in ts_files.read_manifest(partition).files] == ["dec2"]
    store.close()


def test_each_file_gets_an_exact_value_encoding(tmp_path: Path) -> None:
    """Decimals are stored as scaled integers, anything else as float64: both bit-exact."""
    store = TimeSeriesStore(tmp_path)
    rng = np.random.default_rng(7)
    cases = {
        "tag": (np.round(rng.normal(50, 5, 500), 2), "dec2"),
        "counter": (np.arange(500, dtype=np.float64) + 3_000_000_001, "dec0"),
        "raw": (rng.normal(50, 5, 500), "float64"),  # full-precision doubles
        "signs": (np.array([-0.0, 0.0, -1.5, 1e-300] * 125), "float64"),  # -0.0 keeps its sign
    }
    ts = T0_US + np.arange(500, dtype=np.int64) * 1_000_000
    for asset, (values, _) in cases.items():
        store.write("acme", make_batch(asset, "v", ts, values))
    for asset, (values, value_type) in cases.items():
        files = ts_files.read_manifest(tmp_path / "org=acme" / f"asset={asset}" / "date=2025-01-01").files
        assert [f.value_type for f in files] == [value_type]
        got = store.query("acme", asset)["value"].to_numpy()
        assert np.array_equal(got.view(np.int64), values.view(np.int64))  # bit for bit
        agg = store.query("acme", asset, interval="1D", agg="max")
        assert float(agg["value"].iloc[0]) == values.max()
    store.compact("acme")  # rollups and merged files decode the same way
    for asset, (values, _) in cases.items():
        got = store.query("acme", asset)["value"].to_numpy()
        assert np.array_equal(got.view(np.int64), values.view(np.int64))
        assert float(store.query("acme", asset, interval="1min", agg="min")["value"].min()) == values.min()


def test_csv_file_ingest_is_exact(tmp_path: Path) -> None:
    csv = tmp_path / "counters.csv"
    lines = ["time,counter"] + [f"2025-01-01T00:00:{i:02d}Z,{v!r}" for i, v in enumerate(EXACT)]
    csv.write_text("\n".join(lines) + "\n")
    store = TimeSeriesStore(tmp_path / "ts")
    from axhub.ingest.file_mapping import FileMapping

    report = ingest_file(csv, store, "acme", FileMapping(asset="plc-01"))
    assert report.points_written == len(EXACT)
    assert _same(_raw(store, "acme", "plc-01"), EXACT)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    home = tmp_path_factory.mktemp("lossless-api")
    yield make_hub(home, f"sqlite:///{home / 'meta.db'}")


def test_http_readings_api_is_exact(hub: Hub) -> None:
    with hub.client("a_engineer") as c:
        ids = seed_org(c, "-exact")
        readings = [
            {"time": f"2025-01-01T00:00:{i:02d}Z", "signal": "counter", "value": v}
            for i, v in enumerate(EXACT)
        ]
        r = c.post(f"/api/v1/assets/{ids['asset']}/readings", json={"readings": readings})
        assert r.status_code == 201, r.text
        series = c.get(
            f"/api/v1/assets/{ids['asset']}/readings",
            params={"start": "2025-01-01T00:00:00Z", "end": "2025-01-01T00:01:00Z", "signals": "counter"},
        ).json()["series"]
    got = next(s for s in series if s["signal"] == "counter")["values"]
    assert _same(got, EXACT)


@pytest.mark.mqtt
def test_mqtt_through_the_worker_is_exact(tmp_path: Path) -> None:
    if not _broker_up():
        pytest.skip("Mosquitto not reachable on 127.0.0.1:1883; start it (.ci/run does)")
    prefix = f"axtest/{uuid.uuid4().hex[:8]}"
    cfg = MqttConfig.model_validate(
        {
            "port": BROKER[1],
            "client_id": f"w-{uuid.uuid4().hex[:8]}",
            "topics": [{"topic": f"{prefix}/{{asset}}/{{signal}}"}],
        }
    )
    store = TimeSeriesStore(tmp_path / "ts")
    source = MqttSource(cfg)
    worker = IngestWorker(
        source, store.wal_sink(), "acme", DeadLetterStore(tmp_path / "dl"), flush_interval_s=0.05
    )
    source.connect()
    assert source.wait_connected(10)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), kwargs={"connect": False}, daemon=True)
    thread.start()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:6]}")
    pub.connect(*BROKER)
    pub.loop_start()
    try:
        # One reading per message, the JSON number written as Python prints it (shortest form).
        for i, v in enumerate(EXACT):
            payload = json.dumps({"ts": T0_US // 1000 + i * 1000, "value": v}).encode()
            pub.publish(f"{prefix}/plc-01/counter", payload, qos=1).wait_for_publish(10)
        assert wait_for(lambda: store.count("acme") >= len(EXACT), timeout=20)
        assert _same(_raw(store, "acme", "plc-01"), EXACT)
    finally:
        stop.set()
        thread.join(10)
        pub.disconnect()
        pub.loop_stop()
    assert worker.stats.dead_letters == 0
    store.flush_wal("acme")
    assert _same(_raw(store, "acme", "plc-01"), EXACT)
    store.close()
