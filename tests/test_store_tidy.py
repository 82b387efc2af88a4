"""After a file upload the store merges only that upload's days, in bounded merges (issue 11):
``compact`` read each partition whole and rewrote every day of the asset at every upload."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from axhub.core.readings import make_batch
from axhub.core.settings import Settings
from axhub.serve.files import ingest_onto_asset
from axhub.store.db import Database
from axhub.store.platform import ensure_org
from axhub.store.timeseries import TimeSeriesStore
from axhub.store.ts_files import read_manifest

DAY_US = 86_400_000_000
DAY_1 = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp() * 1e6)
DAY_2 = DAY_1 + DAY_US


def _write(store: TimeSeriesStore, start_us: int, rows: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ts = start_us + np.arange(rows, dtype=np.int64) * 1_000_000
    store.write("acme", make_batch("press-1", "온도", ts, rng.normal(50, 5, rows)))


def _files(store: TimeSeriesStore, day: str) -> list[str]:
    return [f.name for f in read_manifest(store.root / "org=acme" / "asset=press-1" / f"date={day}").files]


def test_tidy_merges_the_given_days_only_and_keeps_every_value(tmp_path: Path) -> None:
    store = TimeSeriesStore(tmp_path / "ts")
    for k in range(4):
        _write(store, DAY_1 + k * 1000 * 1_000_000, 1000, seed=k)
        _write(store, DAY_2 + k * 1000 * 1_000_000, 1000, seed=10 + k)
    before = store.query("acme", "press-1")
    day_2_files = _files(store, "2026-03-02")
    assert len(_files(store, "2026-03-01")) == 4 and len(day_2_files) == 4

    merges = store.tidy("acme", "press-1", pd.Timestamp(DAY_1, unit="us", tz="UTC"), DAY_1 + 3_999_000_000)

    assert merges >= 1
    assert len(_files(store, "2026-03-01")) == 1
    assert _files(store, "2026-03-02") == day_2_files  # another day is not rewritten
    after = store.query("acme", "press-1")
    pd.testing.assert_frame_equal(before.reset_index(drop=True), after.reset_index(drop=True))


def test_tidy_never_rewrites_a_final_file_nor_reads_more_than_the_cap(tmp_path: Path) -> None:
    store = TimeSeriesStore(tmp_path / "ts", merge_max_rows=1000)
    _write(store, DAY_1, 600, seed=0)  # a stream's merged file: at least half the cap is final
    final = _files(store, "2026-03-01")[0]
    for k in range(5):  # then an upload in small blocks: 5 x 300 rows
        _write(store, DAY_1 + (1000 + k * 300) * 1_000_000, 300, seed=1 + k)

    store.tidy("acme", "press-1", DAY_1, DAY_1 + 3000 * 1_000_000)

    manifest = read_manifest(store.root / "org=acme" / "asset=press-1" / "date=2026-03-01")
    assert final in [f.name for f in manifest.files]
    assert all(f.rows <= 1000 for f in manifest.files)  # no merge larger than merge_max_rows
    assert sum(f.rows for f in manifest.files) == 2100
    assert len(manifest.files) < 6


def test_an_upload_leaves_the_machines_other_days_alone(tmp_path: Path, settings: Settings) -> None:
    db = Database(f"sqlite:///{tmp_path / 'meta.db'}")
    db.migrate()
    with db.session() as session:
        org_id = ensure_org(session, "Acme", "acme").id
    store = TimeSeriesStore(settings.timeseries_root)
    for k in range(3):  # a stream's day before the upload, in several files
        ts = DAY_1 + np.arange(100, dtype=np.int64) * 1_000_000 + k * 100_000_000
        store.write(org_id, make_batch("press-1", "압력", ts, np.full(100, float(k))))
    stream_day = store.root / f"org={org_id}" / "asset=press-1" / "date=2026-03-01"
    stream_files = [f.name for f in read_manifest(stream_day).files]
    csv = tmp_path / "press.csv"
    csv.write_text("time,온도\n2026-03-02 09:00:00,20.5\n2026-03-02 09:00:01,20.7\n", encoding="utf-8")

    result = ingest_onto_asset(
        db, settings, org_id, csv, asset="press-1", create_missing_asset=True, score=False
    )

    assert result.report.points_written == 2
    assert [f.name for f in read_manifest(stream_day).files] == stream_files
    assert store.count(org_id, "press-1") == 302
