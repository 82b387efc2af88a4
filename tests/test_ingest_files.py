"""File ingestion: layouts, delimiters, Parquet, time zones, rejects, bad files, hypothesis CSVs, SIGKILL."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from axhub.core.errors import InputValidationError
from axhub.core.readings import make_batch
from axhub.ingest.file_mapping import FileMapping
from axhub.ingest.files import SignalSeen, ingest_file, sniff_delimiter
from axhub.store.timeseries import TimeSeriesStore


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _rejects(path: Path | None) -> list[dict[str, str]]:
    assert path is not None and path.is_file()
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_wide_csv_with_mapping_units_and_ignore(tmp_path: Path) -> None:
    src = _write(
        tmp_path / "cnc.csv",
        "time,Spindle Load,temp,operator\n"
        "2024-03-01 08:00:00,41.5,20.25,kim\n"
        "2024-03-01 08:00:01,42,20.5,kim\n"
        "2024-03-01 08:00:02,,20.75,lee\n",
    )
    mapping = FileMapping.model_validate(
        {
            "asset": "cnc-01",
            "columns": {"Spindle Load": {"signal": "spindle_load", "unit": "%"}},
            "ignore": ["operator"],
        }
    )
    store = TimeSeriesStore(tmp_path / "ts")
    report = ingest_file(src, store, "acme", mapping)
    assert (report.rows_read, report.points_written, report.rows_rejected, report.empty_cells) == (3, 5, 0, 1)
    assert report.rejects_path is None
    assert report.signals == [SignalSeen("cnc-01", "spindle_load", "%"), SignalSeen("cnc-01", "temp", None)]
    wide = store.query_wide("acme", "cnc-01")
    assert wide["spindle_load"].tolist()[:2] == [41.5, 42.0] and np.isnan(wide["spindle_load"].iloc[2])
    assert wide["temp"].tolist() == [20.25, 20.5, 20.75]
    assert wide["ts"].iloc[0] == pd.Timestamp("2024-03-01T08:00:00Z")


def test_long_csv_semicolon_decimal_comma_assets_quality(tmp_path: Path) -> None:
    src = _write(
        tmp_path / "long.csv",
        "timestamp;asset;tag;value;quality;unit\n"
        "2024-03-01T08:00:00Z;pump-01;flow;12,5;good;m3/h\n"
        "2024-03-01T08:00:00Z;pump-02;flow;7,25;2;m3/h\n"
        "2024-03-01T08:00:01Z;pump-01;flow;12,75;0;m3/h\n"
        "2024-03-01T08:00:01Z;pump-01;pressure;3,5;uncertain;bar\n",
    )
    assert sniff_delimiter(src.read_text()) == ";"
    mapping = FileMapping(decimal=",", signal_column="tag")
    store = TimeSeriesStore(tmp_path / "ts")
    report = ingest_file(src, store, "acme", mapping)
    assert report.points_written == 4 and report.rows_rejected == 0
    assert set(report.signals) == {
        SignalSeen("pump-01", "flow", "m3/h"),
        SignalSeen("pump-01", "pressure", "bar"),
        SignalSeen("pump-02", "flow", "m3/h"),
    }
    got = store.query("acme", "pump-01")
    assert got[["signal", "value", "quality"]].values.tolist() == [
        ["flow", 12.5, 0],
        ["flow", 12.75, 0],
        ["pressure", 3.5, 1],
    ]
    assert store.query("acme", "pump-02")["quality"].tolist() == [2]


def test_parquet_wide_and_long(tmp_path: Path) -> None:
    ts = pd.date_range("2024-03-01 08:00", periods=100, freq="s")  # naive: local time
    wide = pd.DataFrame({"ts": ts, "a": np.arange(100) / 4, "b": np.arange(100) * 2})
    wide.to_parquet(tmp_path / "wide.parquet")
    long = pd.DataFrame(
        {"time": ts.tz_localize("Asia/Seoul"), "signal": "c", "value": np.arange(100, dtype="float32")}
    )
    long.to_parquet(tmp_path / "long.parquet")
    store = TimeSeriesStore(tmp_path / "ts")
    mapping = FileMapping(asset="m1", timezone="Asia/Seoul")
    r1 = ingest_file(tmp_path / "wide.parquet", store, "acme", mapping, block_bytes=8192)
    r2 = ingest_file(tmp_path / "long.parquet", store, "acme", mapping)
    assert (r1.points_written, r2.points_written) == (200, 100)
    got = store.query_wide("acme", "m1")
    assert got["ts"].iloc[0] == pd.Timestamp("2024-02-29T23:00:00Z")  # 08:00 KST = 23:00 UTC
    assert got["a"].tolist() == list(np.arange(100) / 4) and got["c"].tolist() == list(range(100))


def test_local_time_to_utc_and_explicit_offsets(tmp_path: Path) -> None:
    src = _write(
        tmp_path / "tz.csv",
        "time,x\n"
        "2024-03-01 09:00:00,1\n"  # local Seoul -> 00:00Z
        "2024-03-01T09:00:01+09:00,2\n"  # explicit offset kept -> 00:00:01Z
        "2024-03-01T00:00:02Z,3\n"
        "2024-03-01 09:00:03.500,4\n",
    )
    store = TimeSeriesStore(tmp_path / "ts")
    report = ingest_file(src, store, "acme", FileMapping(asset="m1", timezone="Asia/Seoul"))
    assert report.points_written == 4
    got = store.query("acme", "m1")
    assert got["ts"].tolist() == [
        pd.Timestamp("2024-03-01T00:00:00Z"),
        pd.Timestamp("2024-03-01T00:00:01Z"),
        pd.Timestamp("2024-03-01T00:00:02Z"),
        pd.Timestamp("2024-03-01T00:00:03.5Z"),
    ]
    # A custom format and epoch seconds.
    _write(tmp_path / "fmt.csv", "Zeit;v\n01.03.2024 10:00:00;1\n")
    _write(tmp_path / "epoch.csv", "ts,v\n1709280000,5\n")
    ingest_file(
        tmp_path / "fmt.csv",
        store,
        "acme",
        FileMapping(asset="m2", time_format="%d.%m.%Y %H:%M:%S", timezone="Europe/Berlin"),
    )
    ingest_file(tmp_path / "epoch.csv", store, "acme", FileMapping(asset="m3"))
    assert store.query("acme", "m2")["ts"].tolist() == [pd.Timestamp("2024-03-01T09:00:00Z")]
    assert store.query("acme", "m3")["ts"].tolist() == [pd.Timestamp("2024-03-01T08:00:00Z")]


def test_bad_rows_rejected_with_reasons_good_rows_land(tmp_path: Path) -> None:
    src = _write(
        tmp_path / "bad.csv",
        "time,a,b\n"
        "2024-03-01 00:00:00,1,2\n"  # line 2
        "2024-03-01 00:00:01,x1,3\n"  # line 3: 'a' not a number, 'b' lands
        "yesterday,4,5\n"  # line 4: bad time -> whole row rejected
        "2024-03-01 00:00:03,6\n"  # line 5: wrong field count
        "\n"  # line 6: blank, ignored
        "2024-03-01 00:00:04,7,8\n",  # line 7
    )
    store = TimeSeriesStore(tmp_path / "ts")
    rejects_path = tmp_path / "rejects.csv"
    report = ingest_file(src, store, "acme", FileMapping(asset="m1"), rejects_path=rejects_path)
    assert report.points_written == 5 and report.rows_read == 5 and report.rows_rejected == 3
    assert report.values_rejected == 1 and report.rejects_path == rejects_path
    rows = _rejects(rejects_path)
    by_line = {r["row"]: r for r in rows}
    assert set(by_line) == {"3", "4", "5"}
    assert by_line["3"]["field"] == "a" and by_line["3"]["raw"] == "x1" and "number" in by_line["3"]["reason"]
    assert by_line["4"]["field"] == "time" and by_line["4"]["raw"] == "yesterday"
    assert "fields" in by_line["5"]["reason"] and all(r["file"] == str(src) for r in rows)
    assert "row 3" in str(report.first_rejects[0]) or any("row 3" in str(p) for p in report.first_rejects)
    wide = store.query_wide("acme", "m1")
    assert wide["b"].tolist() == [2.0, 3.0, 8.0] and wide["a"].dropna().tolist() == [1.0, 7.0]


def test_missing_time_column_fails_whole_file_and_stores_nothing(tmp_path: Path) -> None:
    src = _write(tmp_path / "f.csv", "when,a\n2024-03-01 00:00:00,1\n")
    store = TimeSeriesStore(tmp_path / "ts")
    with pytest.raises(InputValidationError) as err:
        ingest_file(src, store, "acme", FileMapping(asset="m1", time_column="time"))
    assert "'time'" in str(err.value) and "f.csv" in str(err.value) and "when, a" in str(err.value)
    assert err.value.whole_file
    # A text column among the signals and unreadable times also fail before any write.
    _write(tmp_path / "g.csv", "time,a,who\n2024-03-01 00:00:00,1,kim\n2024-03-01 00:00:01,2,lee\n")
    with pytest.raises(InputValidationError, match="who"):
        ingest_file(tmp_path / "g.csv", store, "acme", FileMapping(asset="m1"))
    _write(tmp_path / "h.csv", "time,a\n03/01/24 1pm,1\n03/01/24 2pm,2\n")
    with pytest.raises(InputValidationError, match="time format"):
        ingest_file(tmp_path / "h.csv", store, "acme", FileMapping(asset="m1"))
    with pytest.raises(InputValidationError, match="machine"):
        ingest_file(src, store, "acme", FileMapping(time_column="when"))
    assert store.count("acme") == 0


def test_mapping_file_yaml_and_errors(tmp_path: Path) -> None:
    path = _write(tmp_path / "m.yaml", "asset: cnc-01\ntimezone: Asia/Seoul\ndelimiter: tab\n")
    mapping = FileMapping.load(path).with_overrides(asset="cnc-02", time_column=None)
    assert (mapping.asset, mapping.timezone, mapping.delimiter) == ("cnc-02", "Asia/Seoul", "\t")
    with pytest.raises(Exception, match="timezone"):
        FileMapping.load(_write(tmp_path / "bad.yaml", "timezone: Mars/Olympus\n"))
    with pytest.raises(Exception, match="asset"):
        FileMapping(asset="../x")


_DELIMS = [",", ";", "\t", "|"]


@st.composite
def _csv_case(draw: st.DrawFn) -> tuple[str, list[list[str]], set[tuple[int, str]], set[int]]:
    delim = draw(st.sampled_from(_DELIMS))
    n_sig = draw(st.integers(1, 4))
    n_rows = draw(st.integers(1, 30))
    rows: list[list[str]] = []
    bad_cells: set[tuple[int, str]] = set()
    bad_times: set[int] = set()
    for i in range(n_rows):
        time_cell = f"2024-03-01 00:{i // 60:02d}:{i % 60:02d}"
        if i > 0 and draw(st.integers(0, 9)) == 0:
            time_cell = draw(st.sampled_from(["not-a-time", "2024-13-01 00:00:00", "12:00"]))
            bad_times.add(i)
        cells = [time_cell]
        for j in range(n_sig):
            kind = draw(st.integers(0, 9)) if i > 0 else 9
            if kind == 0:
                cells.append(draw(st.sampled_from(["abc", "1.2.3", "--", "12x"])))
                if i not in bad_times:
                    bad_cells.add((i, f"s{j}"))
            elif kind == 1:
                cells.append("")
            else:
                cells.append(repr(round(draw(st.floats(-1e4, 1e4, allow_nan=False)), 3)))
        rows.append(cells)
    return delim, rows, bad_cells, bad_times


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=_csv_case())
def test_hypothesis_csvs_land_exactly_good_rows(case: tuple[str, list[list[str]], set, set]) -> None:
    delim, rows, bad_cells, bad_times = case
    n_sig = len(rows[0]) - 1
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        store = TimeSeriesStore(tmp_path / "ts")
        # Data stored earlier (same asset, another day) must survive untouched.
        earlier = make_batch("m1", "s0", np.arange(50, dtype=np.int64) * 1_000_000, np.arange(50.0))
        store.write("acme", earlier)
        src = tmp_path / "in.csv"
        with open(src, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, delimiter=delim)
            writer.writerow(["time", *[f"s{j}" for j in range(n_sig)]])
            writer.writerows(rows)
        report = ingest_file(src, store, "acme", FileMapping(asset="m1"), rejects_path=tmp_path / "rej.csv")

        expected: dict[tuple[pd.Timestamp, str], float] = {}
        for i, cells in enumerate(rows):
            if i in bad_times:
                continue
            for j, cell in enumerate(cells[1:]):
                if cell and (i, f"s{j}") not in bad_cells:
                    expected[(pd.Timestamp(cells[0], tz="UTC"), f"s{j}")] = float(cell)
        got = store.query("acme", "m1", start="2024-01-01")
        stored = {(r.ts, r.signal): r.value for r in got.itertuples()}
        assert stored.keys() == expected.keys()
        for key, value in expected.items():
            assert stored[key] == pytest.approx(value, rel=1e-6, abs=1e-6)
        assert report.points_written == len(expected)

        rejected = _rejects(report.rejects_path) if report.rejects_path else []
        got_cells = {(int(r["row"]) - 2, r["field"]) for r in rejected if r["field"] != "time"}
        got_times = {int(r["row"]) - 2 for r in rejected if r["field"] == "time"}
        assert got_cells == bad_cells and got_times == bad_times
        assert store.count("acme") == 50 + len(expected)
        old = store.query("acme", "m1", end="2000-01-01")
        assert old["value"].tolist() == list(np.arange(50.0))


def test_sigkill_during_cli_ingest_then_rerun_is_exact(tmp_path: Path) -> None:
    n_rows, n_sig = 8_000, 5
    ts = pd.date_range("2024-03-01", periods=n_rows, freq="s").strftime("%Y-%m-%d %H:%M:%S")
    frame = pd.DataFrame(
        {"time": ts, **{f"s{j}": np.round(np.arange(n_rows) * 0.01 + j, 2) for j in range(n_sig)}}
    )
    src = tmp_path / "big.csv"
    frame.to_csv(src, index=False)
    env = {**os.environ, "AXHUB_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "axhub.cli.main",
        "ingest",
        str(src),
        "--asset",
        "m1",
        "--block-bytes",
        "4096",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    root = tmp_path / "home" / "data" / "timeseries"
    deadline = time.monotonic() + 60
    while not list(root.glob("org=*/asset=m1/date=*/_manifest.json")):
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert time.monotonic() < deadline, "ingest never committed a block"
        time.sleep(0.01)
    time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    org = next(root.glob("org=*")).name.removeprefix("org=")
    store = TimeSeriesStore(root)
    partial = store.count(org)
    assert 0 < partial < n_rows * n_sig
    assert len(store.query(org, "m1")) == partial

    rerun = subprocess.run(cmd, env=env, capture_output=True)
    assert rerun.returncode == 0, rerun.stderr.decode()
    assert store.count(org) == n_rows * n_sig
    got = store.query(org, "m1")
    assert len(got) == n_rows * n_sig and not got.duplicated(["ts", "signal"]).any()
    assert b"already stored" in rerun.stdout


def test_parquet_roundtrip_of_bad_strings(tmp_path: Path) -> None:
    table = pa.table({"time": ["2024-03-01 00:00:00", "2024-03-01 00:00:01"], "v": ["1.5", "oops"]})
    pq.write_table(table, tmp_path / "s.parquet")
    store = TimeSeriesStore(tmp_path / "ts")
    report = ingest_file(tmp_path / "s.parquet", store, "acme", FileMapping(asset="m1"))
    assert report.points_written == 1 and report.values_rejected == 1
    assert _rejects(report.rejects_path)[0]["row"] == "2"
