"""The estimator contract shared by every model family.

Like scikit-learn: hyper-parameters are ``__init__`` keyword arguments stored under the same
attribute names (so :meth:`Estimator.get_params` can read them back); learned state ends in ``_``.

Every estimator
* ``fit(data) -> self``; ``score(data)`` (anomaly: higher = more anomalous); ``predict(data)``;
  ``explain(data)`` (per-signal contributions, one column per input signal);
  ``evaluate(data) -> dict[str, float]``; ``export_onnx(path)``;
* saves as a bundle (:mod:`axhub.registry.bundle`): ``save(dir)`` writes ``model.onnx``,
  ``preprocessing.json``, ``manifest.json`` and ``state/`` (``.npy`` + ``state.json``, never a
  pickle); ``Estimator.load(dir)`` verifies the hashes and rebuilds the Python estimator;
* is found by subclass: :meth:`Estimator.registry` imports the family packages
  (``axhub.ml.<family>`` and all their submodules) and walks ``__subclasses__``; a concrete
  estimator has a ``family`` and a ``name`` unique in its family;
* tells the contract suite how to test it: :meth:`example_data` (small synthetic train/test
  frames) and :meth:`example_params` (settings that train in a second or two).

Sensor estimators (:class:`SensorEstimator`) take a pandas DataFrame, one column per signal, rows
in time order. Inputs are the columns named by the ``columns`` parameter, or else every numeric
column that is not *reserved* (the values of the ``target``, ``group``, ``label`` and
``time_column`` parameters where an estimator has them); they are recorded at fit as
``feature_names_in_``. At score time
* a missing input column, or an extra numeric column that is neither an input nor reserved, is
  an :class:`~axhub.core.errors.InputValidationError` (select ``data[model.feature_names_in_]``);
* NaN / infinite values are an error naming row and column (NaN policy: refuse, never impute
  silently; fill or drop upstream);
* a signal that was constant during fit is kept with scale 1 (no division by zero) and listed
  in ``constant_columns_``;
* fewer rows (per group) than :attr:`min_rows` (the window length) is an error.
Outputs are numpy arrays with one entry per row (``n_outputs(data)``; windowed models align
each window to the row that ends it and give the first ``window-1`` rows the first window's
value), and ``explain`` a DataFrame with the same row count and ``feature_names_in_`` columns.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd

from axhub.core.errors import AxHubError, InputProblem, InputValidationError
from axhub.registry.bundle import (
    STATE_DIR,
    Bundle,
    BundleError,
    apply_post,
    apply_row_steps,
    make_graph_input,
    read_bundle,
    write_bundle,
)

FAMILIES: tuple[str, ...] = ("anomaly", "rul", "diagnosis", "machining", "vision", "quality")

#: Runner result name -> estimator method giving the same values (used by the contract suite).
PARITY_METHODS: dict[str, str] = {
    "score": "score",
    "is_anomaly": "predict",
    "prediction": "predict",
    "label": "predict",
    "probabilities": "predict_proba",
    "contributions": "explain",
}

#: Parameter names whose (string) values are never model inputs.
RESERVED_PARAMS: tuple[str, ...] = ("target", "group", "label", "time_column")


class NotFittedError(AxHubError):
    """The estimator was used before ``fit``."""

    hint = "call fit(data) first or load a saved bundle"


@dataclass
class ExampleData:
    """Small synthetic data for the contract suite.

    ``train`` fits the model; ``test`` is scored (same columns as train). ``labels`` names the
    label/target column(s) present in the frames that are not inputs.
    """

    train: pd.DataFrame
    test: pd.DataFrame
    labels: list[str] = field(default_factory=list)


class Estimator(ABC):
    """Base of every model. Subclasses set ``family`` and ``name`` and implement the methods."""

    family: ClassVar[str] = ""
    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    #: 'table' (rows independent), 'sequence' (time-ordered windows) or 'image'.
    input_kind: ClassVar[str] = "table"
    #: Optional packages (import names) this estimator trains with, beyond the hub extra; the
    #: contract suite skips an estimator whose packages are absent (e.g. torch on Python 3.12).
    requires: ClassVar[tuple[str, ...]] = ()
    #: Metrics stored in the bundle manifest (set by benchmarks / evaluation jobs).
    metrics_: dict[str, float]

    # ------------------------------------------------------------------ parameters
    @classmethod
    def param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [
            p.name
            for p in signature.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def get_params(self) -> dict[str, Any]:
        """Hyper-parameters as given to ``__init__`` (JSON-serialisable for bundles)."""
        return {name: getattr(self, name) for name in self.param_names()}

    def set_params(self, **params: Any) -> Self:
        unknown = set(params) - set(self.param_names())
        if unknown:
            raise ValueError(f"{type(self).__name__} has no parameter(s) {sorted(unknown)}")
        for key, value in params.items():
            setattr(self, key, value)
        return self

    def clone(self) -> Self:
        """An unfitted copy with the same parameters."""
        return type(self)(**self.get_params())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # ------------------------------------------------------------------ the contract
    @abstractmethod
    def fit(self, data: Any) -> Self: ...

    @abstractmethod
    def score(self, data: Any) -> np.ndarray: ...

    @abstractmethod
    def predict(self, data: Any) -> np.ndarray: ...

    @abstractmethod
    def explain(self, data: Any) -> Any: ...

    @abstractmethod
    def evaluate(self, data: Any) -> dict[str, float]: ...

    @abstractmethod
    def export_onnx(self, path: str | Path) -> Path:
        """Write the ONNX graph; its input/outputs are described by :meth:`preprocessing`."""

    @abstractmethod
    def preprocessing(self) -> dict[str, Any]:
        """The ``preprocessing.json`` content (format in :mod:`axhub.registry.bundle`)."""

    @abstractmethod
    def _get_state(self) -> dict[str, Any]:
        """Learned state: numpy arrays (saved as ``.npy``) and JSON values (``state.json``)."""

    @abstractmethod
    def _set_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`_get_state` returned (arrays come back as numpy arrays)."""

    @property
    def is_fitted(self) -> bool:
        return bool(getattr(self, "fitted_", False))

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted")

    def bundle_input(self, data: Any) -> Any:
        """What :meth:`BundleRunner.run <axhub.registry.bundle.BundleRunner.run>` takes for ``data``.

        Sensor models: the frame itself (column -> values). Tensor models (images) return the
        ready graph input (e.g. a float32 NCHW array) so the contract suite can compare outputs.
        """
        return data

    # ------------------------------------------------------------------ for the contract suite
    @classmethod
    def example_data(cls, seed: int = 0) -> ExampleData:
        """Small synthetic train/test data this estimator can fit and score quickly."""
        raise NotImplementedError(f"{cls.__name__} does not provide example_data()")

    @classmethod
    def example_params(cls) -> dict[str, Any]:
        """Parameters that make :meth:`example_data` train in about a second (few epochs...)."""
        return {}

    # ------------------------------------------------------------------ registry
    @staticmethod
    def registry() -> dict[str, type[Estimator]]:
        """Every concrete estimator, keyed ``"<family>/<name>"``, found by subclass.

        Imports ``axhub.ml.<family>`` and its submodules for every family first, so that an
        estimator defined anywhere in a family package is found without a hand-kept list.
        """
        for family in FAMILIES:
            _import_family(family)
        found: dict[str, type[Estimator]] = {}
        stack: list[type[Estimator]] = list(Estimator.__subclasses__())
        while stack:
            cls = stack.pop()
            stack.extend(cls.__subclasses__())
            if inspect.isabstract(cls) or not cls.name or not cls.family:
                continue
            key = f"{cls.family}/{cls.name}"
            if key in found and found[key] is not cls:
                first = found[key]
                raise AxHubError(
                    f"two estimators are registered as {key}: {first.__module__}.{first.__qualname__}"
                    f" and {cls.__module__}.{cls.__qualname__}",
                    hint="give one of them another name",
                )
            found[key] = cls
        return dict(sorted(found.items()))

    @staticmethod
    def lookup(family: str, name: str) -> type[Estimator]:
        registry = Estimator.registry()
        key = f"{family}/{name}"
        if key not in registry:
            missing = _LEFT_OUT.get(family)
            hint = f"known: {', '.join(registry)}"
            if missing:
                hint = f"some {family} estimators need {missing}, which is not installed; {hint}"
            raise AxHubError(f"no estimator {key}", hint=hint)
        return registry[key]

    # ------------------------------------------------------------------ bundles
    def manifest(self, metrics: dict[str, float] | None = None) -> dict[str, Any]:
        prep = self.preprocessing()
        return {
            "family": self.family,
            "name": self.name,
            "version": self.version,
            "estimator": f"{type(self).__module__}.{type(self).__qualname__}",
            "params": self.get_params(),
            "metrics": dict(metrics or getattr(self, "metrics_", {}) or {}),
            "inputs": {
                "kind": self.input_kind,
                "columns": prep.get("columns", []),
                "group_column": prep.get("group_column"),
            },
            "outputs": sorted(prep.get("outputs", {})) + (["is_anomaly"] if "threshold" in prep else []),
        }

    def save(
        self,
        directory: str | Path,
        *,
        metrics: dict[str, float] | None = None,
        key: bytes | None = None,
        overwrite: bool = True,
        make_zip: bool = False,
    ) -> Path:
        """Save as a bundle directory (and a ``.zip`` beside it when ``make_zip``)."""
        self._check_fitted()
        files: dict[str, bytes] = {}
        json_state: dict[str, Any] = {}
        for name, value in self._get_state().items():
            if isinstance(value, np.ndarray):
                if value.dtype == object:
                    raise BundleError(f"state '{name}' is an object array; store it as JSON")
                files[f"{STATE_DIR}/{name}.npy"] = _npy_bytes(value)
            else:
                json_state[name] = value
        files[f"{STATE_DIR}/state.json"] = json.dumps(json_state, default=_json_default).encode()
        with tempfile.TemporaryDirectory(prefix="axhub-onnx-") as tmp:
            onnx_path = self.export_onnx(Path(tmp) / "model.onnx")
            return write_bundle(
                directory,
                onnx_model=onnx_path.read_bytes(),
                preprocessing=self.preprocessing(),
                manifest=self.manifest(metrics),
                files=files,
                key=key,
                overwrite=overwrite,
                make_zip=make_zip,
            )

    @classmethod
    def load(cls, directory: str | Path, *, key: bytes | None = None) -> Estimator:
        """Rebuild a fitted estimator from a bundle (hashes verified, nothing unpickled)."""
        bundle = read_bundle(directory, key=key)
        target = cls if cls.name else Estimator.lookup(bundle.family, bundle.name)
        if (target.family, target.name) != (bundle.family, bundle.name):
            raise BundleError(
                f"bundle {directory} holds {bundle.family}/{bundle.name}, not {target.family}/{target.name}",
                hint=f"load it with Estimator.load({str(directory)!r})",
            )
        estimator = target(**bundle.manifest.get("params", {}))
        estimator._set_state(_read_state(bundle))
        estimator.metrics_ = dict(bundle.manifest.get("metrics", {}))
        return estimator


