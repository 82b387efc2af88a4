"""Loaders of the benchmark datasets: real formats on tiny fabricated files, clear errors on bad
input, and (marked ``datasets``) the real files when they are present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from axhub.core.errors import InputValidationError, NotFoundError
from axhub.core.settings import Settings
from axhub.ml.datasets import (
    list_cwru_recordings,
    load_cmapss,
    load_cnc_mill,
    load_cwru_signal,
    read_cmapss_table,
)
from axhub.ml.datasets.cnc import PHASE_COLUMN, SIGNAL_COLUMNS


def _cmapss_line(unit: int, cycle: int, shift: float = 0.0) -> str:
    values = [unit, cycle, -0.0007, -0.0004, 100.0] + [500.0 + shift + i for i in range(21)]
    return " ".join(str(v) for v in values) + "  \n"


def _write_cmapss(folder: Path, subset: str = "FD001") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    train = "".join(_cmapss_line(u, c, c * 0.1) for u in (1, 2) for c in range(1, 6))
    test = "".join(_cmapss_line(u, c) for u in (1, 2) for c in range(1, 4))
    (folder / f"train_{subset}.txt").write_text(train)
    (folder / f"test_{subset}.txt").write_text(test)
    (folder / f"RUL_{subset}.txt").write_text("12 \n7 \n")


def test_cmapss_parses_the_published_format(tmp_path: Path) -> None:
    _write_cmapss(tmp_path / "cmapss")
    subset = load_cmapss("FD001", root=tmp_path)
    assert subset.train.shape == (10, 26)
    assert list(subset.train.columns[:5]) == ["unit", "cycle", "setting_1", "setting_2", "setting_3"]
    assert subset.train["unit"].dtype == np.int64
    assert subset.train["s_21"].iloc[-1] == pytest.approx(520.5)
    np.testing.assert_array_equal(subset.test_rul, [12.0, 7.0])
    np.testing.assert_array_equal(subset.test_units, [1, 2])


def test_cmapss_bad_value_names_file_row_and_field(tmp_path: Path) -> None:
    path = tmp_path / "train_FD001.txt"
    lines = [_cmapss_line(1, c) for c in range(1, 5)]
    lines[2] = lines[2].replace("505.0", "abc")
    path.write_text("".join(lines))
    with pytest.raises(InputValidationError, match=r"train_FD001.txt, row 3, field 's_6'.*'abc'"):
        read_cmapss_table(path)


def test_cmapss_wrong_column_count_and_cycle_order(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text(_cmapss_line(1, 1) + "1 2 3\n")
    with pytest.raises(InputValidationError, match=r"row 2.*expected 26 values, found 3"):
        read_cmapss_table(path)
    path.write_text(_cmapss_line(1, 2) + _cmapss_line(1, 1))
    with pytest.raises(InputValidationError, match=r"row 2, field 'cycle'"):
        read_cmapss_table(path)


def test_cmapss_rul_count_must_match_test_units(tmp_path: Path) -> None:
    _write_cmapss(tmp_path / "cmapss")
    (tmp_path / "cmapss" / "RUL_FD001.txt").write_text("12\n")
    with pytest.raises(InputValidationError, match=r"RUL_FD001.txt.*1 values for 2 test units"):
        load_cmapss("FD001", root=tmp_path)


def test_missing_dataset_folder_says_where_and_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="AXHUB_DATASETS"):
        load_cmapss("FD001", root=tmp_path)


def test_cwru_recordings_are_parsed_from_names(tmp_path: Path) -> None:
    folder = tmp_path / "cwru_12k_de" / "1797 RPM"
    folder.mkdir(parents=True)
    signal = np.sin(np.arange(1000))[:, None]
    np.savez(folder / "1797_OR@6_14_DE12.npz", DE=signal, FE=signal, BA=signal)
    np.savez(folder / "1797_Normal.npz", DE=signal)
    recordings = list_cwru_recordings(root=tmp_path)
    by_label = {r.label: r for r in recordings}
    assert set(by_label) == {"OR_14", "Normal"}
    outer = by_label["OR_14"]
    assert (outer.rpm, outer.load_hp, outer.fault, outer.size_mils, outer.position) == (
        1797,
        0,
        "OR",
        14,
        "@6",
    )
    np.testing.assert_allclose(load_cwru_signal(outer), signal[:, 0])


def test_cwru_bad_files_are_clear_errors(tmp_path: Path) -> None:
    bad_name = tmp_path / "something.npz"
    np.savez(bad_name, DE=np.zeros((10, 1)))
    with pytest.raises(InputValidationError, match=r"something.npz.*file name"):
        list_cwru_recordings(folder=tmp_path)
    no_channel = tmp_path / "x" / "1772_B_7_DE12.npz"
    no_channel.parent.mkdir()
    np.savez(no_channel, FE=np.zeros((10, 1)))
    with pytest.raises(InputValidationError, match=r"1772_B_7_DE12.npz, field 'DE'.*missing"):
        load_cwru_signal(no_channel)
    with_nan = tmp_path / "1772_IR_7_DE12.npz"
    values = np.zeros((10, 1))
    values[4] = np.nan
    np.savez(with_nan, DE=values)
    with pytest.raises(InputValidationError, match=r"row 4, field 'DE'"):
        load_cwru_signal(with_nan)


def _write_cnc(folder: Path, n_rows: int = 6) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.csv").write_text(
        "No,material,feedrate,clamp_pressure,tool_condition,machining_finalized,passed_visual_inspection\n"
        "1,wax,6,4,unworn,yes,yes\n2,wax,20,2.5,worn,no,\n3,wax,6,4,worn,yes,no\n"
    )
    rng = np.random.default_rng(0)
    for number in (1, 2):  # experiment 3 has labels but no signals: skipped
        frame = pd.DataFrame(rng.normal(size=(n_rows, len(SIGNAL_COLUMNS))), columns=SIGNAL_COLUMNS)
        frame[PHASE_COLUMN] = ["Prep"] + ["Layer 1 Up"] * (n_rows - 1)
        frame.to_csv(folder / f"experiment_{number:02d}.csv", index=False)


def test_cnc_labels_join_signals(tmp_path: Path) -> None:
    _write_cnc(tmp_path / "cnc_mill")
    mill = load_cnc_mill(root=tmp_path)
    assert [e.number for e in mill.experiments] == [1, 2]
    second = mill.experiments[1]
    assert (second.feedrate, second.clamp_pressure, second.tool_worn) == (20.0, 2.5, True)
    assert second.machining_finalized is False and second.passed_visual_inspection is None
    assert second.signals.shape == (6, 48)
    assert mill.labels()["tool_worn"].tolist() == [False, True]


def test_cnc_bad_cells_name_file_row_and_column(tmp_path: Path) -> None:
    folder = tmp_path / "cnc_mill"
    _write_cnc(folder)
    path = folder / "experiment_02.csv"
    frame = pd.read_csv(path)
    frame["S1_OutputPower"] = frame["S1_OutputPower"].astype(object)
    frame.loc[3, "S1_OutputPower"] = "n/a"
    frame.to_csv(path, index=False)
    with pytest.raises(InputValidationError, match=r"experiment_02.csv, row 4, field 'S1_OutputPower'"):
        load_cnc_mill(folder=folder)
    frame.drop(columns=["X1_OutputPower"]).to_csv(path, index=False)
    with pytest.raises(InputValidationError, match=r"field 'X1_OutputPower': column missing"):
        load_cnc_mill(folder=folder)
    _write_cnc(folder)
    text = (folder / "train.csv").read_text().replace("unworn", "blunt")
    (folder / "train.csv").write_text(text)
    with pytest.raises(InputValidationError, match=r"train.csv, row 1, field 'tool_condition'"):
        load_cnc_mill(folder=folder)


# ---------------------------------------------------------------------------- real data
def _real(name: str) -> Path:
    root = Settings().datasets
    if not (root / name).is_dir():
        pytest.skip(f"{name} dataset not found at {root / name}; set AXHUB_DATASETS")
    return root


@pytest.mark.datasets
def test_real_cmapss_fd001() -> None:
    subset = load_cmapss("FD001", root=_real("cmapss"))
    assert subset.train["unit"].nunique() == 100 and len(subset.test_rul) == 100
    assert subset.train.shape[1] == 26


@pytest.mark.datasets
def test_real_cwru_and_cnc() -> None:
    recordings = list_cwru_recordings(root=_real("cwru_12k_de"))
    assert {r.fault for r in recordings} == {"Normal", "IR", "B", "OR"}
    assert load_cwru_signal(recordings[0]).size > 100_000
    mill = load_cnc_mill(root=_real("cnc_mill"))
    assert len(mill.experiments) >= 14
