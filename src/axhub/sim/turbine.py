"""An industrial gas turbine driving a process compressor, degrading toward failure.

In the spirit of NASA's C-MAPSS: the operating settings (load setpoint, inlet guide vane
angle, ambient temperature) move the operating point far more than degradation does, so a
model must learn to separate the two. Degradation (compressor fouling and erosion, hot
section wear) lowers a health index ``h`` from about 1 to 0 (failure) along an exponential
path with unit-to-unit variation; as ``h`` falls the compressor loses efficiency and
pressure ratio, so for the same load the turbine runs hotter, faster and burns more fuel.

Two forms:

* ``simulate_turbine_fleet`` / ``turbine_fleet``: per-cycle tables (unit, cycle, settings,
  sensors, health, rul) of run-to-failure trajectories for RUL training, with a test set
  cut off before failure;
* ``simulate_turbine``: a time series (one row per sample) of one unit in the plant.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from axhub.core.domain import AssetKind
from axhub.sim._common import (
    AssetData,
    AssetSpec,
    SignalSpec,
    anomalies_frame,
    asset_rng,
    lowpass,
    place_episodes,
    ramp_profile,
    red_noise,
    round_columns,
)

SETTING_SIGNALS: tuple[SignalSpec, ...] = (
    SignalSpec("load_setpoint", "%", "Load setpoint", "부하 설정값", 1),
    SignalSpec("igv_angle", "deg", "Inlet guide vane angle", "입구 안내깃 각도", 1),
    SignalSpec("ambient_temp", "°C", "Ambient air temperature", "외기 온도", 1),
)
SENSOR_SIGNALS: tuple[SignalSpec, ...] = (
    SignalSpec(
        "compressor_inlet_temp", "°C", "Compressor inlet temperature (T1)", "압축기 입구 온도 (T1)", 1
    ),
    SignalSpec(
        "compressor_inlet_pressure",
        "bar",
        "Compressor inlet pressure, absolute (P1)",
        "압축기 입구 압력 (P1)",
        3,
    ),
    SignalSpec(
        "compressor_discharge_temp", "°C", "Compressor discharge temperature (T2)", "압축기 토출 온도 (T2)", 1
    ),
    SignalSpec(
        "compressor_discharge_pressure",
        "bar",
        "Compressor discharge pressure, absolute (P2)",
        "압축기 토출 압력 (P2)",
        2,
    ),
    SignalSpec("exhaust_gas_temp", "°C", "Exhaust gas temperature (T5)", "배기가스 온도 (T5)", 1),
    SignalSpec("gas_generator_speed", "rpm", "Gas generator speed (N1)", "가스발생기 회전수 (N1)", 0),
    SignalSpec("power_turbine_speed", "rpm", "Power turbine speed (N2)", "출력터빈 회전수 (N2)", 0),
    SignalSpec("fuel_flow", "kg/s", "Fuel gas mass flow", "연료 가스 유량", 3),
    SignalSpec("power_output", "MW", "Shaft power output", "축 출력", 2),
    SignalSpec("lube_oil_temp", "°C", "Lube oil header temperature", "윤활유 온도", 1),
    SignalSpec(
        "bearing_vibration", "mm/s", "Gas generator bearing vibration (RMS)", "가스발생기 베어링 진동", 2
    ),
)
TURBINE_SIGNALS = SETTING_SIGNALS + SENSOR_SIGNALS

# Operating regimes: (load setpoint %, IGV angle deg). Six, like C-MAPSS FD002/FD004.
REGIMES: tuple[tuple[float, float], ...] = (
    (40.0, 22.0),
    (55.0, 30.0),
    (70.0, 42.0),
    (85.0, 56.0),
    (100.0, 70.0),
    (100.0, 80.0),
)
RATED_MW = 20.0


def turbine_spec(asset_id: str, name: str, name_ko: str) -> AssetSpec:
    return AssetSpec(
        asset_id,
        name,
        name_ko,
        AssetKind.TURBINE,
        "20 MW industrial gas turbine, compressor drive",
        TURBINE_SIGNALS,
    )


def turbine_sensors(
    load: np.ndarray,
    igv: np.ndarray,
    ambient: np.ndarray,
    health: np.ndarray,
    rng: np.random.Generator,
    noise: float = 1.0,
    unit_offsets: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Sensor readings at an operating point and health (vectorised over samples or cycles).

    ``unit_offsets``: per-unit manufacturing differences (fractions), one per sensor.
    """
    n = len(load)
    wear = 1.0 - np.clip(health, 0.0, 1.0)
    igv_dev = (igv - (22.0 + 0.58 * (load - 40.0))) / 10.0  # off the nominal IGV schedule
    t_amb_k = ambient + 273.15
    p1 = 1.013 - 0.00012 * load - 0.004 * wear  # the inlet filter loads up as well
    pressure_ratio = (6.0 + 0.1 * load) * (1.0 - 0.08 * wear) * (1.0 - 0.01 * igv_dev**2)
    eta_c = 0.86 - 0.10 * wear - 0.01 * igv_dev**2
    t2 = t_amb_k * (1.0 + (pressure_ratio**0.286 - 1.0) / eta_c) - 273.15
    capability = RATED_MW * (1.0 - 0.12 * wear) * (1.0 - 0.006 * np.clip(ambient - 15.0, 0.0, None))
    power = np.minimum(RATED_MW * load / 100.0, capability)
    egt = 430.0 + 2.2 * load + 0.8 * (ambient - 15.0) + 90.0 * wear + 4.0 * igv_dev
    n1 = 9000.0 + 25.0 * load + 3.0 * (ambient - 15.0) + 250.0 * wear
    n2 = 3000.0 + 8.0 * load
    fuel = (0.3 + 0.012 * load) * (1.0 + 0.15 * wear) * (1.0 + 0.002 * (ambient - 15.0))
    oil = 55.0 + 0.1 * load + 0.2 * (ambient - 15.0) + 3.0 * wear
    vib = 2.0 + 0.01 * load + 1.5 * wear**2

    clean = {
        "compressor_inlet_temp": ambient + 0.5,
        "compressor_inlet_pressure": p1,
        "compressor_discharge_temp": t2,
        "compressor_discharge_pressure": p1 * pressure_ratio,
        "exhaust_gas_temp": egt,
        "gas_generator_speed": n1,
        "power_turbine_speed": n2,
        "fuel_flow": fuel,
        "power_output": power,
        "lube_oil_temp": oil,
        "bearing_vibration": vib,
    }
    sigma = {
        "compressor_inlet_temp": 0.2,
        "compressor_inlet_pressure": 0.001,
        "compressor_discharge_temp": 1.0,
        "compressor_discharge_pressure": 0.03,
        "exhaust_gas_temp": 2.0,
        "gas_generator_speed": 8.0,
        "power_turbine_speed": 4.0,
        "fuel_flow": 0.004,
        "power_output": 0.05,
        "lube_oil_temp": 0.2,
        "bearing_vibration": 0.08,
    }
    out: dict[str, np.ndarray] = {}
    for k, (name, value) in enumerate(clean.items()):
        offset = 1.0 if unit_offsets is None else 1.0 + unit_offsets[k]
        out[name] = value * offset + rng.normal(0.0, sigma[name] * noise, n)
    return out


