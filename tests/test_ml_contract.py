"""The estimator contract, checked on every registered estimator (found by subclass).

An estimator added by anyone, in any family, is picked up by ``Estimator.registry()`` and must pass
all of these with its own ``example_data()`` / ``example_params()``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from _torch import HAS_TORCH
from axhub.core.errors import AxHubError, InputValidationError
from axhub.ml.base import FAMILIES, PARITY_METHODS, Estimator, ExampleData, SensorEstimator
from axhub.registry.bundle import BundleRunner

REGISTRY = Estimator.registry()


def _params(keys: list[str]) -> list[Any]:
    """Estimators that train with torch carry the ``torch`` mark: they skip where it is absent."""
    return [pytest.param(k, marks=pytest.mark.torch) if "torch" in REGISTRY[k].requires else k for k in keys]


KEYS = _params(sorted(REGISTRY))
SENSOR_KEYS = _params([k for k in sorted(REGISTRY) if issubclass(REGISTRY[k], SensorEstimator)])


@cache
def _example(key: str) -> ExampleData:
    return REGISTRY[key].example_data(0)


@cache
def _fitted(key: str) -> Estimator:
    cls = REGISTRY[key]
    return cls(**cls.example_params()).fit(_example(key).train.copy())


def _as_array(values: Any) -> np.ndarray:
    return values.to_numpy() if isinstance(values, pd.DataFrame | pd.Series) else np.asarray(values)


def test_registry_is_populated_and_well_formed() -> None:
    assert "anomaly/mspc" in REGISTRY
    for key, cls in REGISTRY.items():
        assert cls.family in FAMILIES, key
        assert key == f"{cls.family}/{cls.name}"


@pytest.mark.parametrize("key", KEYS)
def test_params_round_trip(key: str) -> None:
    cls = REGISTRY[key]
    model = cls(**cls.example_params())
    params = model.get_params()
    json.dumps(params)  # bundles store params as JSON
    assert model.clone().get_params() == params
    for name, value in cls.example_params().items():
        assert params[name] == value


@pytest.mark.parametrize("key", KEYS)
def test_output_shapes(key: str) -> None:
    model, test = _fitted(key), _example(key).test
    n = model.n_outputs(test) if isinstance(model, SensorEstimator) else len(test)
    score = np.asarray(model.score(test))
    assert score.shape[0] == n and np.isfinite(score).all()
    assert np.asarray(model.predict(test)).shape[0] == n
    explanation = model.explain(test)
    assert _as_array(explanation).shape[0] == n
    if isinstance(model, SensorEstimator):
        assert isinstance(explanation, pd.DataFrame)
        assert list(explanation.columns) == model.feature_names_in_
    metrics = model.evaluate(test)
    assert metrics and all(isinstance(v, float) for v in metrics.values())


@pytest.mark.parametrize("key", KEYS)
def test_deterministic_under_seed(key: str) -> None:
    cls, ex = REGISTRY[key], _example(key)
    again = cls(**cls.example_params()).fit(ex.train.copy())
    np.testing.assert_allclose(again.score(ex.test), _fitted(key).score(ex.test), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("key", KEYS)
def test_does_not_mutate_input(key: str) -> None:
    cls, ex = REGISTRY[key], _example(key)
    train, test = ex.train.copy(), ex.test.copy()
    model = cls(**cls.example_params()).fit(train)
    model.score(test)
    model.predict(test)
    model.explain(test)
    model.evaluate(test)
    pd.testing.assert_frame_equal(train, ex.train)
    pd.testing.assert_frame_equal(test, ex.test)


@pytest.mark.parametrize("key", KEYS)
def test_save_load_round_trip(key: str, tmp_path: Path) -> None:
    model, test = _fitted(key), _example(key).test
    model.save(tmp_path / "bundle")
    loaded = Estimator.load(tmp_path / "bundle")
    assert type(loaded) is type(model)
    assert loaded.get_params() == json.loads(json.dumps(model.get_params()))
    expected = np.asarray(model.score(test), dtype=np.float64)
    # equal up to float32 round-off (torch models may reorder a reduction after reload)
    tol = 1e-6 * max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(loaded.score(test), expected, rtol=1e-5, atol=tol)
    np.testing.assert_array_equal(np.asarray(loaded.predict(test)), np.asarray(model.predict(test)))


@pytest.mark.parametrize("key", KEYS)
def test_onnx_bundle_matches_python(key: str, tmp_path: Path) -> None:
    model, test = _fitted(key), _example(key).test
    runner = BundleRunner(model.save(tmp_path / "bundle"))
    results = runner.run(model.bundle_input(test))
    compared = 0
    for name, values in results.items():
        method = PARITY_METHODS.get(name)
        if method is None or not hasattr(model, method) or (name == "prediction" and "label" in results):
            continue
        expected = _as_array(getattr(model, method)(test))
        got = np.asarray(values)
        assert got.shape == expected.shape, name
        compared += 1
        if got.dtype.kind in "fc" and expected.dtype.kind in "fc":
            tol = 1e-4 * max(1.0, float(np.abs(expected).max()))
            np.testing.assert_allclose(got, expected, rtol=2e-3, atol=tol, err_msg=name)
        elif name == "is_anomaly":
            # float32 vs float64 may flip rows sitting on the threshold, nothing else
            score = np.asarray(model.score(test))
            threshold = float(runner.threshold or 0.0)
            near = np.abs(score - threshold) <= 1e-3 * max(1.0, abs(threshold))
            assert np.array_equal(got[~near], expected[~near])
        else:
            assert np.mean(got == expected) >= 0.99, name
    assert compared, f"bundle of {key} gives none of {sorted(PARITY_METHODS)}"


@pytest.mark.parametrize("key", SENSOR_KEYS)
def test_missing_column_is_a_clear_error(key: str) -> None:
    model, test = _fitted(key), _example(key).test
    assert isinstance(model, SensorEstimator)
    missing = model.feature_names_in_[0]
    with pytest.raises(InputValidationError, match=missing):
        model.score(test.drop(columns=missing))


@pytest.mark.parametrize("key", SENSOR_KEYS)
def test_extra_column_is_a_clear_error(key: str) -> None:
    model, test = _fitted(key), _example(key).test
    with pytest.raises(InputValidationError, match="surprise_signal"):
        model.score(test.assign(surprise_signal=1.0))


@pytest.mark.parametrize("key", SENSOR_KEYS)
def test_nan_is_a_clear_error_naming_row_and_column(key: str) -> None:
    model, test = _fitted(key), _example(key).test.copy()
    assert isinstance(model, SensorEstimator)
    column = model.feature_names_in_[-1]
    test.iloc[7, test.columns.get_loc(column)] = np.nan
    with pytest.raises(InputValidationError, match=rf"row 7.*{column}"):
        model.score(test)
    with pytest.raises(InputValidationError):
        REGISTRY[key](**REGISTRY[key].example_params()).fit(test)


@pytest.mark.parametrize("key", SENSOR_KEYS)
def test_constant_signal_is_handled(key: str) -> None:
    cls, ex = REGISTRY[key], _example(key)
    column = _fitted(key).feature_names_in_[0]  # type: ignore[attr-defined]
    train = ex.train.copy()
    train[column] = 1.5
    test = ex.test.copy()
    test[column] = 1.5
    model = cls(**cls.example_params()).fit(train)
    assert np.isfinite(np.asarray(model.score(test), dtype=np.float64)).all()
    assert column in model.constant_columns_


@pytest.mark.parametrize("key", SENSOR_KEYS)
def test_too_short_series_is_a_clear_error(key: str) -> None:
    model, test = _fitted(key), _example(key).test
    assert isinstance(model, SensorEstimator)
    short = test.iloc[: max(model.min_rows - 1, 0)]
    with pytest.raises(InputValidationError):
        model.score(short)


@pytest.mark.parametrize("key", SENSOR_KEYS)
def test_bundle_runs_without_the_training_stack(key: str, tmp_path: Path) -> None:
    """The edge path: the bundle runs in a process without torch/sklearn/onnx/axhub.ml."""
    bundle = str(_fitted(key).save(tmp_path / "bundle"))
    frame = tmp_path / "test.parquet"
    _example(key).test.to_parquet(frame)
    script = f"""
import json, sys
import pyarrow.parquet as pq
from axhub.registry.bundle import BundleRunner
table = pq.read_table({str(frame)!r})
data = {{name: table.column(name).to_numpy() for name in table.column_names}}
out = BundleRunner({bundle!r}).run(data)
assert len(next(iter(out.values()))) > 0
print(json.dumps([m for m in ("torch", "sklearn", "skl2onnx", "onnx", "axhub.ml") if m in sys.modules]))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


@pytest.mark.skipif(HAS_TORCH, reason="torch is installed: every family is registered")
def test_without_torch_the_registry_lists_the_rest_and_a_vision_lookup_says_why() -> None:
    assert "anomaly/mspc" in REGISTRY and not any(k.startswith("vision/") for k in REGISTRY)
    with pytest.raises(AxHubError) as info:
        Estimator.lookup("vision", "patchcore")
    assert "some vision estimators need torch, which is not installed" in info.value.hint
