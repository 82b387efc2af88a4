"""NASA C-MAPSS turbofan run-to-failure data (Saxena et al., PHM08).

Files are space-separated text without a header: unit, cycle, 3 operating settings and 21
sensors per row. ``train_FD00x`` run to failure; ``test_FD00x`` stop early and ``RUL_FD00x``
holds the true remaining life at the last test cycle of each unit, in unit order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from axhub.core.errors import InputProblem, InputValidationError
from axhub.ml.datasets.common import dataset_folder

SETTING_COLUMNS = [f"setting_{i}" for i in range(1, 4)]
SENSOR_COLUMNS = [f"s_{i}" for i in range(1, 22)]
CMAPSS_COLUMNS = ["unit", "cycle", *SETTING_COLUMNS, *SENSOR_COLUMNS]


@dataclass(frozen=True)
class CmapssSubset:
    """One subset (e.g. FD001): training trajectories, cut test trajectories, true test RUL."""

    name: str
    train: pd.DataFrame
    test: pd.DataFrame
    test_rul: np.ndarray  # true RUL at the last cycle of each test unit, in sorted unit order

    @property
    def test_units(self) -> np.ndarray:
        return np.sort(self.test["unit"].unique())


def _parse_float(token: str) -> float | None:
    try:
        value = float(token)
    except ValueError:
        return None
    return value if np.isfinite(value) else None


def read_cmapss_table(path: Path) -> pd.DataFrame:
    """Read one ``train_``/``test_`` file into a frame with :data:`CMAPSS_COLUMNS`.

    Every row must have 26 finite numbers, integer unit and cycle, cycles increasing within a
    unit; otherwise the error names the file, row (1-based line) and field.
    """
    path = Path(path)
    problems: list[InputProblem] = []
    rows: list[list[float]] = []
    with path.open() as handle:
        for line_no, line in enumerate(handle, start=1):
            tokens = line.split()
            if not tokens:
                continue
            if len(tokens) != len(CMAPSS_COLUMNS):
                problems.append(
                    InputProblem(
                        str(path),
                        line_no,
                        None,
                        f"expected {len(CMAPSS_COLUMNS)} values, found {len(tokens)}",
                    )
                )
                continue
            values: list[float] = []
            for field_name, token in zip(CMAPSS_COLUMNS, tokens, strict=True):
                value = _parse_float(token)
                if value is None:
                    problems.append(
                        InputProblem(str(path), line_no, field_name, f"'{token}' is not a finite number")
                    )
                    break
                if field_name in ("unit", "cycle") and (value != int(value) or value < 1):
                    problems.append(
                        InputProblem(str(path), line_no, field_name, f"'{token}' is not a positive integer")
                    )
                    break
                values.append(value)
            else:
                rows.append(values)
            if len(problems) >= 20:
                break
    if not problems and not rows:
        problems.append(InputProblem(str(path), None, None, "the file holds no data rows"))
    if problems:
        raise InputValidationError(
            problems, hint="C-MAPSS rows are 26 space-separated numbers: unit, cycle, 3 settings, 21 sensors"
        )
    frame = pd.DataFrame(np.asarray(rows, dtype=np.float64), columns=CMAPSS_COLUMNS)
    frame["unit"] = frame["unit"].astype(np.int64)
    frame["cycle"] = frame["cycle"].astype(np.int64)
    # Cycles must increase within a unit, or windows and RUL targets make no sense.
    step = frame.groupby("unit")["cycle"].diff()
    bad = np.flatnonzero((step <= 0).to_numpy())
    if bad.size:
        row = int(bad[0])
        raise InputValidationError(
            InputProblem(
                str(path),
                row + 1,
                "cycle",
                f"cycle {frame['cycle'].iat[row]} does not follow the previous cycle "
                f"of unit {frame['unit'].iat[row]}",
            ),
            hint="rows of each unit must be in increasing cycle order",
        )
    return frame


def read_rul_file(path: Path) -> np.ndarray:
    path = Path(path)
    values: list[float] = []
    with path.open() as handle:
        for line_no, line in enumerate(handle, start=1):
            token = line.strip()
            if not token:
                continue
            value = _parse_float(token)
            if value is None or value < 0:
                raise InputValidationError(
                    InputProblem(str(path), line_no, "RUL", f"'{token}' is not a non-negative number"),
                    hint="RUL files hold one remaining-life value per test unit, one per line",
                )
            values.append(value)
    return np.asarray(values, dtype=np.float64)


def load_cmapss(subset: str = "FD001", root: Path | None = None) -> CmapssSubset:
    """Load ``train_/test_/RUL_<subset>.txt`` from ``<datasets>/cmapss``."""
    folder = dataset_folder("cmapss", root)
    paths = {kind: folder / f"{kind}_{subset}.txt" for kind in ("train", "test", "RUL")}
    for path in paths.values():
        if not path.is_file():
            raise InputValidationError(
                InputProblem(str(path), None, None, "file not found"),
                hint=f"C-MAPSS subset {subset} needs train_, test_ and RUL_{subset}.txt",
            )
    train = read_cmapss_table(paths["train"])
    test = read_cmapss_table(paths["test"])
    rul = read_rul_file(paths["RUL"])
    n_units = test["unit"].nunique()
    if len(rul) != n_units:
        raise InputValidationError(
            InputProblem(str(paths["RUL"]), None, "RUL", f"{len(rul)} values for {n_units} test units"),
            hint="the RUL file needs one line per test unit",
        )
    return CmapssSubset(name=subset, train=train, test=test, test_rul=rul)