def health_path(u: np.ndarray, h0: float, h_end: float, beta: float) -> np.ndarray:
    """Exponential degradation from ``h0`` at u=0 to ``h_end`` at u=1 (u: share of the path)."""
    return h0 - (h0 - h_end) * np.expm1(beta * u) / np.expm1(beta)


def _unit_trajectory(rng: np.random.Generator, unit: int, life: int) -> pd.DataFrame:
    """One unit from first cycle to failure (health 0 at cycle ``life``)."""
    cycles = np.arange(1, life + 1)
    h0 = 1.0 - rng.uniform(0.0, 0.08)  # units arrive with some initial wear
    beta = rng.uniform(2.5, 6.0)
    health = health_path(cycles / life, h0, 0.0, beta)
    regime = rng.integers(0, len(REGIMES), life)
    load = np.array([REGIMES[r][0] for r in regime]) + rng.normal(0.0, 0.3, life)
    igv = np.array([REGIMES[r][1] for r in regime]) + rng.normal(0.0, 0.3, life)
    ambient = rng.uniform(-5.0, 35.0, life)
    offsets = rng.normal(0.0, 0.003, len(SENSOR_SIGNALS))
    sensors = turbine_sensors(load, igv, ambient, health, rng, unit_offsets=offsets)
    values = {"load_setpoint": load, "igv_angle": igv, "ambient_temp": ambient, **sensors}
    frame = pd.DataFrame(
        {"unit": unit, "cycle": cycles, "regime": regime, **round_columns(values, TURBINE_SIGNALS)}
    )
    frame["health"] = np.round(health, 4)
    frame["rul"] = life - cycles
    return frame


