"""``axhub bench cmapss`` on a small C-MAPSS-layout fleet: every tail is reported, the default is
the one chosen on held-out training units, and only the output folder is written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from axhub.cli.main import app
from axhub.ml.rul.validation import SCHEMES, TAILS


def _unit_rows(unit: int, life: int, rng: np.random.Generator) -> np.ndarray:
    cycles = np.arange(1, life + 1, dtype=np.float64)
    wear = np.exp((cycles - life) / 25.0)  # degradation shows in the last few dozen cycles
    settings = rng.normal(0, 0.001, size=(life, 3))
    sensors = 0.2 * rng.normal(size=(life, 21)) + 5.0
    sensors[:, :6] += wear[:, None] * np.linspace(1.0, 3.0, 6)
    return np.column_stack([np.full(life, unit), cycles, settings, sensors])


def _write_subset(root: Path, name: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    folder = root / "cmapss"
    folder.mkdir(parents=True, exist_ok=True)
    train = [_unit_rows(u, int(rng.integers(90, 150)), rng) for u in range(1, 21)]
    test, truth = [], []
    for u in range(1, 21):
        life = int(rng.integers(90, 150))
        seen = int(rng.integers(35, life - 5))
        test.append(_unit_rows(u, life, rng)[:seen])
        truth.append(life - seen)
    np.savetxt(folder / f"train_{name}.txt", np.vstack(train), fmt="%.5f")
    np.savetxt(folder / f"test_{name}.txt", np.vstack(test), fmt="%.5f")
    np.savetxt(folder / f"RUL_{name}.txt", np.asarray(truth), fmt="%d")


@pytest.mark.slow
def test_cmapss_reports_every_tail_and_the_validated_default(tmp_path: Path) -> None:
    from axhub.bench.report import _repo_root

    _write_subset(tmp_path, "FD901", seed=0)
    docs = _repo_root() / "docs" / "benchmarks.md"
    before = docs.read_bytes() if docs.exists() else b""
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "cmapss",
            "--data",
            str(tmp_path),
            "--subsets",
            "FD901",
            "--cap",
            "60",
            "--no-deep",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "cmapss.json").read_text())
    models = [row["model"] for row in saved["figures"]]
    assert any(m.startswith("baseline: constant") for m in models)
    tails = [m for m in models if m.startswith("window features + LightGBM")]
    assert len(tails) == len(TAILS)
    defaults = [m for m in tails if "(default" in m]
    assert len(defaults) == 1
    info = saved["extra"]["FD901"]["gbm"]
    assert set(info["tail_validation"]) == set(SCHEMES)
    chosen = info["default_tail"]
    assert chosen in TAILS
    # the default is the tail with the lowest mean validation RMSE, whatever the test figures say
    means = {t: np.mean([v[t] for v in info["tail_validation"].values()]) for t in TAILS}
    assert means[chosen] == min(means.values())
    assert (docs.read_bytes() if docs.exists() else b"") == before
