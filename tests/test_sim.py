"""The factory simulator: deterministic, physically plausible, and honest about its labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from axhub.core.errors import AxHubError
from axhub.core.readings import READINGS_SCHEMA
from axhub.sim import Plant, PlantSpec, label_anomalies, simulate_plant
from axhub.sim._common import asset_rng, time_index
from axhub.sim.cnc import CHATTER_BAND_HZ, simulate_cnc
from axhub.sim.files import read_asset_csv, write_plant
from axhub.sim.pump import simulate_pump
from axhub.sim.quality import (
    NOMINAL_RECIPE,
    PARAMETER_SPACE,
    quality_response,
    sample_recipes,
    simulate_quality_records,
)
from axhub.sim.turbine import REGIMES, simulate_turbine, turbine_fleet

START = pd.Timestamp("2025-03-03 06:00", tz="Asia/Seoul").tz_convert("UTC")


@pytest.fixture(scope="module")
def busy_plant() -> Plant:
    """Half a day with many faults, so every fault kind has examples."""
    return simulate_plant(0.5, seed=11, spec=PlantSpec(fault_rate=8.0))


def test_same_seed_gives_identical_data_and_other_seed_differs() -> None:
    a = simulate_plant(0.1, seed=5)
    b = simulate_plant(0.1, seed=5)
    c = simulate_plant(0.1, seed=6)
    for asset in a.assets:
        pd.testing.assert_frame_equal(a.frames[asset], b.frames[asset])
        assert not a.frames[asset].drop(columns="ts").equals(c.frames[asset].drop(columns="ts"))
    pd.testing.assert_frame_equal(a.ground_truth, b.ground_truth)
    pd.testing.assert_frame_equal(a.quality, b.quality)


def test_frames_have_signals_units_and_regular_utc_time() -> None:
    plant = simulate_plant(0.05, seed=1, interval_s=2.0)
    n = round(0.05 * 86400 / 2.0)
    meta = plant.metadata()
    assert meta["site"] == "Changwon plant 1"
    assets = meta["assets"]
    assert isinstance(assets, list)
    kinds = {a["id"]: a["kind"] for a in assets}
    assert kinds == {"cnc-01": "cnc", "cnc-02": "cnc", "pump-01": "pump", "turbine-01": "turbine"}
    for asset_id, data in plant.assets.items():
        frame = data.frame
        assert list(frame.columns) == ["ts", *data.spec.signal_names]
        assert len(frame) == n
        assert str(frame["ts"].dt.tz) == "UTC"
        assert frame["ts"].iloc[0] == START
        assert (frame["ts"].diff().dropna() == pd.Timedelta(seconds=2)).all()
        values = frame.drop(columns="ts").to_numpy()
        assert np.isfinite(values).all(), asset_id
        for sig in data.spec.signals:
            assert sig.unit and sig.description_en and sig.description_ko
            scaled = frame[sig.name].to_numpy() * 10.0**sig.decimals
            assert np.allclose(scaled, np.round(scaled), atol=1e-6), sig.name  # rounded to resolution
    units = {s.name: s.unit for s in plant.assets["pump-01"].spec.signals}
    assert units["suction_pressure"] == "bar" and units["flow"] == "m³/h"
    cnc = plant.frames["cnc-01"]
    assert cnc["spindle_speed"].max() > 4000 and cnc["spindle_speed"].min() == 0  # cutting and idle
    assert plant.n_points == sum(len(f) * (f.shape[1] - 1) for f in plant.frames.values())


def test_tool_wear_grows_while_cutting_and_resets_at_tool_change() -> None:
    ts = time_index(START, 86400 // 2, 2.0)
    data = simulate_cnc(
        "cnc-x", "CNC x", "CNC x", ts=ts, interval_s=2.0, normal_end=len(ts), rng=asset_rng(3, "cnc-x")
    )
    vb = data.truth["tool_wear_mm"].to_numpy()
    tool = data.truth["tool_id"].to_numpy()
    same_tool = tool[1:] == tool[:-1]
    assert (np.diff(vb)[same_tool] >= 0).all()
    changes = np.flatnonzero(~same_tool) + 1
    assert len(changes) >= 2
    assert len(data.events) == len(changes) and (data.events["kind"] == "tool_change").all()
    assert (vb[changes] < 0.05).all() and (vb[changes - 1] > 0.2).all()  # worn tool out, new one in
    # Wear only grows while cutting.
    phase = data.truth["phase"].astype(str).to_numpy()
    grew = np.flatnonzero(np.diff(vb) > 0) + 1
    assert set(phase[grew]) <= {"roughing", "semi_finishing", "finishing"}
    # A worn tool loads the spindle and shakes more in the same finishing pass.
    finishing = phase == "finishing"
    frame = data.frame
    worn, fresh = finishing & (vb > 0.22), finishing & (vb < 0.12)
    assert worn.sum() > 100 and fresh.sum() > 100
    assert frame["vibration_rms"][worn].mean() > frame["vibration_rms"][fresh].mean() + 0.3
    assert frame["spindle_load"][worn].mean() > frame["spindle_load"][fresh].mean() * 1.2
    # Parts record the tool that cut them.
    assert data.parts is not None and data.parts["tool_id"].nunique() == len(changes) + 1


def test_chatter_raises_vibration_at_its_characteristic_band() -> None:
    ts = time_index(START, 86400, 1.0)
    data = simulate_cnc(
        "cnc-c",
        "CNC c",
        "CNC c",
        ts=ts,
        interval_s=1.0,
        normal_end=0,
        rng=asset_rng(4, "cnc-c"),
        chatter_per_day=40.0,
    )
    chatter = data.truth["chatter"].to_numpy()
    cutting = data.truth["phase"].astype(str).isin(["roughing"]).to_numpy()
    assert chatter.sum() > 200
    assert (data.anomalies["kind"] == "chatter").sum() >= 10
    vib = data.frame["vibration_rms"]
    assert vib[chatter].mean() > 2.5 * vib[cutting & ~chatter].mean()
    peak = data.frame["vibration_peak_hz"][chatter]
    lo, hi = CHATTER_BAND_HZ
    assert ((peak > lo - 100) & (peak < hi + 100)).mean() > 0.95


def test_pump_faults_shift_the_expected_signals() -> None:
    ts = time_index(START, 2 * 86400 // 2, 2.0)
    n = len(ts)
    data = simulate_pump(
        "pump-x",
        "Pump x",
        "Pump x",
        ts=ts,
        interval_s=2.0,
        normal_end=n // 3,
        rng=asset_rng(2, "pump-x"),
        cavitation_per_day=6.0,
        valve_faults_per_day=3.0,
    )
    f, gt = data.frame, data.anomalies
    assert set(gt["kind"]) == {"cavitation", "valve_fault"}
    cav = label_anomalies(gt[gt["kind"] == "cavitation"], "pump-x", f["ts"])
    valve = label_anomalies(gt[gt["kind"] == "valve_fault"], "pump-x", f["ts"])
    normal = ~label_anomalies(gt, "pump-x", f["ts"])
    only_cav, only_valve = cav & ~valve, valve & ~cav
    assert f["vibration_rms"][only_cav].mean() > 2.0 * f["vibration_rms"][normal].mean()
    assert f["suction_pressure"][only_cav].mean() < f["suction_pressure"][normal].mean() - 0.4
    assert f["flow"][only_cav].diff().std() > 3 * f["flow"][normal].diff().std()  # noisy flow
    assert f["flow"][only_valve].mean() < 0.9 * f["flow"][normal].mean()
    assert f["discharge_pressure"][only_valve].mean() > f["discharge_pressure"][normal].mean()
    assert not (cav | valve)[: n // 3].any()


def test_turbine_fleet_degrades_to_failure_across_regimes() -> None:
    train, test = turbine_fleet(n_train=6, n_test=4, seed=2)
    assert {"unit", "cycle", "regime", "load_setpoint", "exhaust_gas_temp", "health", "rul"} <= set(
        train.columns
    )
    assert train["regime"].nunique() == len(REGIMES)
    for _, unit in train.groupby("unit"):
        assert (np.diff(unit["health"].to_numpy()) <= 0).all()
        assert unit["rul"].iloc[-1] == 0 and unit["health"].iloc[-1] <= 0.001
        assert (unit["rul"].to_numpy() == unit["cycle"].max() - unit["cycle"].to_numpy()).all()
        assert 130 <= len(unit) <= 360
    # Within one regime, a worn engine runs hotter than a new one.
    r = train[train["regime"] == 4]
    assert (
        r[r["health"] < 0.3]["exhaust_gas_temp"].mean() > r[r["health"] > 0.8]["exhaust_gas_temp"].mean() + 20
    )
    # The operating regime moves sensors much more than wear does (as in C-MAPSS).
    egt_by_regime = train.groupby("regime")["exhaust_gas_temp"].mean()
    assert egt_by_regime.max() - egt_by_regime.min() > 80
    # Test units stop before failure; rul holds the truth.
    last = test.groupby("unit").tail(1)
    assert (last["rul"] > 0).all() and len(last) == 4


def test_plant_turbine_time_series_loses_health_and_rul() -> None:
    ts = time_index(START, 86400 // 5, 5.0)
    data = simulate_turbine(
        "gt", "GT", "GT", ts=ts, interval_s=5.0, normal_end=len(ts) * 2 // 5, rng=asset_rng(1, "gt")
    )
    health = data.truth["health"].to_numpy()
    rul = data.truth["rul_h"].to_numpy()
    assert (np.diff(health) <= 0).all() and health[0] > 0.9 and health[-1] < 0.3
    assert (np.diff(rul) < 0).all() and rul[-1] > 0
    assert data.truth["regime"].nunique() >= 3
    assert "degradation" in set(data.anomalies["kind"])
    f = data.frame
    full_load = f["load_setpoint"] == 100.0
    early, late = full_load & (health > 0.9), full_load & (health < 0.4)
    assert f["exhaust_gas_temp"][late].mean() > f["exhaust_gas_temp"][early].mean() + 15


def test_quality_is_better_near_the_optimum() -> None:
    better = dict(
        NOMINAL_RECIPE,
        spindle_speed_rpm=9800.0,
        feed_per_tooth_mm=0.055,
        depth_of_cut_mm=0.5,
        clamp_pressure_bar=62.0,
        coolant_temp_c=21.0,
    )
    nominal = quality_response(NOMINAL_RECIPE, tool_wear_mm=0.1)
    best = quality_response(better, tool_wear_mm=0.1)
    assert best["surface_roughness_ra_um"].iloc[0] < 0.8 * nominal["surface_roughness_ra_um"].iloc[0]
    assert abs(best["dimension_deviation_mm"].iloc[0]) < abs(nominal["dimension_deviation_mm"].iloc[0])
    # The optimum lies inside the space: pushing feed to either bound is worse.
    for fz in PARAMETER_SPACE["feed_per_tooth_mm"]:
        edge = quality_response(dict(better, feed_per_tooth_mm=fz), tool_wear_mm=0.1)
        assert edge["surface_roughness_ra_um"].iloc[0] > best["surface_roughness_ra_um"].iloc[0]
    # Noisy records show the same thing; worn tools and chatter make parts worse.
    rec = simulate_quality_records(3000, seed=3)
    assert {"material_batch", "passed", "surface_roughness_ra_um"} <= set(rec.columns)
    near = (rec["feed_per_tooth_mm"].between(0.045, 0.065)) & (rec["spindle_speed_rpm"] > 9000)
    far = (rec["feed_per_tooth_mm"] > 0.09) & (rec["spindle_speed_rpm"].between(8200, 9000))
    assert near.sum() > 20 and far.sum() > 20
    assert rec["passed"][near].mean() > rec["passed"][far].mean()
    assert rec["surface_roughness_ra_um"][near].mean() < rec["surface_roughness_ra_um"][far].mean()
    worn = rec["true_tool_wear_mm"] > 0.25
    assert (
        rec["surface_roughness_ra_um"][worn].mean()
        > rec["surface_roughness_ra_um"][rec["true_tool_wear_mm"] < 0.08].mean()
    )
    recipes = sample_recipes(np.random.default_rng(0), 500)
    for name, (lo, hi) in PARAMETER_SPACE.items():
        assert recipes[name].between(lo, hi).all()


def test_normal_period_is_clean_and_faults_follow(busy_plant: Plant) -> None:
    gt = busy_plant.ground_truth
    assert list(gt.columns) == ["asset", "start", "end", "kind"]
    assert (gt["start"] >= busy_plant.normal_end).all()
    assert (gt["end"] >= gt["start"]).all()
    assert {"chatter", "cavitation", "valve_fault", "degradation"} <= set(gt["kind"])
    span = busy_plant.end - busy_plant.start
    assert abs((busy_plant.normal_end - busy_plant.start) / span - 0.4) < 0.01
    for asset, frame in busy_plant.frames.items():
        label = busy_plant.is_anomaly(asset)
        before = (frame["ts"] < busy_plant.normal_end).to_numpy()
        assert not label[before].any()
        if (gt["asset"] == asset).any():
            assert label[~before].any()
    # Quality records tie to the machines' parts.
    q = busy_plant.quality
    assert set(q["asset"]) == {"cnc-01", "cnc-02"}
    assert q["part_id"].is_unique and (q["end"] > q["start"]).all()
    with pytest.raises(AxHubError):
        busy_plant.is_anomaly("no-such-asset")


def test_readings_batches_carry_every_point() -> None:
    plant = simulate_plant(0.02, seed=2)
    batches = list(plant.to_readings(rows_per_batch=400))
    assert all(b.schema == READINGS_SCHEMA for b in batches)
    assert sum(b.num_rows for b in batches) == plant.n_points
    table = pd.concat([b.to_pandas() for b in batches if b["asset"][0].as_py() == "pump-01"])
    flow = table[table["signal"] == "flow"].sort_values("ts")
    frame = plant.frames["pump-01"]
    assert np.array_equal(flow["value"].to_numpy(), frame["flow"].to_numpy())
    assert (flow["ts"].to_numpy() == frame["ts"].to_numpy()).all()


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(AxHubError, match="days"):
        simulate_plant(0, seed=1)
    with pytest.raises(AxHubError, match="interval"):
        simulate_plant(1, seed=1, interval_s=-1)
    with pytest.raises(AxHubError, match="start"):
        simulate_plant(1, seed=1, start="yesterday-ish")


@pytest.mark.parametrize("interval_s", [1.0, 0.5])
def test_files_round_trip(tmp_path: Path, interval_s: float) -> None:
    # Start given in UTC: the CSV must still show plant local time (UTC+9).
    plant = simulate_plant(
        0.01, seed=4, interval_s=interval_s, start="2025-03-02T21:00:00Z", spec=PlantSpec(fault_rate=50.0)
    )
    manifest = write_plant(plant, tmp_path, fleet_units=(2, 2))
    for asset, frame in plant.frames.items():
        text = (tmp_path / f"{asset}.csv").read_text().splitlines()
        assert text[1].startswith("2025-03-03 06:00:00") and "+09:00" in text[1]  # local time with offset
        back = read_asset_csv(tmp_path / f"{asset}.csv")
        pd.testing.assert_frame_equal(back, frame, check_dtype=False)
    gt = pd.read_csv(tmp_path / "ground_truth.csv")
    assert len(gt) == len(plant.ground_truth) > 0
    for col in ("start", "end"):
        back_ts = pd.to_datetime(gt[col], utc=True, format="ISO8601").dt.as_unit("us")
        assert (back_ts.to_numpy() == plant.ground_truth[col].to_numpy()).all()
    written = {f["file"] for f in manifest["files"]}  # type: ignore[attr-defined]
    expected = {
        "ground_truth.csv",
        "quality_records.csv",
        "assets.json",
        "turbine_fleet_train.csv",
        "turbine_fleet_test.csv",
        "events.csv",
        "cnc-01.csv",
        "pump-01_truth.csv",
    }
    assert expected <= written
    assert all((tmp_path / name).is_file() for name in written)
    on_disk = json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))
    assert on_disk["seed"] == 4 and on_disk["timezone"] == "Asia/Seoul"
    cnc_entry = next(f for f in on_disk["files"] if f["file"] == "cnc-01.csv")
    assert {"name": "spindle_load", "dtype": "float64", "unit": "%"} in cnc_entry["columns"]
    assets = json.loads((tmp_path / "assets.json").read_text(encoding="utf-8"))
    assert assets["site_ko"] == "창원 1공장"
    assert any(s["description_ko"] == "주축 부하율" for s in assets["assets"][0]["signals"])


def test_cli_writes_files_and_a_summary(tmp_path: Path) -> None:
    from axhub.cli.main import app

    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "sim",
            "--days",
            "0.02",
            "--seed",
            "3",
            "--out",
            str(out),
            "--fleet-train",
            "2",
            "--fleet-test",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "cnc-01" in result.output and "total" in result.output
    assert (out / "manifest.json").is_file() and (out / "pump-01.csv").is_file()
    bad = CliRunner().invoke(app, ["sim", "--days", "-1", "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "days must be positive" in bad.output


def test_live_replay_stamps_are_microseconds_whatever_the_frames_resolution(tmp_path: Path) -> None:
    """A frame made by the simulator (ns) and the same file read back by pandas (us under
    pandas 3) are replayed with the same stamps: the real instants, in microseconds."""
    from axhub.sim.live import stamps_us

    frame = simulate_plant(days=0.01, seed=7).frames["pump-01"]
    frame.head(3).to_csv(tmp_path / "pump.csv", index=False)
    read_back = pd.read_csv(tmp_path / "pump.csv", parse_dates=["ts"])
    first = pd.Timestamp(frame["ts"].iloc[0])
    expected = round(first.timestamp() * 1_000_000)
    for ts in (frame["ts"].head(3), read_back["ts"], read_back["ts"].dt.as_unit("ms")):
        got = stamps_us(ts)
        assert got[0] == expected, ts.dtype
        assert got[1] - got[0] == round((frame["ts"].iloc[1] - first).total_seconds() * 1_000_000)
