"""Integers beyond ±2^53 come back identical through the HTTP readings API (the test client and
a real uvicorn server with the SDK), file ingest (CSV, decimal-comma CSV, Parquet, Excel) and
``axhub query`` (screen and CSV): float64 alone would round them (9007199254740993 -> ...992).
The store side is in test_exact_ints.py; the connectors against independent peers in
test_peers_exact_ints.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from _api_helpers import Hub, make_hub, seed_org
from _live import live_server
from axhub.client import AxHubClient
from axhub.core.messages import message
from axhub.core.readings import make_batch, with_exact_ints
from axhub.ingest.file_mapping import FileMapping
from axhub.ingest.files import ingest_file
from axhub.store.timeseries import TimeSeriesStore

P53 = 2**53 + 1  # 9007199254740993, the first integer float64 cannot hold
# Big integers of both signs at the int64 edges, beside ordinary readings.
SENT: list[int | float] = [P53, -(2**63 - 1), 2**63 - 1, -(2**63), -P53, 1.5, 7, 0.1]
WINDOW = {"start": "2025-01-01T00:00:00Z", "end": "2025-01-01T00:01:00Z"}


def _readings(values: list[Any], signal: str = "counter") -> list[dict[str, Any]]:
    return [
        {"time": f"2025-01-01T00:00:{i:02d}Z", "signal": signal, "value": v} for i, v in enumerate(values)
    ]


def _same(got: list[Any], want: list[Any]) -> bool:
    """Equal value by value, and every integer beyond 2^53 came back as that integer (not a float)."""
    return len(got) == len(want) and all(
        g == w and (type(g) is int if type(w) is int and abs(w) > 2**53 else True)
        for g, w in zip(got, want, strict=True)
    )


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    home = tmp_path_factory.mktemp("exact-api")
    yield make_hub(home, f"sqlite:///{home / 'meta.db'}")


def test_http_api_stores_and_returns_big_integers_identically(hub: Hub) -> None:
    with hub.client("a_engineer") as c:
        ids = seed_org(c, "-bigint")
        url = f"/api/v1/assets/{ids['asset']}/readings"
        r = c.post(url, json={"readings": _readings(SENT)})
        assert r.status_code == 201 and r.json()["written"] == len(SENT), r.text
        r = c.get(url, params={**WINDOW, "signals": "counter"})
        assert r.status_code == 200, r.text
        # The JSON text itself carries the integers (a client's float parser cannot help here).
        assert "9007199254740993" in r.text and "-9223372036854775807" in r.text
        got = next(s for s in json.loads(r.text)["series"] if s["signal"] == "counter")["values"]
        assert _same(got, SENT), got
        # Buckets are float64 aggregates, as before.
        r = c.get(url, params={**WINDOW, "signals": "counter", "interval": "1h", "agg": "max"})
        assert r.status_code == 200 and r.json()["series"][0]["values"] == [float(2**63 - 1)]


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_http_api_refuses_integers_beyond_int64_naming_the_field(hub: Hub, lang: str) -> None:
    with hub.client("a_engineer") as c:
        ids = seed_org(c, f"-int64-{lang}")
        url = f"/api/v1/assets/{ids['asset']}/readings"
        body = {"readings": _readings([1.5, 2**63, -(2**63) - 1, 10**30])}
        r = c.post(url, json=body, headers={"Accept-Language": lang})
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        details = error["details"]
        assert [(d["index"], d["field"], d["code"]) for d in details] == [
            (1, "value", "value_int_range"),
            (2, "value", "value_int_range"),
            (3, "value", "value_int_range"),
        ]
        message = json.dumps(error, ensure_ascii=False)
        assert "9223372036854775808" in message
        assert ("정수" in message and "64비트" in message) if lang == "ko" else "64-bit" in message
        assert c.get(url, params=WINDOW).json()["series"][0]["values"] == []  # nothing stored


def test_sdk_over_a_real_server_round_trips_big_integers(tmp_path: Path) -> None:
    with (
        live_server(tmp_path / "home", f"sqlite:///{tmp_path / 'meta.db'}") as live,
        AxHubClient(live.url, api_key=live.keys["a_engineer"]) as sdk,
    ):
        site = sdk.post("/sites", {"name": "Plant"})
        asset = sdk.post("/assets", {"site_id": site["id"], "name": "Press 1", "kind": "other"})
        assert sdk.post(f"/assets/{asset['id']}/readings", {"readings": _readings(SENT)})["written"] == 8
        series = sdk.readings(asset["id"], signals="counter", **WINDOW)["series"]
    assert _same(series[0]["values"], SENT), series


def _counters(store: TimeSeriesStore, asset: str = "plc-01", signal: str = "counter") -> list[int | float]:
    frame = store.query("acme", asset, [signal], exact=True)
    return [v if pd.isna(i) else int(i) for v, i in zip(frame["value"], frame["value_int"], strict=True)]


BIG = [P53, 2**63 - 1, -(2**63), -P53, 12, 2**53]


def test_csv_integer_column_is_stored_exactly_wide_and_long(tmp_path: Path) -> None:
    wide = tmp_path / "wide.csv"
    wide.write_text(
        "time,counter,temp\n"
        + "".join(f"2025-01-01T00:00:{i:02d}Z,{v},{20 + i / 4}\n" for i, v in enumerate(BIG))
    )
    store = TimeSeriesStore(tmp_path / "ts")
    report = ingest_file(wide, store, "acme", FileMapping(asset="plc-01"))
    assert report.points_written == 2 * len(BIG) and report.rows_rejected == 0
    assert _counters(store) == BIG
    assert _counters(store, signal="temp") == [20 + i / 4 for i in range(len(BIG))]
    long = tmp_path / "long.csv"
    long.write_text(
        "time,tag,value\n" + "".join(f"2025-01-02T00:00:{i:02d}Z,count2,{v}\n" for i, v in enumerate(BIG))
    )
    report = ingest_file(long, store, "acme", FileMapping(asset="plc-01", signal_column="tag"))
    assert report.points_written == len(BIG) and report.rows_rejected == 0
    assert _counters(store, signal="count2") == BIG
    store.compact("acme")
    assert _counters(store) == BIG and _counters(store, signal="count2") == BIG


def test_decimal_comma_and_thousands_separators_still_parse_and_keep_big_integers(tmp_path: Path) -> None:
    src = tmp_path / "eu.csv"
    src.write_text(
        "time;counter;flow\n"
        "2025-01-01T00:00:00Z;9.007.199.254.740.993;1.234,5\n"
        "2025-01-01T00:00:01Z;-9.223.372.036.854.775.808;12,25\n"
        "2025-01-01T00:00:02Z;+9007199254740995;0,5\n"
    )
    store = TimeSeriesStore(tmp_path / "ts")
    mapping = FileMapping(asset="plc-01", decimal=",", thousands=".")
    report = ingest_file(src, store, "acme", mapping)
    assert report.points_written == 6 and report.rows_rejected == 0
    assert _counters(store) == [P53, -(2**63), 2**53 + 3]
    assert _counters(store, signal="flow") == [1234.5, 12.25, 0.5]


def test_integers_beyond_int64_in_a_file_are_refused_not_rounded(tmp_path: Path) -> None:
    src = tmp_path / "huge.csv"
    src.write_text(
        "time,counter\n"
        "2025-01-01T00:00:00Z,18446744073709551615\n"
        "2025-01-01T00:00:01Z,9007199254740993\n"
        "2025-01-01T00:00:02Z,1e20\n"  # written as a float: stored as that float
    )
    store = TimeSeriesStore(tmp_path / "ts")
    report = ingest_file(src, store, "acme", FileMapping(asset="plc-01"), rejects_path=tmp_path / "r.csv")
    assert report.points_written == 2 and report.values_rejected == 1
    [first] = report.first_rejects
    assert first.code == "value_int_range" and first.row == 2 and first.field == "counter"
    assert "18446744073709551615" in first.problem
    korean, _hint = message(first.code, first.params, "ko")
    assert "18446744073709551615" in korean and "64비트" in korean
    assert _counters(store) == [P53, 1e20]


def test_parquet_int64_and_uint64_columns_are_exact(tmp_path: Path) -> None:
    times = pa.array(pd.date_range("2025-01-01", periods=len(BIG), freq="s", tz="UTC"))
    src = tmp_path / "counters.parquet"
    pq.write_table(
        pa.table(
            {
                "time": times,
                "counter": pa.array(BIG, pa.int64()),
                "total": pa.array([2**64 - 1, P53, 0, 1, 2, 3], pa.uint64()),
            }
        ),
        src,
    )
    store = TimeSeriesStore(tmp_path / "ts")
    report = ingest_file(src, store, "acme", FileMapping(asset="plc-01"), rejects_path=tmp_path / "r.csv")
    assert report.values_rejected == 1 and report.first_rejects[0].code == "value_int_range"
    assert report.points_written == 2 * len(BIG) - 1
    assert _counters(store) == BIG
    assert _counters(store, signal="total") == [P53, 0, 1, 2, 3]


def test_excel_integer_cells_are_exact(tmp_path: Path) -> None:
    import zipfile
    from datetime import datetime

    from openpyxl import Workbook

    # Excel keeps a long counter as a text cell; a number cell holds a double, but files from
    # other tools may hold the exact digits (openpyxl reads those as ints). openpyxl writes
    # numbers through float, so the number cells are written as placeholders and patched.
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["time", "counter", "mixed", "count3"])
    for i, v in enumerate(BIG):
        sheet.append([datetime(2025, 1, 1, 0, 0, i), str(v), 1000 + i if i % 2 else i + 0.5, 2000 + i])
    plain = tmp_path / "plain.xlsx"
    book.save(plain)
    src = tmp_path / "counters.xlsx"
    with zipfile.ZipFile(plain) as zin, zipfile.ZipFile(src, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                for i, v in enumerate(BIG):
                    data = data.replace(f"<v>{2000 + i}</v>".encode(), f"<v>{v}</v>".encode())
                    if i % 2:
                        data = data.replace(f"<v>{1000 + i}</v>".encode(), f"<v>{v}</v>".encode())
            zout.writestr(item, data)
    store = TimeSeriesStore(tmp_path / "ts")
    report = ingest_file(src, store, "acme", FileMapping(asset="plc-01", timezone="UTC"))
    assert report.rows_rejected == 0 and report.points_written == 3 * len(BIG)
    assert _counters(store) == BIG and _counters(store, signal="count3") == BIG
    assert _counters(store, signal="mixed") == [v if i % 2 else i + 0.5 for i, v in enumerate(BIG)]


def test_axhub_query_shows_and_writes_big_integers_exactly(tmp_path: Path, monkeypatch: Any) -> None:
    from typer.testing import CliRunner

    from axhub.cli.main import app as cli_app
    from axhub.core.settings import get_settings

    home = tmp_path / "home"
    monkeypatch.setenv("AXHUB_HOME", str(home))
    get_settings.cache_clear()
    try:
        store = TimeSeriesStore(get_settings().timeseries_root)
        t0 = 1_735_689_600_000_000
        values = [P53, -(2**63), 1.5]
        batch = make_batch(
            "plc-01", "counter", [t0, t0 + 1_000_000, t0 + 2_000_000], [float(v) for v in values]
        )
        store.write("acme", with_exact_ints(batch, {0: P53, 1: -(2**63)}))
        store.close()
        window = [
            "--start",
            "2025-01-01T00:00:00+00:00",
            "--end",
            "2025-01-02T00:00:00+00:00",
            "--org",
            "acme",
        ]
        shown = CliRunner().invoke(cli_app, ["query", "plc-01", *window])
        assert shown.exit_code == 0, shown.output
        assert "9007199254740993" in shown.output and "-9223372036854775808" in shown.output
        out = tmp_path / "q.csv"
        written = CliRunner().invoke(cli_app, ["query", "plc-01", *window, "--csv", str(out)])
        assert written.exit_code == 0, written.output
        assert pd.read_csv(out, dtype={"value": str})["value"].tolist() == [
            "9007199254740993",
            "-9223372036854775808",
            "1.5",
        ]
        wide = tmp_path / "w.csv"
        written = CliRunner().invoke(cli_app, ["query", "plc-01", *window, "--wide", "--csv", str(wide)])
        assert written.exit_code == 0, written.output
        assert pd.read_csv(wide, dtype={"counter": str})["counter"].tolist() == [
            "9007199254740993",
            "-9223372036854775808",
            "1.5",
        ]
    finally:
        get_settings.cache_clear()


def test_edge_buffer_and_sync_keep_big_integers(tmp_path: Path) -> None:
    """An agent's Int64 counter (OPC UA, Modbus) goes through its SQLite buffer and the hub's
    sync route exactly; a buffer made before the value_int column is upgraded in place."""
    import sqlite3

    from axhub.edge.buffer import Buffer
    from axhub.fleet import service
    from axhub.store.platform import org_by_slug
    from axhub.store.scoped import OrgScope

    old = tmp_path / "agent" / "buffer.db"
    old.parent.mkdir()
    with sqlite3.connect(old) as db:  # the table as agents created it before
        db.execute(
            "CREATE TABLE readings (id INTEGER PRIMARY KEY, series INTEGER NOT NULL, "
            "ts INTEGER NOT NULL, value REAL, quality INTEGER NOT NULL)"
        )
    buffer = Buffer(old)
    t0 = 1_735_689_600_000_000
    values: list[int | float] = [P53, -(2**63), 1.5]
    batch = make_batch("press-1", "counter", [t0, t0 + 1, t0 + 2], [float(v) for v in values])
    buffer.add_readings(with_exact_ints(batch, {0: P53, 1: -(2**63)}))
    buffer.add_readings(make_batch("press-1", "temp", [t0], [20.5]))  # a batch without the column
    out = buffer.next_batch()
    assert out is not None and out.rows == 4

    hub = make_hub(tmp_path / "hub", f"sqlite:///{tmp_path / 'meta.db'}", secure_cookies=False)
    with hub.db.session() as s:
        org_id = org_by_slug(s, "acme").id
        token, _row = service.issue_token(OrgScope(s, org_id), "press-gw", created_by=None)
    with hub.db.session() as s:
        credential = service.enrol(s, token, None, "test")["credential"]
    headers = {
        "Authorization": f"Device {credential}",
        "X-Batch-Id": out.batch_id,
        "X-Batch-Kind": out.kind,
        "Content-Type": out.media_type,
    }
    with hub.client() as c:
        r = c.post("/device/v1/sync", content=out.payload, headers=headers)
    assert r.status_code == 200 and r.json()["rows"] == 4, r.text
    buffer.ack(out)
    buffer.close()
    store = TimeSeriesStore(hub.settings.timeseries_root)
    try:
        frame = store.query(org_id, "press-1", ["counter"], exact=True)
        got = [v if pd.isna(i) else int(i) for v, i in zip(frame["value"], frame["value_int"], strict=True)]
        assert got == values
    finally:
        store.close()
