"""Turn a Dataset row into training frames.

A dataset's ``spec`` says where its rows come from:

* ``{"source": "upload", "blob_sha256": ..., "format": "csv" | "parquet"}`` — a table uploaded
  through the API (kept in the blob store, so the dataset stays immutable);
* ``{"source": "readings", "asset": slug, "signals": [...], "start": iso, "end": iso,
  "interval": "1s", "agg": "mean"}`` — a window of the time-series store, one column per signal;
* ``{"source": "example", "estimator": "family/name", "seed": 0}`` — the estimator's own small
  synthetic train/test data (demos and smoke tests of a worker pool).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from axhub.core.errors import InputProblem, InputValidationError
from axhub.core.settings import Settings
from axhub.store.blobs import BlobStore
from axhub.store.models import DatasetRow

SOURCES = ("upload", "readings", "example")


@dataclass
class Frames:
    train: pd.DataFrame
    # Held-out rows for metrics, when the source defines them (else split by the job).
    test: pd.DataFrame | None = None


def check_dataset_spec(spec: dict[str, Any]) -> None:
    """Refuse a dataset spec that could never load (at creation, not at training time)."""
    source = spec.get("source")
    where = "dataset spec"
    if source not in SOURCES:
        raise InputValidationError(
            InputProblem(where, None, "source", f"must be one of {', '.join(SOURCES)}, got {source!r}")
        )
    required = {
        "upload": ("blob_sha256",),
        "readings": ("asset", "signals", "start", "end"),
        "example": ("estimator",),
    }[source]
    missing = [k for k in required if not spec.get(k)]
    if missing:
        raise InputValidationError([InputProblem(where, None, k, "required") for k in missing])


def load_frames(dataset: DatasetRow, settings: Settings) -> Frames:
    spec = dict(dataset.spec)
    check_dataset_spec(spec)
    source = spec["source"]
    if source == "upload":
        from axhub.ingest.file_table import read_table

        blobs = BlobStore(settings.blob_root)
        fmt = str(spec.get("format", "parquet"))
        blobs.get(str(spec["blob_sha256"]))  # a missing blob says so
        suffix = {"csv": ".csv", "xlsx": ".xlsx"}.get(fmt, ".parquet")
        with tempfile.TemporaryDirectory(prefix="axhub-ds-") as tmp:
            path = Path(tmp) / f"{spec.get('filename') or 'upload'}{suffix}"
            shutil.copyfile(blobs.path(str(spec["blob_sha256"])), path)
            return Frames(read_table(path, str(spec.get("filename") or dataset.name)))
    if source == "example":
        from axhub.ml.base import Estimator

        family, _, name = str(spec["estimator"]).partition("/")
        example = Estimator.lookup(family, name).example_data(seed=int(spec.get("seed", 0)))
        return Frames(example.train, example.test)
    return Frames(_readings_frame(dataset, spec, settings))


def _readings_frame(dataset: DatasetRow, spec: dict[str, Any], settings: Settings) -> pd.DataFrame:
    """One column per signal (plus ``ts``) from the organisation's time-series store."""
    from axhub.store.timeseries import TimeSeriesStore

    store = TimeSeriesStore(settings.timeseries_root)
    return store.query_wide(
        dataset.org_id,
        str(spec["asset"]),
        list(spec["signals"]),
        datetime.fromisoformat(str(spec["start"])),
        datetime.fromisoformat(str(spec["end"])),
        spec.get("interval"),
        spec.get("agg", "mean"),
    )


def readings_for_training(frames: Frames, name: str) -> Frames:
    """A window of readings as training rows: time order, complete rows only, no ``ts`` column."""
    frame = frames.train.sort_values("ts") if "ts" in frames.train.columns else frames.train
    frame = frame.dropna()
    if frame.empty:
        raise InputValidationError(
            InputProblem(f"dataset {name}", None, None, "no complete rows in the chosen period"),
            hint="choose a period where every chosen signal has readings",
        )
    return Frames(frame.drop(columns=["ts"], errors="ignore").reset_index(drop=True))


def training_record(spec: dict[str, Any], train: pd.DataFrame, columns: list[str]) -> dict[str, Any]:
    """What a model trained on readings must remember: bucket interval, machine, period and the
    normal statistics per operating state (for explanations in engineering units)."""
    from axhub.serve.explain import fit_normal_states

    columns = columns or [c for c in train.columns if c != "ts"]
    return {
        "interval": spec.get("interval"),
        "agg": spec.get("agg", "mean"),
        "asset": spec.get("asset"),
        "signals": list(spec.get("signals", [])),
        "train_start": spec.get("start"),
        "train_end": spec.get("end"),
        "normal_states": fit_normal_states(train, columns),
    }


def split_tail(frame: pd.DataFrame, test_fraction: float) -> Frames:
    """Hold out the last rows (time order), never a random shuffle of a time series."""
    n_test = int(len(frame) * test_fraction)
    if n_test == 0:
        return Frames(frame.reset_index(drop=True), None)
    return Frames(frame.iloc[:-n_test].reset_index(drop=True), frame.iloc[-n_test:].reset_index(drop=True))
