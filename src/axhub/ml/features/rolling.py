"""Trailing (causal) rolling statistics per signal and per series."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd


def rolling_features(
    frame: pd.DataFrame,
    columns: Sequence[str],
    window: int,
    *,
    stats: Sequence[str] = ("mean", "std", "min", "max"),
    group: str | None = None,
) -> pd.DataFrame:
    """``<signal>_<stat>_<window>`` columns over the trailing ``window`` rows (``min_periods=1``;
    the std of a single row is 0). Causal, so it can be computed the same way on a live stream."""
    source = frame.groupby(frame[group], sort=False)[list(columns)] if group else frame[list(columns)]
    rolled = source.rolling(window, min_periods=1)
    out: dict[str, pd.Series] = {}
    for stat in stats:
        values = getattr(rolled, stat)()
        if group:
            values = values.reset_index(level=0, drop=True)
        values = values.reindex(frame.index)
        if stat == "std":
            values = values.fillna(0.0)
        for column in columns:
            out[f"{column}_{stat}_{window}"] = values[column]
    return pd.DataFrame(out, index=frame.index)
