"""OEE by ISO 22400 against hand-computed worked examples (shifts across midnight in Asia/Seoul,
planned downtime, micro-stoppages, operator reasons, aggregation by summing times)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import duckdb
import pandas as pd
import pytest

from axhub.production import engine, kpi
from axhub.production.shifts import PlannedDowntime, ShiftCalendar
from axhub.production.states import StateRule, states_from_codes, states_from_rules

SEOUL = ZoneInfo("Asia/Seoul")


def kst(*args: int) -> datetime:
    return datetime(*args, tzinfo=SEOUL)  # type: ignore[misc]


def us(dt: datetime) -> int:
    return int(pd.Timestamp(dt).tz_convert("UTC").value // 1000)


def _run(states, windows, planned=None, reasons=None, counts=None, micro_stop_s=120.0) -> pd.DataFrame:
    def frame(rows, cols):
        return pd.DataFrame(rows or [], columns=list(cols)).astype(
            {c: "int64" for c in cols if c.endswith("_us")}
        )

    con = duckdb.connect()
    return engine.segments(
        con,
        states=frame(states, engine.STATES_COLUMNS),
        windows=windows,
        planned=frame(planned, engine.PLANNED_COLUMNS),
        reasons=frame(reasons, engine.REASONS_COLUMNS),
        counts=pd.DataFrame(counts or [], columns=list(engine.COUNTS_COLUMNS)).astype(
            {"ts_us": "int64", "good": float, "scrap": float, "ideal_s": float}
        ),
        micro_stop_s=micro_stop_s,
    )


def _night_shift_example() -> tuple[ShiftCalendar, pd.DataFrame]:
    """Monday's night shift 22:00-06:00 KST with a planned 30-minute break at 02:00."""
    cal = ShiftCalendar.from_config(
        "Asia/Seoul",
        [{"name": "night", "start": "22:00", "end": "06:00"}],
        [PlannedDowntime(kst(2026, 3, 3, 2, 0), kst(2026, 3, 3, 2, 30), "break")],
    )
    seg = _run(
        states=[
            ("m1", us(kst(2026, 3, 2, 21, 0)), "idle"),  # before the shift: not counted
            ("m1", us(kst(2026, 3, 2, 22, 0)), "running"),
            ("m1", us(kst(2026, 3, 2, 23, 0)), "down"),  # 45 min unplanned stop
            ("m1", us(kst(2026, 3, 2, 23, 45)), "running"),
            ("m1", us(kst(2026, 3, 3, 1, 0)), "idle"),  # a 1-minute micro-stoppage
            ("m1", us(kst(2026, 3, 3, 1, 1)), "running"),
        ],
        windows=_windows(cal, "m1", kst(2026, 3, 2), kst(2026, 3, 4), "shift"),
        planned=[("m1", r.start_us, r.end_us) for r in _planned(cal, kst(2026, 3, 2), kst(2026, 3, 4))],
        reasons=[("m1", us(kst(2026, 3, 2, 23, 0)), us(kst(2026, 3, 2, 23, 45)), "spindle alarm")],
        counts=[
            ("m1", us(kst(2026, 3, 3, 5, 0)), 300, 6, 60.0),
            ("m1", us(kst(2026, 3, 3, 5, 59)), 72, 2, 60.0),
            ("m1", us(kst(2026, 3, 3, 7, 0)), 50, 0, 60.0),  # after the shift: not counted
        ],
    )
    return cal, seg


def _windows(cal: ShiftCalendar, asset: str, start: datetime, end: datetime, key: str) -> pd.DataFrame:
    w = cal.windows(start, end)
    return pd.DataFrame({"asset": asset, "start_us": w["start_us"], "end_us": w["end_us"], "period": w[key]})


def _planned(cal: ShiftCalendar, start: datetime, end: datetime):
    return list(cal.planned_downtime(start, end).itertuples())


def test_night_shift_across_midnight_matches_the_worked_example() -> None:
    cal, seg = _night_shift_example()
    windows = cal.windows(kst(2026, 3, 2), kst(2026, 3, 4))
    # The night shift belongs to Monday, the day it starts, and lasts 8 hours.
    monday = windows[windows["shift"] == "2026-03-02/night"].iloc[0]
    assert (monday.end_us - monday.start_us) == 8 * 3600 * 1_000_000
    assert monday.day == "2026-03-02" and monday.week == "2026-W10"

    fig = kpi.figures(seg[seg["period"] == "2026-03-02/night"])
    # POT 480 min; PDT 30 min (break); PBT 450; down 45 + micro-stop 1 -> APT 404 min.
    assert fig.planned_operation_s == 480 * 60
    assert fig.planned_down_s == 30 * 60
    assert fig.planned_busy_s == 450 * 60
    assert fig.production_s == 404 * 60
    assert fig.down_s == 45 * 60
    assert fig.produced == 380 and fig.good == 372 and fig.scrap == 8
    assert fig.availability == pytest.approx(404 / 450)
    assert fig.performance == pytest.approx(380 / 404)
    assert fig.quality == pytest.approx(372 / 380)
    # OEE = good parts x ideal cycle / planned busy time.
    assert fig.oee == pytest.approx(372 / 450)
    assert fig.micro_stops == 1 and fig.micro_stop_s == 60


