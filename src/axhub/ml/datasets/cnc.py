"""University of Michigan SMART CNC mill data (2018, wax blocks).

``train.csv`` holds one row per experiment (feedrate, clamp pressure and the three outcomes);
``experiment_NN.csv`` holds the machine's own signals at 100 ms: 47 numeric columns for the
X/Y/Z axes, spindle S and program M1, plus the ``Machining_Process`` phase.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from axhub.core.errors import InputProblem, InputValidationError
from axhub.ml.datasets.common import dataset_folder

_AXIS_FIELDS = [
    "ActualPosition", "ActualVelocity", "ActualAcceleration", "CommandPosition", "CommandVelocity",
    "CommandAcceleration", "CurrentFeedback", "DCBusVoltage", "OutputCurrent", "OutputVoltage",
]  # fmt: skip
SIGNAL_COLUMNS: list[str] = (
    [f"X1_{f}" for f in [*_AXIS_FIELDS, "OutputPower"]]
    + [f"Y1_{f}" for f in [*_AXIS_FIELDS, "OutputPower"]]
    + [f"Z1_{f}" for f in _AXIS_FIELDS]
    + [f"S1_{f}" for f in [*_AXIS_FIELDS, "OutputPower", "SystemInertia"]]
    + ["M1_CURRENT_PROGRAM_NUMBER", "M1_sequence_number", "M1_CURRENT_FEEDRATE"]
)
PHASE_COLUMN = "Machining_Process"
LABEL_COLUMNS = ("tool_condition", "machining_finalized", "passed_visual_inspection")
_YES_NO = {"yes": True, "no": False}


@dataclass(frozen=True)
class CncExperiment:
    number: int
    feedrate: float
    clamp_pressure: float
    tool_worn: bool
    machining_finalized: bool
    passed_visual_inspection: bool | None  # only known where machining finished
    signals: pd.DataFrame  # SIGNAL_COLUMNS (float64) + PHASE_COLUMN (str)


@dataclass(frozen=True)
class CncMill:
    experiments: list[CncExperiment]

    def labels(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "experiment": [e.number for e in self.experiments],
                "feedrate": [e.feedrate for e in self.experiments],
                "clamp_pressure": [e.clamp_pressure for e in self.experiments],
                "tool_worn": [e.tool_worn for e in self.experiments],
                "machining_finalized": [e.machining_finalized for e in self.experiments],
                "passed_visual_inspection": [e.passed_visual_inspection for e in self.experiments],
            }
        )


def read_cnc_experiment(path: Path) -> pd.DataFrame:
    """One experiment's signals; errors name file, row (1-based data row) and column."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputValidationError(
            InputProblem(str(path), None, None, f"not a readable CSV file ({exc})")
        ) from exc
    expected = [*SIGNAL_COLUMNS, PHASE_COLUMN]
    missing = [c for c in expected if c not in frame.columns]
    if missing:
        raise InputValidationError(
            [InputProblem(str(path), None, c, "column missing") for c in missing],
            hint="experiment files need the 47 X1/Y1/Z1/S1/M1 signals and Machining_Process",
        )
    if frame.empty:
        raise InputValidationError(InputProblem(str(path), None, None, "the file holds no data rows"))
    out = pd.DataFrame(index=frame.index)
    for column in SIGNAL_COLUMNS:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = np.flatnonzero(~np.isfinite(values.to_numpy(dtype=np.float64)))
        if bad.size:
            row = int(bad[0])
            raise InputValidationError(
                InputProblem(
                    str(path), row + 1, column, f"'{frame[column].iat[row]}' is not a finite number"
                ),
                hint="repair or drop the row; signals must be numeric",
            )
        out[column] = values.astype(np.float64)
    out[PHASE_COLUMN] = frame[PHASE_COLUMN].str.strip()
    return out


def _yes_no(value: str, path: Path, row: int, field: str, *, optional: bool = False) -> bool | None:
    token = value.strip().lower()
    if optional and token == "":
        return None
    if token not in _YES_NO:
        raise InputValidationError(InputProblem(str(path), row, field, f"'{value}' is not yes/no"))
    return _YES_NO[token]


def _number(value: str, path: Path, row: int, field: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not np.isfinite(number):
        raise InputValidationError(InputProblem(str(path), row, field, f"'{value}' is not a finite number"))
    return number


def load_cnc_mill(root: Path | None = None, *, folder: Path | None = None) -> CncMill:
    """Labels from ``train.csv`` joined to every ``experiment_NN.csv`` that exists."""
    base = Path(folder) if folder is not None else dataset_folder("cnc_mill", root)
    labels_path = base / "train.csv"
    if not labels_path.is_file():
        raise InputValidationError(InputProblem(str(labels_path), None, None, "file not found"))
    experiments: list[CncExperiment] = []
    with labels_path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        needed = ["No", "feedrate", "clamp_pressure", *LABEL_COLUMNS]
        missing = [c for c in needed if c not in (reader.fieldnames or [])]
        if missing:
            raise InputValidationError(
                [InputProblem(str(labels_path), None, c, "column missing") for c in missing]
            )
        for row_no, row in enumerate(reader, start=1):
            number = int(_number(row["No"], labels_path, row_no, "No"))
            condition = row["tool_condition"].strip().lower()
            if condition not in ("worn", "unworn"):
                raise InputValidationError(
                    InputProblem(
                        str(labels_path),
                        row_no,
                        "tool_condition",
                        f"'{row['tool_condition']}' is not worn/unworn",
                    )
                )
            finalized = _yes_no(row["machining_finalized"], labels_path, row_no, "machining_finalized")
            passed = _yes_no(
                row["passed_visual_inspection"],
                labels_path,
                row_no,
                "passed_visual_inspection",
                optional=True,
            )
            signal_path = base / f"experiment_{number:02d}.csv"
            if not signal_path.is_file():
                continue  # labels for experiments whose signals are not shipped here
            experiments.append(
                CncExperiment(
                    number=number,
                    feedrate=_number(row["feedrate"], labels_path, row_no, "feedrate"),
                    clamp_pressure=_number(row["clamp_pressure"], labels_path, row_no, "clamp_pressure"),
                    tool_worn=condition == "worn",
                    machining_finalized=bool(finalized),
                    passed_visual_inspection=passed,
                    signals=read_cnc_experiment(signal_path),
                )
            )
    if not experiments:
        raise InputValidationError(
            InputProblem(str(base), None, None, "no experiment_NN.csv matches a row of train.csv")
        )
    return CncMill(experiments)
