"""A vertical machining centre making one part after another, around the clock.

What it models (and why a model trained on it learns something real):

* part cycles: load/unload (idle) then roughing, semi-finishing and finishing passes, each
  at its own spindle speed and feed; meal breaks and shift handovers stop the machine;
* tool wear VB (mm, flank wear as in ISO 3685) grows with cutting time, faster at higher
  speed, with the classic three stages (break-in, steady, accelerating); the tool is changed
  near the 0.3 mm criterion. Wear raises spindle load and vibration;
* chatter: self-excited vibration episodes during roughing, more likely with a worn tool,
  where vibration jumps and its dominant frequency moves from tooth passing to the spindle's
  structural mode (about 1.1 to 1.3 kHz);
* thermal drift: the spindle warms with speed and load over a shift and cools in breaks;
  the shop-floor temperature follows the day;
* coolant chiller faults: coolant temperature climbs several degrees for an hour or two.

Ground truth: tool wear per sample, tool-change events, chatter and coolant-fault intervals.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from axhub.core.domain import AssetKind
from axhub.sim._common import (
    EVENT_COLUMNS,
    AssetData,
    AssetSpec,
    SignalSpec,
    anomalies_frame,
    interval_mask,
    lowpass,
    place_episodes,
    ramp_profile,
    red_noise,
    round_columns,
)
from axhub.sim.quality import RADIAL_WIDTH_MM, TEETH, hardness_of, sample_recipes

CNC_SIGNALS: tuple[SignalSpec, ...] = (
    SignalSpec("spindle_load", "%", "Spindle load (share of rated power)", "주축 부하율", 1),
    SignalSpec("spindle_speed", "rpm", "Spindle speed", "주축 회전수", 0),
    SignalSpec("feed_rate", "mm/min", "Feed rate", "이송 속도", 0),
    SignalSpec("vibration_rms", "mm/s", "Spindle vibration velocity (RMS)", "주축 진동 (RMS 속도)", 2),
    SignalSpec("vibration_peak_hz", "Hz", "Dominant vibration frequency", "진동 주파수 피크", 0),
    SignalSpec("spindle_temp", "°C", "Spindle bearing temperature", "주축 베어링 온도", 1),
    SignalSpec("coolant_temp", "°C", "Coolant temperature", "절삭유 온도", 1),
    SignalSpec("x_axis_current", "A", "X-axis servo motor current", "X축 서보 전류", 2),
    SignalSpec("y_axis_current", "A", "Y-axis servo motor current", "Y축 서보 전류", 2),
    SignalSpec("z_axis_current", "A", "Z-axis servo motor current", "Z축 서보 전류", 2),
)

IDLE, ROUGH, SEMI, FINISH, BREAK = 0, 1, 2, 3, 4
PHASE_NAMES = ("idle", "roughing", "semi_finishing", "finishing", "break")
VB_LIMIT_MM = 0.3
# Meal breaks and shift handovers (local time, hours): the machine stands still.
BREAKS_LOCAL_H: tuple[tuple[float, float], ...] = ((0.0, 0.67), (8.0, 8.33), (12.0, 12.83), (20.0, 20.33))
CHATTER_BAND_HZ = (1100.0, 1300.0)


def cnc_spec(asset_id: str, name: str, name_ko: str) -> AssetSpec:
    return AssetSpec(asset_id, name, name_ko, AssetKind.CNC, "5-axis vertical machining centre", CNC_SIGNALS)


def wear_curve(u: np.ndarray) -> np.ndarray:
    """Flank wear as a share of the limit over the tool's life fraction ``u`` (0..~1.1).

    Fast break-in, a steady linear stage, then accelerating wear; monotone and f(1) = 1.
    """
    return 0.3 * (1.0 - np.exp(-u / 0.06)) + 0.45 * u + 0.25 * u**4


def _break_windows(start: pd.Timestamp, total_s: float, tz: str) -> list[tuple[float, float]]:
    local_start = start.tz_convert(tz)
    day0 = local_start.normalize()
    days = int(total_s // 86400) + 2
    windows: list[tuple[float, float]] = []
    for d in range(-1, days):
        for a, b in BREAKS_LOCAL_H:
            ws = (day0 + pd.Timedelta(days=d, hours=a) - local_start).total_seconds()
            we = (day0 + pd.Timedelta(days=d, hours=b) - local_start).total_seconds()
            if we > 0 and ws < total_s:
                windows.append((max(ws, 0.0), we))
    return sorted(windows)


def simulate_cnc(
    asset_id: str,
    name: str,
    name_ko: str,
    *,
    ts: pd.DatetimeIndex,
    interval_s: float,
    normal_end: int,
    rng: np.random.Generator,
    tz: str = "Asia/Seoul",
    chatter_per_day: float = 3.0,
    coolant_faults_per_day: float = 0.3,
) -> AssetData:
    """Simulate one machining centre over the timestamps ``ts`` (every ``interval_s`` s).

    Faults are placed only after sample ``normal_end`` so that the start is clean training data.
    """
    spec = cnc_spec(asset_id, name, name_ko)
    n = len(ts)
    total_s = n * interval_s
    breaks = _break_windows(ts[0], total_s, tz)

    # --- the part schedule: a loop over parts (hundreds a day), not over samples ---------
    n_guess = int(total_s / 200) + 10
    recipes = sample_recipes(rng, n_guess)
    hardness = hardness_of(recipes["material_batch"])
    tool_life_s = rng.uniform(2.5, 4.5, size=n_guess) * 3600.0  # cutting seconds at 8000 rpm
    tool_limit = rng.uniform(0.9, 1.1, size=n_guess) * VB_LIMIT_MM
    change_at = rng.uniform(0.85, 1.0, size=n_guess)  # tool-life management's trigger

    seg_start: list[float] = []
    seg_phase: list[int] = []
    seg_part: list[int] = []
    seg_wear_rate: list[float] = []  # life fraction per cutting second
    part_rows: list[tuple[int, float, float, int]] = []  # part, start_s, end_s, tool
    tool_change_s: list[float] = [0.0]
    tool = 0
    u = float(rng.uniform(0.0, 0.8))  # the first tool is already part-used
    tool_u0 = [u]
    t = 0.0
    part = 0
    b = 0
    while t < total_s and part < n_guess:
        while b < len(breaks) and breaks[b][1] <= t:
            b += 1
        if b < len(breaks) and breaks[b][0] <= t:
            seg_start.append(t)
            seg_phase.append(BREAK)
            seg_part.append(-1)
            seg_wear_rate.append(0.0)
            t = breaks[b][1]
            continue
        r = recipes.iloc[part]
        speed = float(r["spindle_speed_rpm"])
        fz = float(r["feed_per_tooth_mm"])
        idle = float(rng.uniform(35.0, 70.0))
        change = u >= change_at[tool]
        if change:
            idle += 60.0  # the operator swaps the tool during load/unload
        ops = [
            (ROUGH, 90.0 * float(rng.uniform(0.9, 1.1)), 0.75 * speed),
            (SEMI, 50.0 * float(rng.uniform(0.9, 1.1)), 0.9 * speed),
            (FINISH, 70.0 * (0.08 / fz) * float(rng.uniform(0.95, 1.05)), speed),
        ]
        part_len = idle + sum(d for _, d, _ in ops)
        next_break = breaks[b][0] if b < len(breaks) else np.inf
        if t + part_len > next_break:
            # Not enough time before the break: wait idle for it.
            seg_start.append(t)
            seg_phase.append(IDLE)
            seg_part.append(-1)
            seg_wear_rate.append(0.0)
            t = next_break
            continue
        if change:
            tool += 1
            u = 0.0
            tool_u0.append(0.0)
            tool_change_s.append(t + idle / 2.0)
        seg_start.append(t)
        seg_phase.append(IDLE)
        seg_part.append(part)
        seg_wear_rate.append(0.0)
        p_start = t
        t += idle
        for op_phase, dur, op_speed in ops:
            rate = (op_speed / 8000.0) ** 2.5 / tool_life_s[tool] * hardness[part]
            seg_start.append(t)
            seg_phase.append(op_phase)
            seg_part.append(part)
            seg_wear_rate.append(rate)
            u += rate * dur
            t += dur
        part_rows.append((part, p_start, t, tool))
        part += 1

    starts_s = np.asarray(seg_start)
    t_s = np.arange(n) * interval_s
    seg = np.searchsorted(starts_s, t_s, side="right") - 1
    phase = np.asarray(seg_phase)[seg]
    part_idx = np.asarray(seg_part)[seg]
    machining = (phase >= ROUGH) & (phase <= FINISH)
    safe_part = np.clip(part_idx, 0, None)

    # --- tool wear: cumulative cutting, reset at each tool change -------------------------
    change_idx = np.ceil(np.asarray(tool_change_s) / interval_s).astype(np.int64)
    change_idx[0] = 0
    tool_of = np.searchsorted(change_idx, np.arange(n), side="right") - 1
    w = np.asarray(seg_wear_rate)[seg] * interval_s
    cum = np.cumsum(w)
    cum_before = np.concatenate([[0.0], cum])[np.clip(change_idx, 0, n)]
    life_u = np.asarray(tool_u0)[tool_of] + cum - cum_before[tool_of]
    vb = tool_limit[tool_of] * wear_curve(np.clip(life_u, 0.0, 1.2))

    # --- operating point per sample -------------------------------------------------------
    r_speed = recipes["spindle_speed_rpm"].to_numpy()[safe_part]
    r_fz = recipes["feed_per_tooth_mm"].to_numpy()[safe_part]
    r_doc = recipes["depth_of_cut_mm"].to_numpy()[safe_part]
    speed_factor = np.select([phase == ROUGH, phase == SEMI, phase == FINISH], [0.75, 0.9, 1.0], 0.0)
    fz_factor = np.select([phase == ROUGH, phase == SEMI], [1.3, 1.0], 1.0)
    doc = np.select([phase == ROUGH, phase == SEMI, phase == FINISH], [2.0, 1.0, r_doc], 0.0)
    rpm_cmd = r_speed * speed_factor
    rpm = lowpass(rpm_cmd, 1.0, interval_s, 0.0) + machining * rng.normal(0.0, 2.0, n)
    rpm = np.clip(rpm, 0.0, None)
    feed = np.where(machining, r_fz * fz_factor * TEETH * rpm_cmd, 0.0)
    mrr = doc * RADIAL_WIDTH_MM * feed / 1000.0  # cm³/min
    wear_share = vb / VB_LIMIT_MM
    load = np.where(
        machining,
        6.0 * rpm / 10000.0
        + 0.55 * mrr * hardness[safe_part] * (1.0 + 0.9 * np.clip(wear_share, 0, None) ** 1.2),
        0.0,
    )
    load += machining * (red_noise(rng, n, 3.0, interval_s, 1.5) + rng.normal(0.0, 0.5, n))

    # --- chatter episodes (after the normal period), snapped into roughing passes ---------
    rough_segments = np.flatnonzero(np.asarray(seg_phase) == ROUGH)
    rough_start_idx = np.ceil(starts_s[rough_segments] / interval_s).astype(np.int64)
    rough_end_idx = np.ceil(starts_s[np.minimum(rough_segments + 1, len(starts_s) - 1)] / interval_s).astype(
        np.int64
    )
    chatter_starts: list[int] = []
    chatter_ends: list[int] = []
    cand_s, _ = place_episodes(rng, n, normal_end, 2.0 * chatter_per_day * interval_s / 86400.0, 1, 1, 1)
    for c in cand_s:
        k = np.searchsorted(rough_start_idx, c)
        if k >= len(rough_start_idx):
            break
        s_i, e_i = int(rough_start_idx[k]), int(min(rough_end_idx[k], n))
        # Worn tools chatter more readily: accept with a probability rising with wear.
        if e_i - s_i < 3 or rng.random() > 0.25 + 0.75 * min(float(wear_share[s_i]), 1.0):
            continue
        if chatter_starts and s_i < chatter_ends[-1]:
            continue
        offset = int(rng.uniform(0.05, 0.4) * (e_i - s_i))
        dur = max(int(rng.uniform(15.0, 80.0) / interval_s), 2)
        chatter_starts.append(s_i + offset)
        chatter_ends.append(min(s_i + offset + dur, e_i))
    chatter = interval_mask(n, np.asarray(chatter_starts, np.int64), np.asarray(chatter_ends, np.int64))
    # Each episode has its own strength and frequency (which mode locks in), and builds up
    # over a few seconds rather than switching on.
    c_starts = np.asarray(chatter_starts, np.int64)
    c_ends = np.asarray(chatter_ends, np.int64)
    episode = np.clip(np.searchsorted(c_starts, np.arange(n), side="right") - 1, 0, None)
    amp_of = rng.uniform(4.0, 9.0, max(len(c_starts), 1))
    freq_of = rng.uniform(*CHATTER_BAND_HZ, max(len(c_starts), 1))
    build_up = ramp_profile(n, c_starts, c_ends, np.full(len(c_starts), 5.0 / interval_s))
    chatter_amp = amp_of[episode] * build_up * (0.6 + 0.4 * np.abs(np.sin(np.arange(n) * 0.7)))
    load += chatter * rng.normal(0.0, 4.0, n)

    vib = np.where(
        machining,
        0.4 + 0.02 * load + 0.5 * (rpm / 10000.0) ** 2 + 4.0 * vb,
        np.where(rpm > 50, 0.3, 0.15),
    )
    vib = vib * np.exp(rng.normal(0.0, 0.06, n)) + chatter_amp
    peak = np.where(machining, rpm * TEETH / 60.0 + rng.normal(0.0, 2.0, n), 29.5 + rng.normal(0.0, 0.3, n))
    chatter_freq = freq_of[episode] + red_noise(rng, n, 20.0, interval_s, 15.0)
    peak = np.where(chatter, chatter_freq, peak)

    # --- temperatures: shop floor over the day, spindle heat, coolant chiller -------------
    local = ts.tz_convert(tz)
    local_hour = local.hour.to_numpy() + local.minute.to_numpy() / 60.0
    ambient = (
        22.0
        + 2.5 * np.sin(2 * np.pi * (local_hour - 9.0) / 24.0)
        + red_noise(rng, n, 1800.0, interval_s, 0.4)
    )
    in_break = phase == BREAK
    coolant_starts, coolant_ends = place_episodes(
        rng,
        n,
        normal_end,
        coolant_faults_per_day * interval_s / 86400.0,
        int(1800 / interval_s),
        int(9000 / interval_s),
        int(3600 / interval_s),
    )
    coolant_fault = ramp_profile(
        n, coolant_starts, coolant_ends, np.full(len(coolant_starts), 600.0 / interval_s)
    )
    coolant_rise = coolant_fault * rng.uniform(6.0, 10.0)
    chiller = np.where(in_break, ambient, 21.0 + 0.2 * (ambient - 21.0) + 0.04 * load)
    coolant = lowpass(chiller + coolant_rise, 600.0, interval_s, 21.5) + rng.normal(0.0, 0.05, n)
    heat = 12.0 * (rpm / 10000.0) ** 1.5 + 0.15 * load
    spindle_t = ambient + lowpass(heat, 1500.0, interval_s, 8.0) + 0.4 * (coolant - 21.0)
    spindle_t += rng.normal(0.0, 0.05, n)

    # --- servo currents: the tool path moves X and Y in turn, Z holds the head ------------
    path = 2 * np.pi * t_s / 23.0
    x_cur = 1.2 + machining * 0.05 * load * (0.6 + 0.4 * np.sin(path)) + rng.normal(0.0, 0.05, n)
    y_cur = 1.2 + machining * 0.04 * load * (0.6 + 0.4 * np.cos(path)) + rng.normal(0.0, 0.05, n)
    z_cur = 2.0 + machining * 0.02 * load + rng.normal(0.0, 0.04, n)

    values = {
        "spindle_load": np.clip(load, 0.0, 150.0),
        "spindle_speed": rpm,
        "feed_rate": feed,
        "vibration_rms": vib,
        "vibration_peak_hz": np.clip(peak, 0.0, None),
        "spindle_temp": spindle_t,
        "coolant_temp": coolant,
        "x_axis_current": x_cur,
        "y_axis_current": y_cur,
        "z_axis_current": z_cur,
    }
    frame = pd.DataFrame({"ts": ts, **round_columns(values, CNC_SIGNALS)})

    kinds = ["chatter"] * len(chatter_starts) + ["coolant_fault"] * len(coolant_starts)
    anomalies = anomalies_frame(
        asset_id,
        ts,
        chatter_starts + coolant_starts.tolist(),
        chatter_ends + coolant_ends.tolist(),
        kinds,
    )
    truth = pd.DataFrame(
        {
            "ts": ts,
            "tool_wear_mm": np.round(vb, 4),
            "tool_id": tool_of,
            "phase": pd.Categorical.from_codes(phase, categories=pd.Index(PHASE_NAMES)),
            "part": part_idx,
            "chatter": chatter,
        }
    )
    change_ts = ts[np.clip(change_idx[1:], 0, n - 1)]
    events = pd.DataFrame(
        {
            "asset": np.array([asset_id] * len(change_ts), dtype=object),
            "ts": change_ts,
            "kind": np.array(["tool_change"] * len(change_ts), dtype=object),
            "detail": np.array(
                [
                    f"tool {k + 1} replaced at VB {vb[max(i - 1, 0)]:.3f} mm"
                    for k, i in enumerate(change_idx[1:])
                ],
                dtype=object,
            ),
        },
        columns=EVENT_COLUMNS,
    )
    parts = _parts_table(asset_id, ts, part_rows, recipes, interval_s, vb, chatter, coolant)
    return AssetData(spec, frame, anomalies, truth, events, parts)


def _parts_table(
    asset_id: str,
    ts: pd.DatetimeIndex,
    rows: list[tuple[int, float, float, int]],
    recipes: pd.DataFrame,
    interval_s: float,
    vb: np.ndarray,
    chatter: np.ndarray,
    coolant: np.ndarray,
) -> pd.DataFrame:
    """One row per finished part: when, with which recipe and tool, and its hidden state."""
    n = len(ts)
    done = [r for r in rows if r[2] / interval_s <= n]
    if not done:
        return pd.DataFrame()
    idx = np.array([r[0] for r in done])
    s = np.clip((np.array([r[1] for r in done]) / interval_s).astype(np.int64), 0, n - 1)
    e = np.clip((np.array([r[2] for r in done]) / interval_s).astype(np.int64) - 1, 0, n - 1)
    chat_cum = np.concatenate([[0], np.cumsum(chatter)])
    cool_cum = np.concatenate([[0.0], np.cumsum(coolant)])
    frame = recipes.iloc[idx].reset_index(drop=True)
    # The coolant the part actually saw, not the recipe's wish.
    frame["coolant_temp_c"] = np.round((cool_cum[e + 1] - cool_cum[s]) / np.maximum(e + 1 - s, 1), 1)
    frame.insert(0, "part_id", [f"{asset_id}-{i:06d}" for i in idx])
    frame.insert(1, "asset", asset_id)
    frame.insert(2, "start", ts[s])
    frame.insert(3, "end", ts[e])
    frame["tool_id"] = [f"{asset_id}-T{r[3] + 1:03d}" for r in done]
    frame["true_tool_wear_mm"] = np.round(vb[e], 4)
    frame["true_chatter"] = (chat_cum[e + 1] - chat_cum[s]) > 0
    return frame
