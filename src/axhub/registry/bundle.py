"""Model bundles: write, read, verify and run them without the training code.

A bundle is a directory (optionally zipped) holding

``model.onnx``
    the model graph (one float32 input called ``input`` unless ``graph_input`` says otherwise);
``preprocessing.json``
    how raw signals become the graph input and how graph outputs become results
    (see :data:`PREPROCESSING_FORMAT` below);
``manifest.json``
    family, name, version, params, metrics, creation time, input/output spec, the sha256 of every
    other file and, optionally, signatures: ``signature`` (HMAC-SHA256 with a shared hub key,
    kept for existing callers) and ``signature_ed25519`` (the hub's own Ed25519 key; what travels
    to edge devices, which hold only the public key — see :func:`sign_bundle_ed25519`);
``state/``
    optional files the Python estimator needs to reload itself (``.npy`` / ``.json`` only).

This module imports only the standard library, numpy and (lazily, in :class:`BundleRunner`)
onnxruntime: the edge agent uses it, and the edge installs neither torch, scikit-learn, pandas nor
``axhub.ml``. Nothing here unpickles anything (``np.load(allow_pickle=False)`` only).

Preprocessing format (``axhub-preprocessing/1``)
-----------------------------------------------
``columns``
    input signal names, in graph order. Rows are given in time order.
``group_column``
    optional column splitting rows into independent series (e.g. a unit id); windows and
    smoothing never cross a group boundary, outputs keep the input row order.
``steps``
    numpy operations applied before the graph, in order:

    * ``{"op": "standardize", "mean": [F], "scale": [F]}`` -> ``(x - mean) / scale``
    * ``{"op": "regime_standardize", "regime_columns": [R], "centroids": [[K x R]],
      "mean": [[K x F]], "scale": [[K x F]], "settings_mean": [R], "settings_scale": [R]}`` (the
      last two optional: centroids are then in standardised settings units) -> each row is
      standardised with the statistics
      of its nearest operating-regime centroid (the regime columns are read from the input
      too, they need not be model inputs)
    * ``{"op": "window", "length": L, "stride": 1, "flatten": false}`` -> sliding windows
      ``(n_windows, L, F)`` (or ``(n_windows, L*F)`` when flattened), per group, ending at
      rows ``L-1, L-1+stride, ...``
``in_graph``
    documentation only: the preprocessing that is already inside ``model.onnx``.
``graph_input``
    the graph's input name (default ``"input"``).
``outputs``
    result name -> graph output name, e.g. ``{"score": "score", "contributions": "contrib"}``.
    Conventional result names: ``score`` (anomaly: higher = more anomalous), ``prediction``
    (regression value or class index), ``probabilities``, ``contributions`` (per-signal).
``post``
    numpy operations on the outputs, in order:

    * ``{"op": "smooth", "length": k, "method": "mean" | "median", "outputs": ["score"]}``
      trailing (causal) rolling statistic per group, ``min_periods=1``
    * ``{"op": "align", "mode": "end"}`` -> per-window outputs become per-row outputs: row ``i``
      takes the window that ends at it, the first ``L-1`` rows of a group take the first window
      (only valid with ``stride == 1``)
``threshold``
    optional; ``is_anomaly = score > threshold`` is added to the results.
``classes``
    optional; when given, ``prediction`` (a class index) is mapped to these labels as ``label``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from axhub.core.errors import AxHubError, InputProblem, InputValidationError

BUNDLE_FORMAT = "axhub-bundle/1"
PREPROCESSING_FORMAT = "axhub-preprocessing/1"
MODEL_FILE = "model.onnx"
PREPROCESSING_FILE = "preprocessing.json"
MANIFEST_FILE = "manifest.json"
STATE_DIR = "state"

_SAFE_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


class BundleError(AxHubError):
    """A bundle is malformed, incomplete, tampered with or unsigned.

    A refusal after a check carries its ``problems``: each names the file inside the bundle and
    the check that failed, with a catalogue code (``core.messages``) so ``render`` can say it in
    Korean or English. Never a server path: bundles are unpacked into temporary folders whose
    names mean nothing to the person reading the message.
    """

    def __init__(
        self,
        message: str,
        *,
        hint: str = "",
        problems: list[InputProblem] | None = None,
        label: str = "",
    ) -> None:
        self.problems = list(problems or [])
        self.label = label
        if self.problems and not hint and self.problems[0].code:
            from axhub.core.messages import message as catalog_message

            hint = catalog_message(self.problems[0].code, self.problems[0].params, "en")[1]
        super().__init__(message, hint=hint)

    def render(self, lang: str = "en") -> tuple[str, str]:
        """(message, hint) in ``lang``."""
        from axhub.core.messages import BUNDLE_REFUSED, message, normalize_lang

        code = normalize_lang(lang)
        if not self.problems:
            return str(self.args[0]) if self.args else "", self.hint
        shown = "; ".join(p.render(code) for p in self.problems[:5])
        if len(self.problems) > 5:
            shown += f" (+{len(self.problems) - 5})"
        first = self.problems[0]
        hint = message(first.code, first.params, code)[1] if first.code else ""
        return f"{BUNDLE_REFUSED[code].format(label=self.label)}: {shown}", hint or self.hint


def bundle_problem(name: str, code: str, **params: Any) -> InputProblem:
    from axhub.core.errors import problem

    return problem(name, None, None, code, **params)


def refused(label: str, problems: list[InputProblem]) -> BundleError:
    """The error for a bundle that failed its checks (English text for logs, ``render`` for people)."""
    from axhub.core.messages import BUNDLE_REFUSED

    shown = "; ".join(str(p) for p in problems)
    return BundleError(f"{BUNDLE_REFUSED['en'].format(label=label)}: {shown}", problems=problems, label=label)


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _unsafe_name(name: str) -> bool:
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        return True
    return any(not set(part) <= _SAFE_NAME_CHARS for part in parts)


def _check_relative_name(name: str, label: str = "") -> None:
    if _unsafe_name(name):
        raise refused(label, [bundle_problem(repr(name), "bundle_unsafe_name")])


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


ED25519_FIELD = "signature_ed25519"
_SIGNATURE_FIELDS = ("signature", ED25519_FIELD)


def _canonical(manifest: Mapping[str, Any]) -> bytes:
    # Both signatures cover the same body (everything but the signatures), so adding an Ed25519
    # signature to an HMAC-signed bundle keeps its HMAC valid and vice versa.
    body = {k: v for k, v in manifest.items() if k not in _SIGNATURE_FIELDS}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()


def sign_manifest(manifest: Mapping[str, Any], key: bytes) -> str:
    """HMAC-SHA256 of the manifest (without its signature) with the hub key, hex encoded."""
    return hmac.new(key, _canonical(manifest), hashlib.sha256).hexdigest()


def sign_manifest_ed25519(manifest: Mapping[str, Any], private_key_pem: bytes) -> str:
    """Ed25519 signature of the manifest (without its signatures), base64 encoded."""
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(private_key_pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise BundleError("the hub signing key is not an Ed25519 key")
    return base64.b64encode(key.sign(_canonical(manifest))).decode()


def ed25519_signature_ok(manifest: Mapping[str, Any], public_key_pem: bytes) -> bool:
    """Whether the manifest carries an Ed25519 signature made by the holder of this public key."""
    import base64
    import binascii

    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    signature = manifest.get(ED25519_FIELD)
    if not isinstance(signature, str):
        return False
    key = load_pem_public_key(public_key_pem)
    if not isinstance(key, Ed25519PublicKey):
        raise BundleError("the hub public key is not an Ed25519 key")
    try:
        key.verify(base64.b64decode(signature, validate=True), _canonical(manifest))
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def sign_bundle_ed25519(directory: str | Path, private_key_pem: bytes) -> Path:
    """Add (or replace) the Ed25519 signature in a bundle directory's manifest, in place.

    The files are verified first: a signature vouches for the hashes, so it is never put on a
    bundle whose files no longer match them.
    """
    directory = Path(directory)
    problems = verify_bundle(directory)
    if problems:
        raise refused(directory.name, verify_bundle_problems(directory))
    manifest_path = directory / MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text())
    manifest[ED25519_FIELD] = sign_manifest_ed25519(manifest, private_key_pem)
    tmp = manifest_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    os.replace(tmp, manifest_path)
    return directory


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def write_bundle(
    directory: str | Path,
    *,
    onnx_model: bytes | str | Path,
    preprocessing: Mapping[str, Any],
    manifest: Mapping[str, Any],
    files: Mapping[str, bytes] | None = None,
    key: bytes | None = None,
    overwrite: bool = False,
    make_zip: bool = False,
) -> Path:
    """Write a bundle directory and return its path (the ``.zip`` path when ``make_zip``).

    ``manifest`` gives at least ``family`` and ``name``; ``version``, ``params``, ``metrics``,
    ``inputs``, ``outputs`` are recommended. ``files`` are extra files (e.g. ``state/x.npy``).
    The file hashes, format, and creation time are filled in here.
    """
    directory = Path(directory)
    for required in ("family", "name"):
        if not manifest.get(required):
            raise BundleError(f"manifest needs '{required}'")
    if directory.exists():
        if not overwrite and any(directory.iterdir()):
            raise BundleError(
                f"bundle directory {directory} exists and is not empty", hint="pass overwrite=True"
            )
        if overwrite:
            shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)

    model_bytes = Path(onnx_model).read_bytes() if isinstance(onnx_model, str | Path) else onnx_model
    (directory / MODEL_FILE).write_bytes(model_bytes)
    prep = {"format": PREPROCESSING_FORMAT, **_to_jsonable(dict(preprocessing))}
    (directory / PREPROCESSING_FILE).write_text(json.dumps(prep, indent=1))
    for name, payload in (files or {}).items():
        _check_relative_name(name)
        if name in (MODEL_FILE, PREPROCESSING_FILE, MANIFEST_FILE):
            raise BundleError(f"extra file {name!r} would overwrite a bundle file")
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(payload)

    hashes = {
        p.relative_to(directory).as_posix(): sha256_file(p)
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != MANIFEST_FILE
    }
    full: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "version": "1",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "params": {},
        "metrics": {},
        "inputs": {"columns": prep.get("columns", []), "group_column": prep.get("group_column")},
        "outputs": sorted(prep.get("outputs", {})),
        **_to_jsonable(dict(manifest)),
        "files": hashes,
    }
    for name in _SIGNATURE_FIELDS:
        full.pop(name, None)
    if key is not None:
        full["signature"] = sign_manifest(full, key)
    (directory / MANIFEST_FILE).write_text(json.dumps(full, indent=1, sort_keys=True))
    if make_zip:
        return zip_bundle(directory)
    return directory


def zip_bundle(directory: str | Path, zip_path: str | Path | None = None) -> Path:
    """Zip a bundle directory (files at the archive root); returns the zip path."""
    directory = Path(directory)
    zip_path = Path(zip_path) if zip_path else directory.with_suffix(".zip")
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(directory).as_posix())
    return zip_path


# --------------------------------------------------------------------------------------------
# Reading and verifying
# --------------------------------------------------------------------------------------------


@dataclass
class Bundle:
    """A verified bundle on disk."""

    path: Path
    manifest: dict[str, Any]
    preprocessing: dict[str, Any]
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def family(self) -> str:
        return str(self.manifest["family"])

    @property
    def name(self) -> str:
        return str(self.manifest["name"])

    def state_files(self) -> dict[str, Path]:
        """``state/`` files by name (relative to ``state/``)."""
        root = self.path / STATE_DIR
        if not root.is_dir():
            return {}
        return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}

    def load_array(self, name: str) -> np.ndarray:
        """A ``state/<name>.npy`` array, never unpickled."""
        _check_relative_name(name)
        return np.load(self.path / STATE_DIR / f"{name}.npy", allow_pickle=False)


# Zip bombs: a 0.4 MB bundle once unpacked a 400 MB member. Model weights barely compress, so a
# member that claims more than MAX_RATIO times its packed size is not a model; the total is
# capped too, and bytes are counted while copying (a member's declared size can lie).
MAX_BUNDLE_BYTES = int(os.environ.get("AXHUB_MAX_BUNDLE_BYTES", str(2 << 30)))
MAX_RATIO = 100
_RATIO_FREE_BYTES = 1 << 20  # small text files (JSON) may compress better than that


def _extract_zip(zip_path: Path, label: str) -> tempfile.TemporaryDirectory[str]:
    tmp = tempfile.TemporaryDirectory(prefix="axhub-bundle-")
    try:
        with zipfile.ZipFile(zip_path) as archive:
            infos = [i for i in archive.infolist() if not i.is_dir()]
            declared = sum(i.file_size for i in infos)
            if declared > MAX_BUNDLE_BYTES:
                raise refused(
                    label,
                    [bundle_problem("zip", "bundle_too_large", size=declared, limit=MAX_BUNDLE_BYTES)],
                )
            budget = MAX_BUNDLE_BYTES
            for info in infos:
                _check_relative_name(info.filename, label)
                if info.file_size > _RATIO_FREE_BYTES and info.file_size > MAX_RATIO * max(
                    info.compress_size, 1
                ):
                    raise refused(
                        label,
                        [
                            bundle_problem(
                                info.filename,
                                "bundle_zip_bomb",
                                size=info.file_size,
                                packed=info.compress_size,
                            )
                        ],
                    )
                target = Path(tmp.name) / info.filename
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, target.open("wb") as dst:
                    left = min(budget, info.file_size)
                    while chunk := src.read(min(1 << 20, left + 1)):
                        left -= len(chunk)
                        if left < 0:
                            problem = bundle_problem(info.filename, "bundle_larger_than_declared")
                            raise refused(label, [problem])
                        dst.write(chunk)
                    budget -= info.file_size
    except BaseException:
        tmp.cleanup()
        raise
    return tmp


def verify_bundle(
    path: str | Path,
    *,
    key: bytes | None = None,
    require_signature: bool = False,
    public_key: bytes | None = None,
) -> list[str]:
    """Every problem found in a bundle directory (empty when it is intact), in English.

    With ``public_key`` (the hub's Ed25519 public key, PEM) the bundle must carry a valid
    Ed25519 signature by that key, whatever ``require_signature`` says.
    """
    problems = verify_bundle_problems(
        path, key=key, require_signature=require_signature, public_key=public_key
    )
    return [str(p) for p in problems]


def verify_bundle_problems(
    path: str | Path,
    *,
    key: bytes | None = None,
    require_signature: bool = False,
    public_key: bytes | None = None,
) -> list[InputProblem]:
    """``verify_bundle``'s problems, each naming the file inside the bundle and the failed check."""
    path = Path(path)
    manifest_path = path / MANIFEST_FILE
    if not manifest_path.is_file():
        return [bundle_problem(MANIFEST_FILE, "bundle_no_manifest")]
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        return [bundle_problem(MANIFEST_FILE, "bundle_manifest_unreadable")]
    problems: list[InputProblem] = []
    hashes = manifest.get("files")
    if not isinstance(hashes, dict):
        return [bundle_problem(MANIFEST_FILE, "bundle_no_hashes")]
    for required in (MODEL_FILE, PREPROCESSING_FILE):
        if required not in hashes:
            problems.append(bundle_problem(MANIFEST_FILE, "bundle_not_listed_required", required=required))
    for name, expected in hashes.items():
        if _unsafe_name(name):
            problems.append(bundle_problem(repr(name), "bundle_unsafe_name"))
            continue
        file_path = path / name
        if not file_path.is_file():
            problems.append(bundle_problem(name, "bundle_file_missing"))
        elif sha256_file(file_path) != expected:
            problems.append(bundle_problem(name, "bundle_file_changed"))
    listed = set(hashes)
    for extra in sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()):
        if extra != MANIFEST_FILE and extra not in listed:
            problems.append(bundle_problem(extra, "bundle_file_extra"))
    signature = manifest.get("signature")
    if key is not None and signature is not None:
        if not hmac.compare_digest(str(signature), sign_manifest(manifest, key)):
            problems.append(bundle_problem(MANIFEST_FILE, "bundle_hmac_mismatch"))
    elif require_signature and signature is None and public_key is None:
        problems.append(bundle_problem(MANIFEST_FILE, "bundle_unsigned"))
    elif require_signature and key is None and public_key is None:
        problems.append(bundle_problem(MANIFEST_FILE, "bundle_key_needed"))
    if public_key is not None:
        if ED25519_FIELD not in manifest:
            problems.append(bundle_problem(MANIFEST_FILE, "bundle_not_hub_signed"))
        elif not ed25519_signature_ok(manifest, public_key):
            problems.append(bundle_problem(MANIFEST_FILE, "bundle_bad_signature"))
    return problems


