"""A fixed-speed centrifugal pump feeding the plant's cooling-water loop.

The operating point is where the pump curve H = H0 - a·Q² meets the demand the control
valve sets; efficiency peaks at the best-efficiency point (BEP), and motor current follows
the shaft power ρ·g·Q·H/η. Vibration rises away from the BEP; the bearing warms with load.

Faults (only after the normal period), with onset/offset ground truth:

* cavitation: suction pressure falls (low tank level, clogged strainer) below what the pump
  needs; vibration jumps, flow and discharge pressure turn noisy, current fluctuates;
* valve fault / partial blockage: flow drops, the pump rides up its curve so discharge
  pressure rises; current falls a little; recirculation adds some vibration.
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
    lowpass,
    place_episodes,
    ramp_profile,
    red_noise,
    round_columns,
)

PUMP_SIGNALS: tuple[SignalSpec, ...] = (
    SignalSpec("flow", "m³/h", "Discharge flow", "토출 유량", 1),
    SignalSpec("suction_pressure", "bar", "Suction pressure (gauge)", "흡입 압력", 2),
    SignalSpec("discharge_pressure", "bar", "Discharge pressure (gauge)", "토출 압력", 2),
    SignalSpec("motor_current", "A", "Motor current", "모터 전류", 1),
    SignalSpec(
        "vibration_rms", "mm/s", "Pump bearing vibration velocity (RMS)", "펌프 베어링 진동 (RMS 속도)", 2
    ),
    SignalSpec("bearing_temp", "°C", "Drive-end bearing temperature", "구동측 베어링 온도", 1),
)

RHO_G = 1000.0 * 9.81
SHUTOFF_HEAD_M = 62.0
CURVE_A = 0.0008  # head loss coefficient of the pump curve, m / (m³/h)²
BEP_FLOW = 130.0
VOLTAGE_V = 380.0
POWER_FACTOR = 0.88
MOTOR_EFF = 0.93


def pump_spec(asset_id: str, name: str, name_ko: str) -> AssetSpec:
    return AssetSpec(
        asset_id, name, name_ko, AssetKind.PUMP, "end-suction centrifugal pump, 37 kW", PUMP_SIGNALS
    )


def simulate_pump(
    asset_id: str,
    name: str,
    name_ko: str,
    *,
    ts: pd.DatetimeIndex,
    interval_s: float,
    normal_end: int,
    rng: np.random.Generator,
    cavitation_per_day: float = 0.8,
    valve_faults_per_day: float = 0.4,
) -> AssetData:
    """Simulate the pump over ``ts``; faults are placed only after sample ``normal_end``."""
    spec = pump_spec(asset_id, name, name_ko)
    n = len(ts)
    day = 86400.0 / interval_s

    # Demand: the plant's cooling need over the day, plus the controller's setpoint steps.
    hour = np.arange(n) * interval_s / 3600.0
    demand = 120.0 + 12.0 * np.sin(2 * np.pi * (hour - 6.0) / 24.0)
    steps = np.cumsum(rng.random(n) < interval_s / 5400.0)
    demand += rng.normal(0.0, 6.0, steps[-1] + 1)[steps]
    demand = lowpass(demand, 30.0, interval_s, float(demand[0])) + red_noise(rng, n, 20.0, interval_s, 1.2)

    cav_s, cav_e = place_episodes(
        rng,
        n,
        normal_end,
        cavitation_per_day / day,
        int(600 / interval_s),
        int(5400 / interval_s),
        int(3600 / interval_s),
    )
    valve_s, valve_e = place_episodes(
        rng,
        n,
        normal_end,
        valve_faults_per_day / day,
        int(3600 / interval_s),
        int(6 * 3600 / interval_s),
        int(3600 / interval_s),
    )
    # The two fault kinds come from different causes and may overlap; label each on its own.
    cav = ramp_profile(n, cav_s, cav_e, rng.uniform(60, 180, len(cav_s)) / interval_s)
    valve = ramp_profile(n, valve_s, valve_e, rng.uniform(120, 600, len(valve_s)) / interval_s)
    cav_depth = 0.75 + 0.1 * rng.standard_normal()
    valve_depth = rng.uniform(0.2, 0.45)

    flow_true = demand * (1.0 - valve_depth * valve) * (1.0 - 0.06 * cav)
    flow_true *= 1.0 + cav * 0.05 * rng.standard_normal(n)
    head = SHUTOFF_HEAD_M - CURVE_A * flow_true**2
    # A partly blocked discharge makes the pump run up its curve: more head, less flow.
    head += valve * 6.0
    suction = 1.2 + red_noise(rng, n, 3600.0, interval_s, 0.04) - cav * cav_depth
    suction += cav * rng.normal(0.0, 0.05, n)
    discharge = suction + RHO_G * head / 1e5 + rng.normal(0.0, 0.01, n) + cav * rng.normal(0.0, 0.12, n)
    eff = np.clip(0.78 - 0.45 * ((flow_true - BEP_FLOW) / BEP_FLOW) ** 2, 0.3, None)
    shaft_kw = RHO_G * (flow_true / 3600.0) * head / eff / 1000.0
    current = shaft_kw * 1000.0 / (np.sqrt(3.0) * VOLTAGE_V * POWER_FACTOR * MOTOR_EFF)
    current += rng.normal(0.0, 0.3, n) + cav * rng.normal(0.0, 1.5, n)
    off_bep = np.abs(flow_true - BEP_FLOW) / BEP_FLOW
    vib = (1.6 + 2.0 * off_bep**2 + 0.8 * valve) * np.exp(rng.normal(0.0, 0.05, n))
    vib += cav * (2.5 + 1.5 * np.abs(rng.standard_normal(n)))
    bearing = 24.0 + lowpass(0.45 * shaft_kw + 1.5 * cav, 2400.0, interval_s, 0.45 * float(shaft_kw[0]))
    bearing += red_noise(rng, n, 3600.0, interval_s, 0.5) + rng.normal(0.0, 0.05, n)

    values = {
        "flow": flow_true + rng.normal(0.0, 0.4, n),
        "suction_pressure": suction,
        "discharge_pressure": discharge,
        "motor_current": current,
        "vibration_rms": vib,
        "bearing_temp": bearing,
    }
    frame = pd.DataFrame({"ts": ts, **round_columns(values, PUMP_SIGNALS)})
    anomalies = anomalies_frame(
        asset_id,
        ts,
        cav_s.tolist() + valve_s.tolist(),
        cav_e.tolist() + valve_e.tolist(),
        ["cavitation"] * len(cav_s) + ["valve_fault"] * len(valve_s),
    )
    truth = pd.DataFrame(
        {"ts": ts, "cavitation": np.round(cav, 3), "valve_blockage": np.round(valve * valve_depth, 3)}
    )
    return AssetData(spec, frame, anomalies, truth)
