"""Write a simulated plant to a folder, the way a factory would hand over its data.

* ``<asset>.csv``: one wide CSV per asset; the first column ``ts`` is local plant time with
  its UTC offset (``2025-03-03 06:00:00+09:00``), like a real SCADA/historian export;
* ``<asset>_truth.csv``: hidden state per timestamp (tool wear, health, RUL, ...);
* ``ground_truth.csv``: labelled anomaly intervals (asset, start, end, kind; ends inclusive);
* ``events.csv``: tool changes and other non-anomalous events;
* ``quality_records.csv``: one row per finished part (process parameters and measured quality);
* ``turbine_fleet_train.csv`` / ``turbine_fleet_test.csv``: run-to-failure cycle tables;
* ``assets.json``: site and asset metadata (signals, units, Korean and English descriptions);
* ``manifest.json``: what each file is, its rows and columns, and how it was made.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from axhub.sim.plant import Plant
from axhub.sim.turbine import turbine_fleet

MANIFEST_VERSION = 1
CSV_TIME_FORMAT = "YYYY-MM-DD HH:MM:SS[.ffffff]+HH:MM (local plant time with UTC offset)"


def format_local(ts: pd.Series | pd.DatetimeIndex, tz: str) -> np.ndarray:
    """ISO-like local time strings with offset, vectorised (strftime row by row is too slow)."""
    utc = pd.DatetimeIndex(ts).tz_convert("UTC")
    local_naive = utc.tz_convert(tz).tz_localize(None)
    utc_naive = utc.tz_localize(None)
    offset_s = np.asarray((local_naive - utc_naive).total_seconds(), dtype=np.int64)
    us = np.asarray(local_naive.as_unit("us").asi8, dtype=np.int64)
    unit: Literal["s", "ms", "us"] = "us"
    if np.all(us % 1_000_000 == 0):
        unit = "s"
    elif np.all(us % 1000 == 0):
        unit = "ms"
    text = np.datetime_as_string(us.astype("datetime64[us]").astype(f"datetime64[{unit}]"), unit=unit)
    text = np.char.replace(text, "T", " ")
    suffix = np.empty(len(offset_s), dtype=object)
    for off in np.unique(offset_s):
        sign = "+" if off >= 0 else "-"
        hh, mm = divmod(abs(int(off)) // 60, 60)
        suffix[offset_s == off] = f"{sign}{hh:02d}:{mm:02d}"
    return np.char.add(text, suffix.astype(str))


def _write_wide_csv(path: Path, frame: pd.DataFrame, tz: str) -> None:
    """Fast CSV writer for the large numeric frames (Arrow's writer, shortest float repr)."""
    columns: dict[str, pa.Array] = {"ts": pa.array(format_local(frame["ts"], tz), pa.string())}
    for name in frame.columns:
        if name == "ts":
            continue
        col = frame[name]
        if isinstance(col.dtype, pd.CategoricalDtype):
            col = col.astype(str)
        columns[name] = pa.array(col.to_numpy())
    table = pa.table(columns)
    pacsv.write_csv(table, path, write_options=pacsv.WriteOptions(quoting_style="none"))


def _localise(frame: pd.DataFrame, tz: str, columns: list[str]) -> pd.DataFrame:
    out = frame.copy()
    for c in columns:
        if c in out.columns and len(out):
            out[c] = format_local(out[c], tz)
    return out


def _describe_columns(frame: pd.DataFrame, units: dict[str, str] | None = None) -> list[dict[str, str]]:
    units = units or {}
    return [
        {"name": str(c), "dtype": str(frame[c].dtype), "unit": units.get(str(c), "")} for c in frame.columns
    ]


ProgressFn = Callable[[str], None]


def write_plant(
    plant: Plant,
    out_dir: Path | str,
    *,
    fleet_units: tuple[int, int] = (100, 100),
    progress: ProgressFn | None = None,
) -> dict[str, object]:
    """Write every file of the plant into ``out_dir`` (created); returns the manifest.

    ``fleet_units``: number of (training, test) turbines in the RUL fleet tables.
    ``progress`` is called with each file name once written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tz = plant.spec.timezone
    files: list[dict[str, object]] = []

    def done(
        name: str, kind: str, description: str, frame: pd.DataFrame, units: dict[str, str] | None = None
    ) -> None:
        files.append(
            {
                "file": name,
                "kind": kind,
                "description": description,
                "rows": len(frame),
                "columns": _describe_columns(frame, units),
            }
        )
        if progress is not None:
            progress(name)

    for asset_id, data in plant.assets.items():
        units = {s.name: s.unit for s in data.spec.signals}
        name = f"{asset_id}.csv"
        _write_wide_csv(out / name, data.frame, tz)
        entry_desc = f"{data.spec.name}: one row per timestamp, one column per signal"
        done(name, "timeseries", entry_desc, data.frame, units)
        files[-1]["asset"] = asset_id
        truth_name = f"{asset_id}_truth.csv"
        _write_wide_csv(out / truth_name, data.truth, tz)
        done(
            truth_name, "truth", f"{data.spec.name}: hidden state per timestamp (not sensor data)", data.truth
        )
        files[-1]["asset"] = asset_id

    gt = _localise(plant.ground_truth, tz, ["start", "end"])
    gt.to_csv(out / "ground_truth.csv", index=False)
    done(
        "ground_truth.csv",
        "labels",
        "labelled anomaly intervals; start and end inclusive",
        plant.ground_truth,
    )

    ev = _localise(plant.events, tz, ["ts"])
    ev.to_csv(out / "events.csv", index=False)
    done("events.csv", "events", "tool changes and other events that are not anomalies", plant.events)

    quality = _localise(plant.quality, tz, ["start", "end"])
    quality.to_csv(out / "quality_records.csv", index=False)
    done(
        "quality_records.csv",
        "records",
        "one row per finished part: process parameters, measured quality, pass/fail; "
        "true_* columns are hidden state",
        plant.quality,
    )

    train, test = turbine_fleet(fleet_units[0], fleet_units[1], plant.seed)
    train.to_csv(out / "turbine_fleet_train.csv", index=False)
    done(
        "turbine_fleet_train.csv", "cycles", "run-to-failure turbine fleet, one row per unit and cycle", train
    )
    test.to_csv(out / "turbine_fleet_test.csv", index=False)
    done(
        "turbine_fleet_test.csv",
        "cycles",
        "test fleet cut off before failure; rul holds the true remaining cycles",
        test,
    )

    meta = plant.metadata()
    (out / "assets.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")
    if progress is not None:
        progress("assets.json")

    manifest: dict[str, object] = {
        "version": MANIFEST_VERSION,
        "generator": "axhub.sim",
        "seed": plant.seed,
        "interval_s": plant.interval_s,
        "start_utc": plant.start.isoformat(),
        "end_utc": plant.end.isoformat(),
        "normal_period_end_utc": plant.normal_end.isoformat(),
        "timezone": tz,
        "time_column": "ts",
        "time_format": CSV_TIME_FORMAT,
        "site": plant.spec.site,
        "site_ko": plant.spec.site_ko,
        "points": plant.n_points,
        "anomalies": len(plant.ground_truth),
        "files": [
            *files,
            {"file": "assets.json", "kind": "metadata", "description": "site, assets and signals"},
        ],
    }
    (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    return manifest


def read_asset_csv(path: Path | str) -> pd.DataFrame:
    """Read an asset CSV written by ``write_plant`` back, with ``ts`` in UTC."""
    frame = pd.read_csv(path)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True, format="ISO8601").dt.as_unit("us")
    return frame
