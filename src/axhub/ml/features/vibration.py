"""Vibration features for rotating machines, robust to speed changes, in numpy and as ONNX.

Per window of a raw acceleration signal (one channel):
* time-domain shape statistics that do not depend on amplitude scale or speed: kurtosis,
  skewness, crest, shape, impulse and clearance factors, plus log RMS;
* spectrum band energies on an **order** axis (frequency / shaft frequency), as fractions of
  the total, so a fault frequency that moves with speed stays in the same band;
* the envelope spectrum on the same order axis: bearing defects strike high-frequency
  resonances once per defect passage; band-passing around the resonances and taking the
  magnitude of the analytic signal (Hilbert transform, done as one FFT mask) demodulates them,
  and the envelope spectrum peaks at the defect orders (BPFO, BPFI, BSF).
:func:`vibration_features` (numpy) and :func:`vibration_feature_graph` (ONNX, for bundles that
run at the edge) compute the same numbers; a test holds them together.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

TIME_FEATURES = ["log_rms", "kurtosis", "skewness", "crest", "shape", "impulse", "clearance"]
EPS = 1e-12
ENVELOPE_BAND_HZ = (2000.0, 5500.0)


def windows_of(x: np.ndarray, length: int, stride: int) -> np.ndarray:
    """(n, length) windows of a 1-D signal (the tail that does not fill a window is dropped)."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) < length:
        raise ValueError(f"signal has {len(x)} samples, the window needs {length}")
    return np.lib.stride_tricks.sliding_window_view(x, length)[::stride].copy()


def time_features(w: np.ndarray) -> np.ndarray:
    """(n, 7) amplitude-invariant shape statistics (+ log RMS) of each window row."""
    c = w - w.mean(axis=1, keepdims=True)
    m2 = np.mean(c**2, axis=1)
    rms = np.sqrt(m2) + EPS
    absc = np.abs(c)
    peak = absc.max(axis=1)
    mean_abs = absc.mean(axis=1) + EPS
    return np.column_stack([
        np.log(rms),
        np.mean(c**4, axis=1) / (m2 * m2 + EPS),
        np.mean(c**3, axis=1) / (m2 * np.sqrt(m2) + EPS),
        peak / rms,
        rms / mean_abs,
        peak / mean_abs,
        peak / (np.mean(np.sqrt(absc), axis=1) ** 2 + EPS),
    ])  # fmt: skip


def order_band_energies(
    power: np.ndarray, freqs: np.ndarray, shaft_hz: float, max_order: float, n_bands: int
) -> np.ndarray:
    """log of the fraction of ``power`` in ``n_bands`` equal bands of order 0..max_order
    (energy beyond ``max_order`` counts in the total)."""
    band = np.clip(np.floor(freqs / shaft_hz / (max_order / n_bands)), 0, n_bands).astype(np.int64)
    onehot = np.eye(n_bands + 1)[band]
    energies = power @ onehot
    frac = energies / (energies.sum(axis=1, keepdims=True) + 1e-24)
    return np.asarray(np.log(frac[:, :n_bands] + 1e-9))


def _band_mask(length: int, fs: float, band: tuple[float, float]) -> np.ndarray:
    """FFT mask giving the analytic signal of the band-passed window (positive band x 2)."""
    k = np.arange(length)
    f = k * fs / length
    return np.where((k > 0) & (k < length / 2) & (f >= band[0]) & (f <= band[1]), 2.0, 0.0)


def _envelope_band(fs: float) -> tuple[float, float]:
    return (min(ENVELOPE_BAND_HZ[0], 0.2 * fs), min(ENVELOPE_BAND_HZ[1], 0.45 * fs))