#: Optional packages whose absence leaves a family module out of the registry instead of failing
#: it: an install without the torch extra (e.g. Python 3.12 here) still lists the sensor models.
OPTIONAL_PACKAGES: frozenset[str] = frozenset({"torch", "torchvision"})
#: Family -> the optional package that kept some of its modules out (for lookup's hint).
_LEFT_OUT: dict[str, str] = {}


def _import_family(family: str) -> None:
    package_name = f"axhub.ml.{family}"
    try:
        package = importlib.import_module(package_name)
    except ModuleNotFoundError as exc:
        if exc.name == package_name:
            return  # family not built (yet)
        if (exc.name or "").split(".")[0] not in OPTIONAL_PACKAGES:
            raise
        _LEFT_OUT[family] = (exc.name or "").split(".")[0]
        return
    for info in pkgutil.walk_packages(getattr(package, "__path__", []), prefix=package_name + "."):
        try:
            importlib.import_module(info.name)
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] not in OPTIONAL_PACKAGES:
                raise
            _LEFT_OUT[family] = (exc.name or "").split(".")[0]


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in state.json")


def _read_state(bundle: Bundle) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for name, path in bundle.state_files().items():
        if name == "state.json":
            state.update(json.loads(path.read_text()))
        elif name.endswith(".npy"):
            state[name[: -len(".npy")]] = np.load(path, allow_pickle=False)
    return state


