"""Building blocks shared by the asset simulators: signal specs, seeded noise, labels.

Everything here is vectorised over samples; loops run only over events (parts, faults),
of which there are at most a few thousand per simulated day.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from axhub.core.domain import AssetKind

ANOMALY_COLUMNS = ["asset", "start", "end", "kind"]
EVENT_COLUMNS = ["asset", "ts", "kind", "detail"]


@dataclass(frozen=True)
class SignalSpec:
    """One sensor tag: name, unit, what it measures (English and Korean), its resolution.

    ``decimals`` is the sensor's resolution as decimal places: values are rounded to it so
    that the stored data looks like a real export and compresses well.
    """

    name: str
    unit: str
    description_en: str
    description_ko: str
    decimals: int

    def to_dict(self) -> dict[str, str | int]:
        return {
            "name": self.name,
            "unit": self.unit,
            "description_en": self.description_en,
            "description_ko": self.description_ko,
            "decimals": self.decimals,
        }


@dataclass(frozen=True)
class AssetSpec:
    """One machine of the simulated plant, as the metadata DB will know it."""

    id: str
    name: str
    name_ko: str
    kind: AssetKind
    model: str
    signals: tuple[SignalSpec, ...]

    @property
    def signal_names(self) -> list[str]:
        return [s.name for s in self.signals]

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "name_ko": self.name_ko,
            "kind": str(self.kind),
            "model": self.model,
            "signals": [s.to_dict() for s in self.signals],
        }


@dataclass
class AssetData:
    """What simulating one asset produces.

    ``frame``: UTC ``ts`` plus one column per signal (rounded to sensor resolution).
    ``anomalies``: labelled intervals (asset, start, end, kind), ends inclusive.
    ``truth``: per-timestamp hidden state (tool wear, health, RUL, ...), same rows as frame.
    ``events``: point events that are not anomalies (tool changes, ...).
    """

    spec: AssetSpec
    frame: pd.DataFrame
    anomalies: pd.DataFrame
    truth: pd.DataFrame
    events: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=EVENT_COLUMNS))
    parts: pd.DataFrame | None = None


def asset_rng(seed: int, key: str) -> np.random.Generator:
    """A generator that depends on the plant seed and a stable key (e.g. the asset id).

    Keying by name (not by position) means adding an asset never changes another's data.
    """
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, zlib.crc32(key.encode())]))


def time_index(start: pd.Timestamp, n: int, interval_s: float) -> pd.DatetimeIndex:
    """``n`` UTC timestamps from ``start`` every ``interval_s`` seconds (microsecond precision)."""
    step_us = round(interval_s * 1_000_000)
    start_us = int(start.tz_convert("UTC").value // 1000)
    us = start_us + np.arange(n, dtype=np.int64) * step_us
    return pd.DatetimeIndex(us.astype("datetime64[us]")).tz_localize("UTC")


def lowpass(x: np.ndarray, tau_s: float, interval_s: float, initial: float | None = None) -> np.ndarray:
    """First-order lag (a thermal mass, a sluggish controller) with time constant ``tau_s``."""
    a = float(np.exp(-interval_s / max(tau_s, 1e-9)))
    x0 = float(x[0]) if initial is None else initial
    y, _ = lfilter([1.0 - a], [1.0, -a], x, zi=np.array([a * x0]))
    return np.asarray(y)


def red_noise(rng: np.random.Generator, n: int, tau_s: float, interval_s: float, sigma: float) -> np.ndarray:
    """Correlated (AR(1)) noise with standard deviation ``sigma``: slow drifts and wander."""
    a = float(np.exp(-interval_s / max(tau_s, 1e-9)))
    white = rng.standard_normal(n) * sigma * np.sqrt(1.0 - a * a)
    y, _ = lfilter([1.0], [1.0, -a], white, zi=np.array([a * rng.standard_normal() * sigma]))
    return np.asarray(y)


def interval_mask(n: int, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Boolean mask of sample indices inside any [start, end) index interval."""
    delta = np.zeros(n + 1, dtype=np.int32)
    np.add.at(delta, np.clip(starts, 0, n), 1)
    np.add.at(delta, np.clip(ends, 0, n), -1)
    return np.cumsum(delta[:n]) > 0


def ramp_profile(n: int, starts: np.ndarray, ends: np.ndarray, ramp: np.ndarray) -> np.ndarray:
    """0..1 severity per sample: rises over ``ramp`` samples after each start, falls before each end.

    Faults rarely switch on instantly; a ramp makes onset and recovery look physical.
    """
    out = np.zeros(n)
    idx = np.arange(n)
    for s, e, r in zip(starts, ends, ramp, strict=True):
        s, e, r = int(s), int(min(e, n)), max(int(r), 1)
        if e <= s:
            continue
        seg = idx[s:e]
        up = np.clip((seg - s + 1) / r, 0.0, 1.0)
        down = np.clip((e - seg) / r, 0.0, 1.0)
        out[s:e] = np.maximum(out[s:e], np.minimum(up, down))
    return out


def anomalies_frame(
    asset: str, ts: pd.DatetimeIndex, starts: list[int], ends: list[int], kinds: list[str]
) -> pd.DataFrame:
    """Labelled intervals from sample indices; ``end`` is the last sample inside (inclusive)."""
    if not starts:
        return pd.DataFrame(
            {
                "asset": pd.Series([], dtype=object),
                "start": pd.Series([], dtype="datetime64[us, UTC]"),
                "end": pd.Series([], dtype="datetime64[us, UTC]"),
                "kind": pd.Series([], dtype=object),
            }
        )
    s = np.asarray(starts, dtype=np.int64)
    e = np.clip(np.asarray(ends, dtype=np.int64), s + 1, len(ts)) - 1
    frame = pd.DataFrame(
        {
            "asset": np.array([asset] * len(s), dtype=object),
            "start": ts[s],
            "end": ts[e],
            "kind": np.array(kinds, dtype=object),
        }
    )
    return frame.sort_values("start", kind="stable").reset_index(drop=True)


def round_columns(values: dict[str, np.ndarray], specs: tuple[SignalSpec, ...]) -> dict[str, np.ndarray]:
    """Round each signal to its sensor resolution (and float64, as stored)."""
    return {s.name: np.round(np.asarray(values[s.name], dtype=np.float64), s.decimals) for s in specs}


def place_episodes(
    rng: np.random.Generator,
    n: int,
    first: int,
    rate_per_sample: float,
    min_len: int,
    max_len: int,
    min_gap: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping fault episodes (start, end sample indices) after sample ``first``.

    Gaps between episodes are exponential (a Poisson process), with at least ``min_gap``.
    """
    starts: list[int] = []
    ends: list[int] = []
    if rate_per_sample <= 0 or first >= n:
        return np.array(starts, dtype=np.int64), np.array(ends, dtype=np.int64)
    pos = first + int(rng.exponential(1.0 / rate_per_sample) * 0.5)
    while pos < n - min_len:
        length = int(rng.integers(min_len, max_len + 1))
        end = min(pos + length, n)
        starts.append(pos)
        ends.append(end)
        pos = end + min_gap + int(rng.exponential(1.0 / rate_per_sample))
    return np.array(starts, dtype=np.int64), np.array(ends, dtype=np.int64)
