"""Dataset benchmarks run on any data root, write only where told, and fail when nothing matches."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from axhub.cli.main import app

COLUMNS = [
    "Accelerometer1RMS", "Accelerometer2RMS", "Current", "Pressure",
    "Temperature", "Thermocouple", "Voltage", "Volume Flow RateRMS",
]  # fmt: skip


def _skab_like(root: Path, folder: str, runs: int, seed: int) -> None:
    """SKAB layout: ';'-separated runs with a step fault after row 600, and an anomaly-free file."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(1, len(COLUMNS)))

    def frame(n: int, fault: slice | None) -> pd.DataFrame:
        x = base + 0.1 * rng.normal(size=(n, len(COLUMNS)))
        label = np.zeros(n, dtype=int)
        if fault is not None:
            x[fault, 2:4] += 2.0
            label[fault] = 1
        out = pd.DataFrame(x, columns=COLUMNS)
        out.insert(0, "datetime", pd.date_range("2020-03-01", periods=n, freq="s").astype(str))
        if fault is not None:
            out["anomaly"] = label
            out["changepoint"] = 0
        return out

    (root / "skab" / folder).mkdir(parents=True)
    for k in range(runs):
        frame(1000, slice(600, 850)).to_csv(root / "skab" / folder / f"{k}.csv", sep=";", index=False)
    (root / "skab" / "anomaly-free").mkdir(exist_ok=True)
    frame(2400, None).to_csv(root / "skab" / "anomaly-free" / "anomaly-free.csv", sep=";", index=False)


@pytest.mark.parametrize("bench", ["skab", "cmapss", "cwru", "cnc"])
def test_a_benchmark_that_finds_nothing_fails_with_a_message(bench: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["bench", bench, "--data", str(tmp_path), "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 2, result.output
    assert "Nothing to benchmark" in result.output
    assert str(tmp_path) in result.output  # says where it looked


def test_unknown_selection_fails_and_names_what_exists(tmp_path: Path) -> None:
    _skab_like(tmp_path, "valve9", runs=1, seed=0)
    result = CliRunner().invoke(app, ["bench", "skab", "--data", str(tmp_path), "--runs", "valve1"])
    assert result.exit_code == 2
    assert "valve9" in result.output  # the folders that do exist


def test_skab_runs_on_any_runs_and_writes_only_to_out(tmp_path: Path) -> None:
    from axhub.bench.report import _repo_root

    _skab_like(tmp_path, "pumpA", runs=2, seed=1)
    _skab_like_more = tmp_path / "skab" / "pumpB"
    _skab_like_more.mkdir()
    for f in (tmp_path / "skab" / "pumpA").glob("*.csv"):
        (_skab_like_more / f.name).write_bytes(f.read_bytes())
    docs = _repo_root() / "docs" / "benchmarks.md"
    before = docs.read_bytes() if docs.exists() else b""
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "skab",
            "--data",
            str(tmp_path),
            "--runs",
            "pumpA,pumpB",
            "--models",
            "MSPC",  # the short name, any case
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "skab.json").read_text())
    assert saved["extra"]["runs"] == ["pumpA/0.csv", "pumpA/1.csv", "pumpB/0.csv", "pumpB/1.csv"]
    rows = {(r["model"], r["alarm policy"]): r for r in saved["figures"]}
    assert ("baseline: always normal", "-") in rows and ("baseline: always alarm", "-") in rows
    # a clear step fault: the detector beats always alarming
    assert float(rows[("MSPC T²+Q", "threshold")]["f1"]) > float(rows[("baseline: always alarm", "-")]["f1"])
    # every policy is reported; the jump latch carries its factor, set on the anomaly-free file
    assert {p for m, p in rows if m == "MSPC T²+Q"} == {"threshold", "latch", "jump latch"}
    assert saved["extra"]["jump_factors"]["MSPC T²+Q"] >= 1.5
    assert (out / "bench-skab-scores.png").is_file()
    assert (docs.read_bytes() if docs.exists() else b"") == before  # docs untouched without --update-docs


def test_skab_unknown_model_names_the_short_names_to_type(tmp_path: Path) -> None:
    _skab_like(tmp_path, "pumpA", runs=1, seed=1)
    result = CliRunner().invoke(
        app, ["bench", "skab", "--data", str(tmp_path), "--models", "mspc,pca", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2
    assert "unknown model(s) pca" in result.output and "mspc-robust" in result.output
    assert not (tmp_path / "o" / "skab.json").exists()


def test_the_printed_table_keeps_brackets_in_names_and_notes() -> None:
    """Rich would read "[2, 3]" or "E[life - t | life > t]" as markup and drop it from the screen."""
    from rich.console import Console

    from axhub.bench.report import BenchResult, print_table

    result = BenchResult(
        name="t", title="T", dataset="d", split="s",
        rows=[{"model": "PatchCore lite2 stages [2, 3]", "AUROC %": 92.5}],
        notes=["the survival prior E[life - t | life > t] of the training lives [bold]"],
    )  # fmt: skip
    console = Console(record=True, width=200)
    print_table(result, console)
    text = console.export_text()
    assert "stages [2, 3]" in text and "E[life - t | life > t]" in text and "[bold]" in text