# ======================================================================================
# Sensor estimators: DataFrame in, one output per row
# ======================================================================================


class SensorEstimator(Estimator):
    """Estimators over multivariate sensor frames: input validation, scaling, windowing.

    Subclasses implement ``_fit_matrix`` / ``_graph_outputs`` on the standardised matrix (or
    windows) and get ``score``/``explain`` parity with the bundle runner for free, because the
    numpy pre- and post-processing is the very code :class:`~axhub.registry.bundle.BundleRunner`
    runs.
    """

    input_kind: ClassVar[str] = "table"

    feature_names_in_: list[str]
    constant_columns_: list[str]

    # ---------------------------------------------------------------- columns
    def reserved_columns(self) -> set[str]:
        reserved: set[str] = set()
        for name in RESERVED_PARAMS:
            value = getattr(self, name, None)
            if isinstance(value, str):
                reserved.add(value)
            elif isinstance(value, list | tuple):
                reserved.update(str(v) for v in value)
        return reserved

    @property
    def window_length(self) -> int:
        """Rows per window (1 for row-wise models)."""
        return int(getattr(self, "window", 1) or 1)

    @property
    def min_rows(self) -> int:
        """Fewest rows per series this estimator can score."""
        return self.window_length

    @property
    def group_column(self) -> str | None:
        group = getattr(self, "group", None)
        return group if isinstance(group, str) else None

    def _select_columns(self, data: pd.DataFrame) -> list[str]:
        explicit: Sequence[str] | None = getattr(self, "columns", None)
        if explicit:
            missing = [c for c in explicit if c not in data.columns]
            if missing:
                raise InputValidationError(
                    [InputProblem("training data", None, c, "column missing") for c in missing],
                    hint="check the 'columns' parameter against the data",
                )
            return [str(c) for c in explicit]
        reserved = self.reserved_columns()
        chosen = [
            str(c)
            for c in data.columns
            if c not in reserved
            and pd.api.types.is_numeric_dtype(data[c])
            and not pd.api.types.is_bool_dtype(data[c])
        ]
        if not chosen:
            raise InputValidationError(
                InputProblem("training data", None, None, "no numeric signal columns"),
                hint="give one numeric column per signal",
            )
        return chosen

    def _validate(self, data: Any, *, where: str, fitting: bool = False) -> np.ndarray:
        """The input matrix (n, F) as float64, after every contract check."""
        if not isinstance(data, pd.DataFrame):
            raise InputValidationError(
                InputProblem(where, None, None, f"expected a pandas DataFrame, got {type(data).__name__}"),
                hint="pass one column per signal",
            )
        if fitting:
            self.feature_names_in_ = self._select_columns(data)
        columns = self.feature_names_in_
        problems = [InputProblem(where, None, c, "column missing") for c in columns if c not in data.columns]
        allowed = set(columns) | self.reserved_columns()
        problems += [
            InputProblem(where, None, str(c), "unexpected column (not a model input)")
            for c in data.columns
            if c not in allowed and pd.api.types.is_numeric_dtype(data[c])
        ]
        if problems:
            raise InputValidationError(
                problems,
                hint=f"give exactly the model's input columns {columns} (data[model.feature_names_in_])",
            )
        non_numeric = [c for c in columns if not pd.api.types.is_numeric_dtype(data[c])]
        if non_numeric:
            raise InputValidationError(
                [InputProblem(where, None, c, "not numeric") for c in non_numeric],
                hint="convert the signal to numbers",
            )
        x = data[columns].to_numpy(dtype=np.float64, copy=True)
        bad = ~np.isfinite(x)
        if bad.any():
            rows, cols = np.nonzero(bad)
            problems = [
                InputProblem(where, int(r), columns[c], "value is NaN or infinite")
                for r, c in zip(rows[:20], cols[:20], strict=True)
            ]
            raise InputValidationError(
                problems, hint="NaNs are refused: fill (e.g. forward-fill) or drop those rows first"
            )
        self._check_length(data, where)
        return x

    def _groups(self, data: pd.DataFrame) -> np.ndarray | None:
        column = self.group_column
        if column is None:
            return None
        if column not in data.columns:
            raise InputValidationError(
                InputProblem("input", None, column, "group column missing"),
                hint=f"add the '{column}' column (series id)",
            )
        return data[column].to_numpy()

    def _check_length(self, data: pd.DataFrame, where: str) -> None:
        need = self.min_rows
        if need <= 1:
            if len(data) == 0:
                raise InputValidationError(
                    InputProblem(where, None, None, "no rows"), hint="give at least one row"
                )
            return
        if self.group_column and self.group_column in data.columns:
            sizes = data.groupby(self.group_column, sort=False).size()
            short = sizes[sizes < need]
            if len(short):
                raise InputValidationError(
                    [
                        InputProblem(
                            where, None, self.group_column, f"series {g!r} has {n} rows, needs {need}"
                        )
                        for g, n in short.items()
                    ],
                    hint=f"each series must have at least {need} rows (the window length)",
                )
        elif len(data) < need:
            raise InputValidationError(
                InputProblem(where, None, None, f"{len(data)} rows but the window needs {need}"),
                hint=f"give at least {need} consecutive rows",
            )

    def n_outputs(self, data: pd.DataFrame) -> int:
        return len(data)

    # ---------------------------------------------------------------- shared numpy pipeline
    def _extra_columns(self, data: pd.DataFrame) -> dict[str, np.ndarray]:
        extra: dict[str, np.ndarray] = {}
        for step in self.preprocessing().get("steps", []):
            for col in step.get("regime_columns", []):
                extra[col] = data[col].to_numpy(dtype=np.float64)
        return extra

    def _run_pipeline(self, data: pd.DataFrame, compute: Any) -> dict[str, np.ndarray]:
        """Validate, apply the bundle's numpy steps, call ``compute(graph_input)`` (the Python
        twin of the ONNX graph, returning ``{output name: array}``) and apply the post steps."""
        self._check_fitted()
        x = self._validate(data, where="input")
        prep = self.preprocessing()
        steps = [s for s in prep.get("steps", [])]
        x = apply_row_steps(x, steps, self._extra_columns(data))
        graph_in, layout = make_graph_input(x, steps, self._groups(data))
        outputs = compute(graph_in)
        return apply_post(outputs, prep.get("post", []), layout, x.shape[0])


def standardisation_stats(x: np.ndarray, eps: float = 1e-9) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column mean and scale; constant columns get scale 1 (returned as a boolean mask too)."""
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    constant = std <= eps * np.maximum(1.0, np.abs(mean))
    scale = np.where(constant, 1.0, std)
    return mean, scale, constant