def simulate_turbine_fleet(n_units: int, seed: int, key: str = "train", first_unit: int = 1) -> pd.DataFrame:
    """Run-to-failure trajectories of ``n_units`` turbines, one row per cycle.

    Lives vary from about 130 to 360 cycles (as in C-MAPSS); ``rul`` is 0 on the last cycle.
    """
    rng = asset_rng(seed, f"turbine-fleet-{key}")
    lives = rng.integers(130, 361, n_units)
    frames = [_unit_trajectory(rng, first_unit + i, int(life)) for i, life in enumerate(lives)]
    return pd.concat(frames, ignore_index=True)


def turbine_fleet(n_train: int = 100, n_test: int = 100, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A training fleet (full run-to-failure) and a test fleet cut off before failure.

    As in C-MAPSS, each test unit stops at a random point of its life; its ``rul`` column
    holds the true remaining cycles (the last row's value is the one to predict).
    """
    train = simulate_turbine_fleet(n_train, seed, "train", first_unit=1)
    full = simulate_turbine_fleet(n_test, seed, "test", first_unit=1)
    rng = asset_rng(seed, "turbine-fleet-cut")
    keep = []
    for _, unit in full.groupby("unit", sort=True):
        life = len(unit)
        cut = int(rng.uniform(0.3, 0.95) * life)
        keep.append(unit.iloc[: max(cut, 10)])
    return train, pd.concat(keep, ignore_index=True)


def _ramp(level_of_block: np.ndarray, block: np.ndarray, elapsed_s: np.ndarray, rate: float) -> np.ndarray:
    """A reference that moves from the previous block's level to this block's at ``rate`` per second."""
    target = level_of_block[block]
    previous = level_of_block[np.clip(block - 1, 0, None)]
    step = np.clip(target - previous, -rate * elapsed_s, rate * elapsed_s)
    return np.asarray(previous + step, dtype=np.float64)


def simulate_turbine(
    asset_id: str,
    name: str,
    name_ko: str,
    *,
    ts: pd.DatetimeIndex,
    interval_s: float,
    normal_end: int,
    rng: np.random.Generator,
    bleed_faults_per_day: float = 0.3,
    degraded_below: float = 0.8,
    degradation: float = 1.0,
) -> AssetData:
    """One turbine as a time series, degrading over the simulated period.

    The health path is laid so that the first ~40 % stays close to new and the end is near
    failure; ``truth`` carries health and remaining useful life in hours. Labelled anomalies:
    ``degradation`` (health below ``degraded_below``) and short ``bleed_valve_fault`` episodes
    (an anti-surge bleed valve stuck open: pressure down, exhaust hotter, more fuel).
    ``degradation`` scales how much health is lost over the period (0: none).
    """
    spec = turbine_spec(asset_id, name, name_ko)
    n = len(ts)
    period_s = n * interval_s

    # Dispatch: the load regime changes every 20 minutes to 2 hours; the control system
    # ramps its load reference (10 %/min) and the IGVs (9°/min) to the new operating point.
    n_blocks = int(period_s / 1200.0) + 2
    block_len = rng.uniform(1200.0, 7200.0, n_blocks) / interval_s
    block_start = np.ceil(np.concatenate([[0.0], np.cumsum(block_len)[:-1]])).astype(np.int64)
    block = np.clip(np.searchsorted(block_start, np.arange(n), side="right") - 1, 0, n_blocks - 1)
    # Demand cycles through every regime in some order (so a day of data sees them all).
    cycles = n_blocks // len(REGIMES) + 1
    regime_of_block = np.concatenate([rng.permutation(len(REGIMES)) for _ in range(cycles)])[:n_blocks]
    regime = regime_of_block[block]
    elapsed_s = (np.arange(n) - block_start[block]) * interval_s
    load_ref = _ramp(np.array([r[0] for r in REGIMES])[regime_of_block], block, elapsed_s, 10.0 / 60.0)
    igv_ref = _ramp(np.array([r[1] for r in REGIMES])[regime_of_block], block, elapsed_s, 9.0 / 60.0)
    load = lowpass(load_ref, 15.0, interval_s) + red_noise(rng, n, 30.0, interval_s, 0.3)
    igv = lowpass(igv_ref, 10.0, interval_s) + rng.normal(0.0, 0.05, n)
    hour = np.arange(n) * interval_s / 3600.0
    ambient = (
        12.0 + 6.0 * np.sin(2 * np.pi * (hour - 9.0) / 24.0) + red_noise(rng, n, 7200.0, interval_s, 1.0)
    )

    h0 = 1.0 - rng.uniform(0.0, 0.04)
    h_end = h0 - degradation * (h0 - rng.uniform(0.12, 0.25))
    beta = rng.uniform(3.5, 4.5)
    u = np.arange(n) / max(n - 1, 1)
    health = health_path(u, h0, h_end, beta)
    # When health would reach 0 on the same path (at u_fail in units of the period).
    u_fail = np.log1p(h0 / max(h0 - h_end, 1e-6) * np.expm1(beta)) / beta
    rul_h = (u_fail - u) * period_s / 3600.0

    bleed_s, bleed_e = place_episodes(
        rng,
        n,
        normal_end,
        bleed_faults_per_day * interval_s / 86400.0,
        int(600 / interval_s),
        int(3600 / interval_s),
        int(1800 / interval_s),
    )
    bleed = ramp_profile(n, bleed_s, bleed_e, np.full(len(bleed_s), 30.0 / interval_s))

    sensors = turbine_sensors(load, igv, ambient, health, rng, noise=0.7)
    # A stuck-open bleed dumps compressed air: less pressure, and the gas generator runs
    # faster and hotter on more fuel to hold the load. Each episode has its own size.
    episode = np.clip(np.searchsorted(bleed_s, np.arange(n), side="right") - 1, 0, None)
    bleed = bleed * rng.uniform(0.7, 1.3, max(len(bleed_s), 1))[episode]
    sensors["compressor_discharge_pressure"] *= 1.0 - 0.08 * bleed
    sensors["exhaust_gas_temp"] += 30.0 * bleed
    sensors["fuel_flow"] *= 1.0 + 0.06 * bleed
    sensors["gas_generator_speed"] += 80.0 * bleed
    # Temperatures lag the operating point (metal mass); speeds and pressures do not.
    for name_ in ("exhaust_gas_temp", "compressor_discharge_temp"):
        sensors[name_] = lowpass(sensors[name_], 45.0, interval_s)
    sensors["lube_oil_temp"] = lowpass(sensors["lube_oil_temp"], 600.0, interval_s)

    values = {
        "load_setpoint": load_ref,
        "igv_angle": igv,
        "ambient_temp": ambient,
        **sensors,
    }
    frame = pd.DataFrame({"ts": ts, **round_columns(values, TURBINE_SIGNALS)})

    starts = bleed_s.tolist()
    ends = bleed_e.tolist()
    kinds = ["bleed_valve_fault"] * len(bleed_s)
    below = np.flatnonzero(health < degraded_below)
    if len(below):
        first = max(int(below[0]), normal_end)
        if first < n:
            starts.append(first)
            ends.append(n)
            kinds.append("degradation")
    anomalies = anomalies_frame(asset_id, ts, starts, ends, kinds)
    truth = pd.DataFrame(
        {
            "ts": ts,
            "health": np.round(health, 4),
            "rul_h": np.round(rul_h, 3),
            "regime": regime.astype(np.int8),
        }
    )
    return AssetData(spec, frame, anomalies, truth)