def read_bundle(
    path: str | Path,
    *,
    key: bytes | None = None,
    require_signature: bool = False,
    public_key: bytes | None = None,
    label: str | None = None,
) -> Bundle:
    """Open a bundle directory or ``.zip``, refusing it when any file fails verification.

    With ``key`` a present HMAC signature must match; with ``require_signature`` it must be
    present; with ``public_key`` an Ed25519 signature by the hub's key must be present and match.
    ``label`` names the bundle in messages (default: the file or folder name, never its path).
    """
    path = Path(path)
    label = label if label is not None else path.name
    tmp: tempfile.TemporaryDirectory[str] | None = None
    if path.is_file() and zipfile.is_zipfile(path):
        tmp = _extract_zip(path, label)
        root = Path(tmp.name)
    elif path.is_dir():
        root = path
    else:
        raise BundleError(f"no bundle at {label}", hint="give a bundle directory or its .zip")
    problems = verify_bundle_problems(
        root, key=key, require_signature=require_signature, public_key=public_key
    )
    if problems:
        if tmp is not None:
            tmp.cleanup()
        raise refused(label, problems)
    manifest = json.loads((root / MANIFEST_FILE).read_text())
    preprocessing = json.loads((root / PREPROCESSING_FILE).read_text())
    return Bundle(path=root, manifest=manifest, preprocessing=preprocessing, _tmp=tmp)