def envelope_spectrum(w: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """(freqs, |FFT| of the envelope of the band-passed window) for each window row."""
    length = w.shape[1]
    c = w - w.mean(axis=1, keepdims=True)
    analytic = np.fft.ifft(np.fft.fft(c, axis=1) * _band_mask(length, fs, _envelope_band(fs)), axis=1)
    env = np.abs(analytic)
    env -= env.mean(axis=1, keepdims=True)
    spec = np.abs(np.fft.rfft(env * np.hanning(length), axis=1))
    return np.fft.rfftfreq(length, 1.0 / fs), spec


def vibration_features(
    w: np.ndarray,
    fs: float,
    shaft_hz: float,
    spectrum_max_order: float = 200.0,
    spectrum_bands: int = 40,
    envelope_max_order: float = 12.0,
    envelope_bands: int = 48,
) -> np.ndarray:
    """Feature matrix (n_windows, 7 + spectrum_bands + envelope_bands) for windows ``w``."""
    w = np.atleast_2d(np.asarray(w, dtype=np.float64))
    length = w.shape[1]
    freqs = np.fft.rfftfreq(length, 1.0 / fs)
    c = w - w.mean(axis=1, keepdims=True)
    spec = np.abs(np.fft.rfft(c * np.hanning(length), axis=1))
    env_f, env = envelope_spectrum(w, fs)
    return np.hstack([
        time_features(w),
        order_band_energies(spec**2, freqs, shaft_hz, spectrum_max_order, spectrum_bands),
        order_band_energies(env**2, env_f, shaft_hz, envelope_max_order, envelope_bands),
    ])  # fmt: skip


def feature_names(spectrum_bands: int = 40, envelope_bands: int = 48) -> list[str]:
    return (
        list(TIME_FEATURES)
        + [f"order_band_{i}" for i in range(spectrum_bands)]
        + [f"envelope_order_band_{i}" for i in range(envelope_bands)]
    )


# --------------------------------------------------------------------------------------- ONNX
def _c(name: str, value: Any, dtype: Any = np.float32) -> onnx.TensorProto:
    return onnx.numpy_helper.from_array(np.asarray(value, dtype=dtype), name=name)


def vibration_feature_graph(
    n_channels: int,
    window: int,
    fs: float,
    spectrum_max_order: float = 200.0,
    spectrum_bands: int = 40,
    envelope_max_order: float = 12.0,
    envelope_bands: int = 48,
    opset: int = 17,
) -> onnx.ModelProto:
    """ONNX twin of :func:`vibration_features` for several channels at once.

    Input ``input``: (N, window, n_channels + 1) float32, the last column being the shaft speed
    in rpm. Output ``features``: (N, n_channels * n_features), channel after channel.
    """
    length = window
    nodes: list[onnx.NodeProto] = []
    inits = [
        _c("ax1", [1], np.int64),
        _c("ax2", [2], np.int64),
        _c("ax3", [3], np.int64),
        _c("sig_start", [0], np.int64),
        _c("sig_end", [n_channels], np.int64),
        _c("rpm_end", [n_channels + 1], np.int64),
        _c("eps", EPS),
        _c("eps24", 1e-24),
        _c("eps9", 1e-9),
        _c("sixty", 60.0),
        _c("hann", np.hanning(length)),
        _c("mask", _band_mask(length, fs, _envelope_band(fs)).reshape(length, 1)),
        _c("freqs", np.fft.rfftfreq(length, 1.0 / fs)),
        _c("unsq_last", [-1], np.int64),
        _c("flat", [0, -1], np.int64),
    ]

    def node(op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [output], **attrs))
        return output

    sig = node("Slice", ["input", "sig_start", "sig_end", "ax2"], "sig")  # (N, L, C)
    rpm = node("Slice", ["input", "sig_end", "rpm_end", "ax2"], "rpm")  # (N, L, 1)
    x = node("Transpose", [sig], "x", perm=[0, 2, 1])  # (N, C, L)
    mean = node("ReduceMean", [x], "mean", axes=[2], keepdims=1)
    c = node("Sub", [x, mean], "c")
    c2 = node("Mul", [c, c], "c2")
    m2 = node("ReduceMean", [c2], "m2", axes=[2], keepdims=1)
    rms = node("Add", [node("Sqrt", [m2], "sqrt_m2"), "eps"], "rms")
    absc = node("Abs", [c], "absc")
    peak = node("ReduceMax", [absc], "peak", axes=[2], keepdims=1)
    mean_abs = node(
        "Add", [node("ReduceMean", [absc], "mean_abs_raw", axes=[2], keepdims=1), "eps"], "mean_abs"
    )
    m4 = node("ReduceMean", [node("Mul", [c2, c2], "c4")], "m4", axes=[2], keepdims=1)
    m3 = node("ReduceMean", [node("Mul", [c2, c], "c3")], "m3", axes=[2], keepdims=1)
    kurt = node("Div", [m4, node("Add", [node("Mul", [m2, m2], "m2sq"), "eps"], "m2sq_eps")], "kurt")
    skew = node("Div", [m3, node("Add", [node("Mul", [m2, "sqrt_m2"], "m2_15"), "eps"], "m2_15_eps")], "skew")
    sqrt_abs_mean = node(
        "ReduceMean", [node("Sqrt", [absc], "sqrt_abs")], "sqrt_abs_mean", axes=[2], keepdims=1
    )
    clear_den = node("Add", [node("Mul", [sqrt_abs_mean, sqrt_abs_mean], "sam2"), "eps"], "clear_den")
    time_feats = node(
        "Concat",
        [
            node("Log", [rms], "log_rms"),
            kurt,
            skew,
            node("Div", [peak, rms], "crest"),
            node("Div", [rms, mean_abs], "shape"),
            node("Div", [peak, mean_abs], "impulse"),
            node("Div", [peak, clear_den], "clearance"),
        ],
        "time_feats",
        axis=2,
    )  # (N, C, 7)

    # shaft frequency per window -> order of every FFT bin
    shaft = node(
        "Div", [node("ReduceMean", [rpm], "rpm_mean", axes=[1, 2], keepdims=1), "sixty"], "shaft"
    )  # (N,1,1)
    orders = node("Div", ["freqs", shaft], "orders")  # (N, 1, K)

    def band_energies(power: str, max_order: float, n_bands: int, prefix: str) -> str:
        inits.extend([
            _c(f"{prefix}_width", max_order / n_bands),
            _c(f"{prefix}_lo", 0.0),
            _c(f"{prefix}_hi", float(n_bands)),
            _c(f"{prefix}_depth", [n_bands + 1], np.int64),
            _c(f"{prefix}_onehot_values", [0.0, 1.0]),
            _c(f"{prefix}_keep_start", [0], np.int64),
            _c(f"{prefix}_keep_end", [n_bands], np.int64),
        ])  # fmt: skip
        band = node(
            "Floor", [node("Div", [orders, f"{prefix}_width"], f"{prefix}_scaled")], f"{prefix}_floor"
        )
        band = node("Clip", [band, f"{prefix}_lo", f"{prefix}_hi"], f"{prefix}_band")
        band_i = node(
            "Cast",
            [node("Squeeze", [band, "ax1"], f"{prefix}_band_sq")],
            f"{prefix}_band_i",
            to=TensorProto.INT64,
        )
        onehot = node(
            "OneHot", [band_i, f"{prefix}_depth", f"{prefix}_onehot_values"], f"{prefix}_onehot", axis=-1
        )
        energies = node("MatMul", [power, onehot], f"{prefix}_energies")  # (N, C, B+1)
        total = node(
            "Add",
            [node("ReduceSum", [energies, "ax2"], f"{prefix}_total_raw", keepdims=1), "eps24"],
            f"{prefix}_total",
        )
        frac = node("Div", [energies, total], f"{prefix}_frac")
        kept = node("Slice", [frac, f"{prefix}_keep_start", f"{prefix}_keep_end", "ax2"], f"{prefix}_kept")
        return node("Log", [node("Add", [kept, "eps9"], f"{prefix}_frac_eps")], f"{prefix}_log")

    def power_of_rfft(signal: str, prefix: str) -> str:
        real = node("Unsqueeze", [signal, "unsq_last"], f"{prefix}_real")  # (N, C, L, 1)
        spec = node("DFT", [real], f"{prefix}_dft", axis=2, onesided=1)  # (N, C, K, 2)
        return node(
            "ReduceSum", [node("Mul", [spec, spec], f"{prefix}_sq"), "ax3"], f"{prefix}_power", keepdims=0
        )

    spec_power = power_of_rfft(node("Mul", [c, "hann"], "c_hann"), "spec")
    spec_feats = band_energies(spec_power, spectrum_max_order, spectrum_bands, "sb")

    full = node(
        "DFT", [node("Unsqueeze", [c, "unsq_last"], "c_real")], "c_fft", axis=2, onesided=0
    )  # (N, C, L, 2)
    analytic = node("DFT", [node("Mul", [full, "mask"], "masked")], "analytic", axis=2, inverse=1, onesided=0)
    env = node(
        "Sqrt",
        [node("ReduceSum", [node("Mul", [analytic, analytic], "an_sq"), "ax3"], "env_sq", keepdims=0)],
        "env",
    )
    env_c = node("Sub", [env, node("ReduceMean", [env], "env_mean", axes=[2], keepdims=1)], "env_c")
    env_power = power_of_rfft(node("Mul", [env_c, "hann"], "env_hann"), "envspec")
    env_feats = band_energies(env_power, envelope_max_order, envelope_bands, "eb")

    per_channel = node("Concat", [time_feats, spec_feats, env_feats], "per_channel", axis=2)
    node("Reshape", [per_channel, "flat"], "features")
    n_feat = n_channels * (len(TIME_FEATURES) + spectrum_bands + envelope_bands)
    graph = helper.make_graph(
        nodes,
        "vibration_features",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", window, n_channels + 1])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", n_feat])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="axhub")
    model.ir_version = min(model.ir_version, 9)
    onnx.checker.check_model(model)
    return model
