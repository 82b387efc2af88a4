"""Times as Korean Excel and PLC loggers write them, read without a format string.

Korean Windows Excel and many loggers write year-month-day with an AM/PM word:
``2026-03-02 오후 2:15:00``, ``2026. 3. 2. 오후 2:15``, ``2026/03/02 14:15``,
``2026-03-02 2:15:00 PM``, ``2026.03.02 14:15:30.250``. One vectorised regular expression takes
them apart (pandas ``str.extract``, no per-row Python); 오전/AM and 오후/PM move the hour
(12 오전 is midnight, 12 오후 noon). Only year-month-day order is accepted: a day-first or
month-first date is ambiguous and needs an explicit ``time_format``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

_MERIDIEM = r"(오전|오후|AM|PM|am|pm|A\.M\.|P\.M\.)"
_PATTERN = (
    r"^\s*(?P<y>\d{4})\s*[-./년]\s*(?P<mo>\d{1,2})\s*[-./월]\s*(?P<d>\d{1,2})\s*[.일]?"
    r"(?:[\sT]+(?:" + _MERIDIEM.replace("(", "(?P<m1>", 1) + r"\s*)?"
    r"(?P<h>\d{1,2})\s*[:시]\s*(?P<mi>\d{2})\s*(?:[:분]\s*(?P<s>\d{2})(?P<f>\.\d{1,6})?\s*초?)?"
    r"\s*(?:" + _MERIDIEM.replace("(", "(?P<m2>", 1) + r")?)?\s*$"
)
_PM = {"오후", "PM", "pm", "P.M."}
_AM = {"오전", "AM", "am", "A.M."}


def parse_local_formats(strings: pd.Series) -> pd.Series:
    """Naive datetimes (``datetime64[ns]``) of what matched; NaT elsewhere."""
    parts = strings.astype("string").str.extract(_PATTERN)
    if parts.empty or parts["y"].isna().all():
        return pd.Series(pd.NaT, index=strings.index, dtype="datetime64[ns]")
    num = {k: pd.to_numeric(parts[k], errors="coerce") for k in ("y", "mo", "d", "h", "mi", "s")}
    hour = num["h"].fillna(0)
    meridiem = parts["m1"].fillna(parts["m2"])
    pm = meridiem.isin(list(_PM)).to_numpy()
    am = meridiem.isin(list(_AM)).to_numpy()
    with_word = pm | am
    hour_np = hour.to_numpy(dtype=np.float64)
    # 12 오전 = 00h, 1-11 오후 = 13-23h; an hour over 12 with a word is an error.
    bad_word = with_word & ((hour_np > 12) | (hour_np < 1) & ~np.isnan(hour_np))
    hour_np = np.where(am & (hour_np == 12), 0, hour_np)
    hour_np = np.where(pm & (hour_np < 12), hour_np + 12, hour_np)
    frac = pd.to_numeric(parts["f"], errors="coerce").fillna(0.0).to_numpy(dtype=np.float64)
    frame = pd.DataFrame(
        {
            "year": num["y"],
            "month": num["mo"],
            "day": num["d"],
            "hour": hour_np,
            "minute": num["mi"].fillna(0),
            "second": num["s"].fillna(0),
        },
        index=strings.index,
    )
    ok = frame["year"].notna().to_numpy() & ~bad_word
    out = pd.Series(pd.NaT, index=strings.index, dtype="datetime64[ns]")
    if ok.any():
        good = frame[ok]
        stamps = pd.to_datetime(good, errors="coerce") + pd.to_timedelta(frac[ok], unit="s")
        out[ok] = stamps.to_numpy()
    return out