# --------------------------------------------------------------------------------------------
# The numpy half of preprocessing: shared by BundleRunner and the Python estimators so both
# compute the same thing.
# --------------------------------------------------------------------------------------------


def group_slices(groups: np.ndarray | None, n_rows: int) -> list[np.ndarray]:
    """Row indices of each group, groups in order of first appearance, rows in input order."""
    if groups is None:
        return [np.arange(n_rows)]
    _, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    order = np.argsort(first)
    return [np.flatnonzero(inverse == g) for g in order]


def sliding_windows(x: np.ndarray, length: int, stride: int = 1) -> np.ndarray:
    """``(n_windows, length, F)`` view-copy of a ``(n, F)`` array; windows end at rows length-1+k*stride."""
    if x.shape[0] < length:
        raise InputValidationError(
            InputProblem("input", None, None, f"{x.shape[0]} rows but the model needs windows of {length}"),
            hint=f"give at least {length} consecutive rows per series",
        )
    windows = np.lib.stride_tricks.sliding_window_view(x, length, axis=0)  # (n-L+1, F, L)
    return np.ascontiguousarray(np.swapaxes(windows, 1, 2)[::stride])


def rolling(values: np.ndarray, length: int, method: str = "mean") -> np.ndarray:
    """Trailing rolling mean/median along axis 0 with ``min_periods=1`` (causal, streaming-safe)."""
    if length <= 1:
        return values
    values = np.asarray(values, dtype=np.float64)
    out = np.empty_like(values)
    if method == "mean":
        csum = np.cumsum(values, axis=0)
        n = values.shape[0]
        idx = np.arange(n)
        start = idx - length
        totals = csum.copy()
        totals[length:] = csum[length:] - csum[start[length:]]
        counts = np.minimum(idx + 1, length).reshape((-1,) + (1,) * (values.ndim - 1))
        return totals / counts
    if method == "median":
        for i in range(values.shape[0]):
            out[i] = np.median(values[max(0, i - length + 1) : i + 1], axis=0)
        return out
    raise BundleError(f"unknown smoothing method {method!r}")


