"""Sliding windows over multivariate series, never crossing a series (group) boundary."""

from __future__ import annotations

import numpy as np
import pandas as pd

from axhub.registry.bundle import make_graph_input


def windows_by_group(
    frame: pd.DataFrame,
    columns: list[str],
    length: int,
    *,
    group: str | None = None,
    stride: int = 1,
    flatten: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Windows ``(n, length, F)`` (or ``(n, length*F)``) and the row index each window ends at.

    Rows are taken in the frame's order within each group (sort by time first).
    """
    x = frame[columns].to_numpy(dtype=np.float64)
    groups = frame[group].to_numpy() if group else None
    step = {"op": "window", "length": int(length), "stride": int(stride), "flatten": flatten}
    windows, layout = make_graph_input(x, [step], groups)
    ends = np.concatenate([rows[length - 1 :: stride][:count] for rows, count in layout])
    return windows, frame.index.to_numpy()[ends]
