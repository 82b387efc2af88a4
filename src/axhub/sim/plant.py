"""A small plant: two machining centres, a cooling-water pump and a gas turbine compressor.

``simulate_plant(days, seed)`` returns a ``Plant``: per asset a wide frame (UTC ``ts`` plus
one column per signal), the labelled anomaly intervals, hidden truth (tool wear, health,
RUL), per-part quality records and the asset metadata the demo registers in the DB.

The first ``normal_fraction`` of the period (40 % by default) carries no fault, so an
unsupervised model can be trained on it; faults come afterwards at realistic rates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa

from axhub.core.domain import AssetKind, Quality
from axhub.core.errors import AxHubError
from axhub.core.ids import check_path_safe
from axhub.core.readings import make_batch
from axhub.core.timeutil import as_utc, parse_timezone
from axhub.sim._common import ANOMALY_COLUMNS, EVENT_COLUMNS, AssetData, asset_rng, time_index
from axhub.sim.cnc import simulate_cnc
from axhub.sim.pump import simulate_pump
from axhub.sim.quality import SPEC, measure_parts
from axhub.sim.turbine import simulate_turbine

DEFAULT_START = "2025-03-03 06:00"  # a Monday morning, plant local time


@dataclass(frozen=True)
class AssetPlan:
    """One machine to simulate: its id slug, names and kind (cnc, pump or turbine)."""

    id: str
    name: str
    name_ko: str
    kind: AssetKind


DEFAULT_ASSETS: tuple[AssetPlan, ...] = (
    AssetPlan("cnc-01", "CNC machining centre 01", "CNC 머시닝센터 01", AssetKind.CNC),
    AssetPlan("cnc-02", "CNC machining centre 02", "CNC 머시닝센터 02", AssetKind.CNC),
    AssetPlan("pump-01", "Cooling water pump 01", "냉각수 펌프 01", AssetKind.PUMP),
    AssetPlan("turbine-01", "Gas turbine compressor 01", "가스터빈 압축기 01", AssetKind.TURBINE),
)


@dataclass(frozen=True)
class PlantSpec:
    """What to simulate. ``fault_rate`` scales every fault rate (0 gives a fault-free plant)."""

    site: str = "Changwon plant 1"
    site_ko: str = "창원 1공장"
    timezone: str = "Asia/Seoul"
    assets: tuple[AssetPlan, ...] = DEFAULT_ASSETS
    normal_fraction: float = 0.4
    fault_rate: float = 1.0


@dataclass
class Plant:
    """The simulated plant: data, ground truth and metadata."""

    spec: PlantSpec
    seed: int
    interval_s: float
    start: pd.Timestamp
    normal_end: pd.Timestamp  # first timestamp after the clean training period
    assets: dict[str, AssetData]
    quality: pd.DataFrame
    ground_truth: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=ANOMALY_COLUMNS))
    events: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=EVENT_COLUMNS))

    @property
    def frames(self) -> dict[str, pd.DataFrame]:
        return {k: a.frame for k, a in self.assets.items()}

    @property
    def end(self) -> pd.Timestamp:
        return max(a.frame["ts"].iloc[-1] for a in self.assets.values())

    @property
    def n_points(self) -> int:
        return sum(len(a.frame) * (a.frame.shape[1] - 1) for a in self.assets.values())

    def metadata(self) -> dict[str, object]:
        """Site and assets with their signals, units and descriptions (Korean and English)."""
        return {
            "site": self.spec.site,
            "site_ko": self.spec.site_ko,
            "timezone": self.spec.timezone,
            "assets": [a.spec.to_dict() for a in self.assets.values()],
        }

    def is_anomaly(
        self, asset: str, ts: pd.Series | pd.DatetimeIndex | np.ndarray | None = None
    ) -> np.ndarray:
        """Per-timestamp label: True where ``ts`` (default: the asset's own) is in a labelled interval."""
        if asset not in self.assets:
            raise AxHubError(f"no asset {asset!r} in this plant", hint=f"one of {sorted(self.assets)}")
        stamps = self.assets[asset].frame["ts"] if ts is None else ts
        return label_anomalies(self.ground_truth, asset, stamps)

    def to_readings(
        self, assets: list[str] | None = None, rows_per_batch: int = 50_000
    ) -> Iterator[pa.Table]:
        """The plant as ``axhub.core.readings`` batches (long form), ``rows_per_batch`` timestamps each."""
        for asset_id in assets or list(self.assets):
            yield from frame_to_readings(asset_id, self.assets[asset_id].frame, rows_per_batch)


def _to_us(values: pd.Series | pd.DatetimeIndex | np.ndarray) -> np.ndarray:
    stamps = pd.DatetimeIndex(
        pd.to_datetime(np.asarray(values) if isinstance(values, np.ndarray) else values, utc=True)
    )
    return np.asarray(stamps.as_unit("us").asi8, dtype=np.int64)


def label_anomalies(
    ground_truth: pd.DataFrame, asset: str, ts: pd.Series | pd.DatetimeIndex | np.ndarray
) -> np.ndarray:
    """True for each timestamp inside any labelled interval of ``asset`` (ends inclusive)."""
    t = _to_us(ts)
    rows = ground_truth[ground_truth["asset"] == asset]
    mask = np.zeros(len(t), dtype=bool)
    if rows.empty:
        return mask
    for s, e in zip(_to_us(rows["start"]), _to_us(rows["end"]), strict=True):
        mask |= (t >= s) & (t <= e)
    return mask


def frame_to_readings(asset: str, frame: pd.DataFrame, rows_per_batch: int = 50_000) -> Iterator[pa.Table]:
    """Wide frame (``ts`` + signal columns) to long readings batches; NaN values get BAD quality."""
    signals = [c for c in frame.columns if c != "ts"]
    ts_us = _to_us(frame["ts"])
    values = frame[signals].to_numpy(dtype=np.float64)
    for lo in range(0, len(frame), rows_per_batch):
        hi = min(lo + rows_per_batch, len(frame))
        block = values[lo:hi].T.ravel()  # signal-major: one signal's run of times, then the next
        quality = np.where(np.isnan(block), int(Quality.BAD), int(Quality.GOOD)).astype(np.uint8)
        yield make_batch(
            asset,
            np.repeat(np.array(signals, dtype=object), hi - lo),
            np.tile(ts_us[lo:hi], len(signals)),
            block,
            quality,
        )


ProgressFn = Callable[[str], None]


def simulate_plant(
    days: float,
    seed: int,
    interval_s: float = 1.0,
    start: datetime | str | pd.Timestamp | None = None,
    spec: PlantSpec | None = None,
    progress: ProgressFn | None = None,
) -> Plant:
    """Simulate ``days`` of the plant every ``interval_s`` seconds, reproducibly from ``seed``.

    ``start``: first timestamp; a naive value is read as plant local time
    (default: Monday 2025-03-03 06:00 local). ``progress`` is called with each asset id when done.
    """
    spec = spec or PlantSpec()
    if not days > 0:
        raise AxHubError(f"days must be positive, got {days}", hint="e.g. --days 2")
    if not interval_s > 0:
        raise AxHubError(f"interval must be positive, got {interval_s} s", hint="e.g. --interval 1")
    if not 0.0 <= spec.normal_fraction < 1.0:
        raise AxHubError(f"normal_fraction must be in [0, 1), got {spec.normal_fraction}")
    parse_timezone(spec.timezone)
    n = round(days * 86400.0 / interval_s)
    if n < 2:
        raise AxHubError(f"{days} days at {interval_s} s gives fewer than 2 samples", hint="simulate longer")
    begin = _start_timestamp(start, spec.timezone)
    ts = time_index(begin, n, interval_s)
    normal_end = int(n * spec.normal_fraction)
    rate = spec.fault_rate

    assets: dict[str, AssetData] = {}
    for plan in spec.assets:
        check_path_safe(plan.id, "asset id")
        rng = asset_rng(seed, plan.id)
        if plan.kind == AssetKind.CNC:
            data = simulate_cnc(
                plan.id,
                plan.name,
                plan.name_ko,
                tz=spec.timezone,
                chatter_per_day=3.0 * rate,
                coolant_faults_per_day=0.3 * rate,
                ts=ts,
                interval_s=interval_s,
                normal_end=normal_end,
                rng=rng,
            )
        elif plan.kind == AssetKind.PUMP:
            data = simulate_pump(
                plan.id,
                plan.name,
                plan.name_ko,
                cavitation_per_day=1.5 * rate,
                valve_faults_per_day=0.6 * rate,
                ts=ts,
                interval_s=interval_s,
                normal_end=normal_end,
                rng=rng,
            )
        elif plan.kind in (AssetKind.TURBINE, AssetKind.COMPRESSOR):
            data = simulate_turbine(
                plan.id,
                plan.name,
                plan.name_ko,
                bleed_faults_per_day=0.3 * rate,
                # Wear-out is a fault too: a fault-free plant keeps its turbine healthy.
                degradation=min(rate, 1.0),
                ts=ts,
                interval_s=interval_s,
                normal_end=normal_end,
                rng=rng,
            )
        else:
            raise AxHubError(
                f"asset {plan.id!r}: the simulator has no model of kind {plan.kind!r}",
                hint="use cnc, pump, turbine or compressor",
            )
        assets[plan.id] = data
        if progress is not None:
            progress(plan.id)

    quality = _quality_records(assets, seed)
    truth = [a.anomalies for a in assets.values() if not a.anomalies.empty]
    ground_truth = (
        pd.concat(truth, ignore_index=True)
        .sort_values(["start", "asset"], kind="stable")
        .reset_index(drop=True)
        if truth
        else next(iter(assets.values())).anomalies.iloc[0:0]
    )
    ev = [a.events for a in assets.values() if not a.events.empty]
    events = (
        pd.concat(ev, ignore_index=True).sort_values(["ts", "asset"], kind="stable").reset_index(drop=True)
        if ev
        else pd.DataFrame(columns=EVENT_COLUMNS)
    )
    return Plant(spec, seed, interval_s, ts[0], ts[normal_end], assets, quality, ground_truth, events)


def _start_timestamp(start: datetime | str | pd.Timestamp | None, tz: str) -> pd.Timestamp:
    try:
        value = pd.Timestamp(DEFAULT_START if start is None else start)
    except (ValueError, TypeError) as exc:
        raise AxHubError(f"cannot read start time {start!r}", hint="use e.g. '2025-03-03 06:00'") from exc
    if value is pd.NaT:
        raise AxHubError("start time is empty", hint="use e.g. '2025-03-03 06:00'")
    return pd.Timestamp(as_utc(value.to_pydatetime(), assume_tz=tz))


def _quality_records(assets: dict[str, AssetData], seed: int) -> pd.DataFrame:
    """Measure every finished part of every machining centre (one measuring room, one seed)."""
    parts = [a.parts for a in assets.values() if a.parts is not None and not a.parts.empty]
    if not parts:
        return pd.DataFrame()
    table = (
        pd.concat(parts, ignore_index=True)
        .sort_values(["end", "asset"], kind="stable")
        .reset_index(drop=True)
    )
    rng = asset_rng(seed, "quality-room")
    measured = measure_parts(
        table, table["true_tool_wear_mm"].to_numpy(), table["true_chatter"].to_numpy(), rng, SPEC
    )
    hidden = ["true_tool_wear_mm", "true_chatter"]
    return pd.concat([table.drop(columns=hidden), measured, table[hidden]], axis=1)