def _nearest_regime(settings: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    d = ((settings[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
    return np.argmin(d, axis=1)


def apply_row_steps(
    x: np.ndarray, steps: list[dict[str, Any]], extra: Mapping[str, np.ndarray] | None = None
) -> np.ndarray:
    """Row-wise steps (standardize, regime_standardize) on a ``(n, F)`` float array."""
    for step in steps:
        op = step["op"]
        if op == "standardize":
            x = (x - np.asarray(step["mean"])) / np.asarray(step["scale"])
        elif op == "regime_standardize":
            if extra is None:
                raise BundleError("regime_standardize needs the regime columns")
            settings = np.column_stack(
                [np.asarray(extra[c], dtype=np.float64) for c in step["regime_columns"]]
            )
            if "settings_mean" in step:  # centroids live in standardised settings space
                settings = (settings - np.asarray(step["settings_mean"])) / np.asarray(step["settings_scale"])
            regime = _nearest_regime(settings, np.asarray(step["centroids"], dtype=np.float64))
            x = (x - np.asarray(step["mean"])[regime]) / np.asarray(step["scale"])[regime]
        elif op == "window":
            continue
        else:
            raise BundleError(f"unknown preprocessing step {op!r}", hint="update axhub on this machine")
    return x


def window_step(steps: list[dict[str, Any]]) -> dict[str, Any] | None:
    found = [s for s in steps if s["op"] == "window"]
    return found[-1] if found else None


def make_graph_input(
    x: np.ndarray, steps: list[dict[str, Any]], groups: np.ndarray | None = None
) -> tuple[np.ndarray, list[tuple[np.ndarray, int]]]:
    """Windows (or rows) for the graph plus, per group, (row indices, number of graph items)."""
    window = window_step(steps)
    parts: list[np.ndarray] = []
    layout: list[tuple[np.ndarray, int]] = []
    for rows in group_slices(groups, x.shape[0]):
        xs = x[rows]
        if window is not None:
            w = sliding_windows(xs, int(window["length"]), int(window.get("stride", 1)))
            if window.get("flatten"):
                w = w.reshape(w.shape[0], -1)
            parts.append(w)
            layout.append((rows, w.shape[0]))
        else:
            parts.append(xs)
            layout.append((rows, xs.shape[0]))
    return np.concatenate(parts, axis=0), layout


def apply_post(
    outputs: dict[str, np.ndarray],
    post: list[dict[str, Any]],
    layout: list[tuple[np.ndarray, int]],
    n_rows: int,
) -> dict[str, np.ndarray]:
    """Smoothing and alignment per group; results keep the input row order when aligned."""
    result: dict[str, np.ndarray] = {}
    for name, values in outputs.items():
        pieces: list[np.ndarray] = []
        per_row = True
        offset = 0
        for rows, count in layout:
            part = values[offset : offset + count]
            offset += count
            for step in post:
                if step["op"] == "smooth" and name in step.get("outputs", ["score"]):
                    part = rolling(part, int(step["length"]), step.get("method", "mean"))
                elif step["op"] == "align":
                    pad = len(rows) - part.shape[0]
                    if pad > 0:
                        part = np.concatenate([np.repeat(part[:1], pad, axis=0), part], axis=0)
            per_row = per_row and part.shape[0] == len(rows)
            pieces.append(part)
        stacked = np.concatenate(pieces, axis=0)
        if per_row and len(layout) > 1:
            # back to the caller's row order (groups may interleave)
            out = np.empty_like(stacked)
            out[np.concatenate([rows for rows, _ in layout])] = stacked
            stacked = out
        result[name] = stacked
    return result


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


class BundleRunner:
    """Runs a bundle with onnxruntime + numpy only.

    ``run(data)`` takes a mapping of column name -> 1-D values (a ``dict`` of arrays or a pandas
    DataFrame; for ``tensor`` bundles a ready numpy array) and returns ``score``/``prediction``/
    ``contributions``/... as numpy arrays, plus ``is_anomaly`` when the bundle has a threshold.
    """

    def __init__(
        self,
        bundle: Bundle | str | Path,
        *,
        key: bytes | None = None,
        require_signature: bool = False,
        public_key: bytes | None = None,
        threads: int = 1,
    ) -> None:
        import onnxruntime as ort

        self.bundle = (
            bundle
            if isinstance(bundle, Bundle)
            else read_bundle(bundle, key=key, require_signature=require_signature, public_key=public_key)
        )
        prep = self.bundle.preprocessing
        self.columns: list[str] = list(prep.get("columns", []))
        self.group_column: str | None = prep.get("group_column")
        self.steps: list[dict[str, Any]] = list(prep.get("steps", []))
        self.post: list[dict[str, Any]] = list(prep.get("post", []))
        self.outputs: dict[str, str] = dict(prep.get("outputs", {"score": "score"}))
        self.threshold: float | None = prep.get("threshold")
        self.classes: list[Any] | None = prep.get("classes")
        self.input_name: str = prep.get("graph_input", "input")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(self.bundle.model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )

    @property
    def min_rows(self) -> int:
        window = window_step(self.steps)
        return int(window["length"]) if window else 1

    def _matrix(self, data: Any) -> tuple[np.ndarray, np.ndarray | None, dict[str, np.ndarray]]:
        missing = [c for c in self.columns if c not in data]
        if missing:
            raise InputValidationError(
                [InputProblem("input", None, c, "column missing") for c in missing],
                hint=f"the model needs columns {self.columns}",
            )
        x = np.column_stack([np.asarray(data[c], dtype=np.float64) for c in self.columns])
        bad = ~np.isfinite(x)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise InputValidationError(
                InputProblem("input", int(row), self.columns[col], "value is NaN or infinite"),
                hint="fill or drop missing readings before scoring",
            )
        groups = np.asarray(data[self.group_column]) if self.group_column else None
        extra: dict[str, np.ndarray] = {}
        for step in self.steps:
            for col in step.get("regime_columns", []):
                extra[col] = np.asarray(data[col], dtype=np.float64)
        return x, groups, extra

    def run(self, data: Any) -> dict[str, np.ndarray]:
        if not self.columns:  # tensor bundle: the caller gives the graph input itself
            feeds = np.asarray(data, dtype=np.float32)
            raw = self.session.run(list(self.outputs.values()), {self.input_name: feeds})
            results = {name: np.asarray(v) for name, v in zip(self.outputs, raw, strict=True)}
            return self._finish(results)
        x, groups, extra = self._matrix(data)
        x = apply_row_steps(x, self.steps, extra)
        graph_in, layout = make_graph_input(x, self.steps, groups)
        raw = self.session.run(list(self.outputs.values()), {self.input_name: graph_in.astype(np.float32)})
        outputs = {name: np.asarray(v) for name, v in zip(self.outputs, raw, strict=True)}
        outputs = {
            k: (v.reshape(-1) if v.ndim == 2 and v.shape[1] == 1 and k != "contributions" else v)
            for k, v in outputs.items()
        }
        return self._finish(apply_post(outputs, self.post, layout, x.shape[0]))

    def _finish(self, results: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.threshold is not None and "score" in results:
            results["is_anomaly"] = results["score"] > float(self.threshold)
        if self.classes is not None and "prediction" in results:
            labels = np.asarray(self.classes)
            results["label"] = labels[results["prediction"].astype(np.int64)]
        return results