def test_loss_pareto_names_reasons_micro_stops_speed_and_scrap() -> None:
    _, seg = _night_shift_example()
    losses = kpi.losses(seg[seg["period"] == "2026-03-02/night"])
    by_cause = dict(zip(losses["cause"], losses["seconds"], strict=True))
    assert by_cause["spindle alarm"] == 45 * 60
    assert by_cause["micro_stops"] == 60
    assert by_cause["speed"] == pytest.approx((404 - 380) * 60)
    assert by_cause["scrap"] == pytest.approx(8 * 60)
    assert list(losses["seconds"]) == sorted(losses["seconds"], reverse=True)
    assert losses["share"].sum() == pytest.approx(1.0)


def test_day_with_planned_downtime_and_a_planned_stop_state() -> None:
    # Two day shifts; on Tuesday 2 h of planned maintenance in the calendar and 1 h of planned_stop.
    cal = ShiftCalendar.from_config(
        "Asia/Seoul",
        [{"name": "A", "start": "06:00", "end": "14:00"}, {"name": "B", "start": "14:00", "end": "22:00"}],
        [PlannedDowntime(kst(2026, 3, 3, 8, 0), kst(2026, 3, 3, 10, 0), "PM")],
    )
    windows = _windows(cal, "m2", kst(2026, 3, 3), kst(2026, 3, 4), "day")
    seg = _run(
        states=[
            ("m2", us(kst(2026, 3, 3, 0, 0)), "running"),
            ("m2", us(kst(2026, 3, 3, 15, 0)), "planned_stop"),
            ("m2", us(kst(2026, 3, 3, 16, 0)), "setup"),
            ("m2", us(kst(2026, 3, 3, 16, 30)), "running"),
        ],
        windows=windows,
        planned=[("m2", r.start_us, r.end_us) for r in _planned(cal, kst(2026, 3, 3), kst(2026, 3, 4))],
        counts=[("m2", us(kst(2026, 3, 3, 21, 0)), 700, 0, 36.0)],
    )
    fig = kpi.figures(seg)
    # POT 16 h; PDT 2 h (PM) + 1 h (planned stop) = 3 h; PBT 13 h; setup 0.5 h -> APT 12.5 h.
    assert fig.planned_operation_s == 16 * 3600
    assert fig.planned_down_s == 3 * 3600
    assert fig.production_s == 12.5 * 3600
    assert fig.setup_s == 0.5 * 3600
    assert fig.availability == pytest.approx(12.5 / 13)
    assert fig.performance == pytest.approx(700 * 36 / (12.5 * 3600))
    assert fig.quality == 1.0
    assert set(seg["period"]) == {"2026-03-03"}


def test_aggregation_sums_times_rather_than_averaging_ratios() -> None:
    cal = ShiftCalendar.from_config("UTC", [{"name": "A", "start": "00:00", "end": "08:00"}])
    start, end = datetime(2026, 3, 2, tzinfo=ZoneInfo("UTC")), datetime(2026, 3, 3, tzinfo=ZoneInfo("UTC"))
    w = cal.windows(start, end)
    windows = pd.concat(
        [
            pd.DataFrame({"asset": a, "start_us": w.start_us, "end_us": w.end_us, "period": w.shift})
            for a in "xy"
        ]
    )
    t0 = us(start)
    seg = _run(
        states=[("x", t0, "running"), ("y", t0, "down"), ("y", t0 + 2 * 3600 * 10**6, "running")],
        windows=windows,
        counts=[("x", t0 + 10**6, 480, 0, 60.0), ("y", t0 + 10**6, 360, 0, 60.0)],
    )
    per_machine = kpi.figures_by(seg, ["asset"]).set_index("asset")
    assert per_machine.loc["x", "availability"] == 1.0
    assert per_machine.loc["y", "availability"] == pytest.approx(6 / 8)
    line = kpi.figures(seg)
    assert line.availability == pytest.approx(14 / 16)  # not the mean of 1.0 and 0.75 weighted equally
    assert line.oee == pytest.approx((480 + 360) * 60 / (16 * 3600))


def test_no_data_before_the_first_state_counts_as_unknown_loss() -> None:
    cal = ShiftCalendar.from_config("UTC", [{"name": "A", "start": "00:00", "end": "04:00"}])
    start = datetime(2026, 3, 2, tzinfo=ZoneInfo("UTC"))
    seg = _run(
        states=[("z", us(start) + 3600 * 10**6, "running")],
        windows=_windows(cal, "z", start, datetime(2026, 3, 3, tzinfo=ZoneInfo("UTC")), "shift"),
    )
    fig = kpi.figures(seg)
    assert fig.unknown_s == 3600 and fig.production_s == 3 * 3600
    assert fig.availability == pytest.approx(0.75)
    assert fig.oee is None  # no counts: performance and quality are unknown, not 100 %


def test_states_from_a_state_tag_and_from_rules() -> None:
    ts = pd.date_range("2026-03-02", periods=6, freq="1min", tz="UTC").to_numpy()
    tagged = states_from_codes(ts, pd.Series([1, 1, 0, 0, 9, 1]).to_numpy(dtype=float))
    assert list(tagged["state"]) == ["running", "down", "unknown", "running"]

    wide = pd.DataFrame(
        {"spindle_speed": [0, 1200, 1200, 0, 1500, 0], "spindle_load": [0, 40, 2, 0, 55, 0]},
        index=pd.DatetimeIndex(ts),
    )
    rules = [
        StateRule.from_dict(
            {
                "state": "running",
                "when": [
                    {"signal": "spindle_speed", "op": ">", "value": 100},
                    {"signal": "spindle_load", "op": ">", "value": 10},
                ],
            }
        )
    ]
    derived = states_from_rules(wide, rules)
    assert list(derived["state"]) == ["idle", "running", "idle", "running", "idle"]
