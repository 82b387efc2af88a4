"""Rolling-bearing defect orders and the envelope spectrum around them.

A local defect strikes once per passage, so the envelope of the vibration (demodulated around a
structural resonance) repeats at the bearing's characteristic frequencies. Those scale with the
shaft speed and depend only on geometry, never on the size of the defect; as **orders**
(multiples of the shaft frequency, for a stationary outer race):

* BPFO = n/2 (1 - d/D cos a), BPFI = n/2 (1 + d/D cos a),
* BSF = D/(2d) (1 - (d/D cos a)^2) (a ball strikes both races: its lines show at 2 x BSF),
* FTF = 1/2 (1 - d/D cos a),

with n balls of diameter d on pitch diameter D and contact angle a. :func:`defect_snr_features`
reads the envelope spectrum at the first harmonics of each, relative to its median level (a
signal-to-noise ratio in log units), so a classifier sees which defect family repeats rather
than how loud the machine is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from axhub.ml.features.vibration import envelope_spectrum, time_features


@dataclass(frozen=True)
class BearingGeometry:
    balls: int
    ball_diameter: float
    pitch_diameter: float
    contact_angle_deg: float = 0.0

    def orders(self) -> dict[str, float]:
        ratio = self.ball_diameter / self.pitch_diameter * np.cos(np.radians(self.contact_angle_deg))
        return {
            "BPFO": self.balls / 2 * (1 - ratio),
            "BPFI": self.balls / 2 * (1 + ratio),
            "BSF": self.pitch_diameter / (2 * self.ball_diameter) * (1 - ratio**2),
            "FTF": (1 - ratio) / 2,
        }


# CWRU drive-end bearing: 6205-2RS JEM SKF, 9 balls, d = 0.3126 in, D = 1.537 in.
SKF_6205 = BearingGeometry(balls=9, ball_diameter=0.3126, pitch_diameter=1.537)
HARMONICS = (1, 2, 3)


def defect_feature_names() -> list[str]:
    names = [f"{family}_{h}x" for family in ("BPFO", "BPFI", "2BSF") for h in HARMONICS]
    return [*names, "BPFI_sideband_-1", "BPFI_sideband_+1", "log_kurtosis", "log_crest"]


def defect_snr_features(
    w: np.ndarray, fs: float, shaft_hz: float, geometry: BearingGeometry = SKF_6205, tolerance: float = 0.03
) -> np.ndarray:
    """(n_windows, 13): log peak / median of the envelope spectrum within ``tolerance`` (relative)
    of h x BPFO, h x BPFI, h x 2BSF (h = 1..3), of the BPFI +-1-order sidebands (inner-race
    defects are modulated by the shaft), and log kurtosis and crest factor of the window."""
    freqs, env = envelope_spectrum(np.atleast_2d(w), fs)
    order = freqs / shaft_hz
    reference = np.median(env[:, (order > 0.5) & (order < 12.0)], axis=1) + 1e-12
    orders = geometry.orders()

    def peak(centre: float) -> np.ndarray:
        near = np.abs(order - centre) <= tolerance * centre + 0.05
        return np.asarray(np.log(env[:, near].max(axis=1) / reference))

    columns = [
        peak(h * base) for base in (orders["BPFO"], orders["BPFI"], 2 * orders["BSF"]) for h in HARMONICS
    ]
    columns += [peak(orders["BPFI"] - 1.0), peak(orders["BPFI"] + 1.0)]
    shape = time_features(np.atleast_2d(w))
    columns += [np.log(shape[:, 1]), np.log(shape[:, 3])]
    return np.column_stack(columns)


# ------------------------------------------------------------------ defect families, size-free
FAMILIES = ("BPFO", "BPFI", "ball")


def envelope_order_spectrum(
    w: np.ndarray, fs: float, shaft_hz: float, band_hz: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """(orders, |FFT| of the Hilbert envelope) of each window row, band-passed to ``band_hz``
    (an FFT brick-wall, so nothing outside the band leaks into the envelope). The frequency
    axis is divided by the shaft frequency: defect lines of any load sit at the same orders."""
    from scipy.signal import hilbert

    w = np.atleast_2d(np.asarray(w, dtype=np.float64))
    length = w.shape[1]
    freqs = np.fft.rfftfreq(length, 1.0 / fs)
    spectrum = np.fft.rfft(w - w.mean(axis=1, keepdims=True), axis=1)
    spectrum[:, (freqs < band_hz[0]) | (freqs > band_hz[1])] = 0.0
    envelope = np.abs(hilbert(np.fft.irfft(spectrum, length, axis=1), axis=1))
    envelope -= envelope.mean(axis=1, keepdims=True)
    return freqs / shaft_hz, np.abs(np.fft.rfft(envelope * np.hanning(length), axis=1))


def family_lines(geometry: BearingGeometry = SKF_6205) -> dict[str, list[float]]:
    """The orders each defect family repeats at. Only the first two harmonics of BPFO and BPFI:
    3 x BPFO (10.75) and 2 x BPFI (10.83) fall in the same bin of a short window. An inner-race
    defect passes in and out of the load zone once per turn (BPFI +- 1 sidebands); a ball spins
    at BSF and strikes both races (2 x BSF). Its cage sidebands 2 x BSF +- FTF are left out: they
    lie 0.10 orders from BPFI - 1 and 0.13 from BPFO + 1, closer than a 4096-sample window
    resolves, so they would credit race faults to the ball."""
    o = geometry.orders()
    return {
        "BPFO": [o["BPFO"], 2 * o["BPFO"]],
        "BPFI": [o["BPFI"], 2 * o["BPFI"], o["BPFI"] - 1.0, o["BPFI"] + 1.0],
        "ball": [o["BSF"], 2 * o["BSF"]],
    }


def line_tolerance(order: float) -> float:
    """Half-width of a line's search window in orders: 0.5 % of the order (the speed in a file is
    nominal) + 0.05, about half a bin of a 4096-sample window at 12 kHz and 30 Hz; narrow enough
    that no family's window reaches another family's line or its +-1 shaft sideband (a test
    holds this for the 6205)."""
    return 0.005 * order + 0.05


def _near(orders: np.ndarray, centre: float) -> np.ndarray:
    """Bins within :func:`line_tolerance` of a line, and always the nearest one (short windows)."""
    near = np.abs(orders - centre) <= line_tolerance(centre)
    near[np.argmin(np.abs(orders - centre))] = True
    return near


def defect_family_names() -> list[str]:
    ratios = [f"{a}/{b}" for i, a in enumerate(FAMILIES) for b in FAMILIES[i + 1 :]]
    return [*(f"{f}_snr" for f in FAMILIES), *ratios]


def defect_family_features(
    w: np.ndarray,
    fs: float,
    shaft_hz: float,
    band_hz: tuple[float, float],
    geometry: BearingGeometry = SKF_6205,
) -> np.ndarray:
    """(n_windows, 6): per family (BPFO, BPFI, ball), log of the mean line height over the
    median of the envelope spectrum (orders 0.3-12), then the three log ratios between
    families. Line height = largest bin within :func:`line_tolerance` of the line. Both the
    median and the lines scale with the vibration amplitude, so the features do not: a larger
    defect or a heavier load makes every line louder, the *pattern* of which family repeats is
    what says the fault type."""
    orders, env = envelope_order_spectrum(w, fs, shaft_hz, band_hz)
    reference = np.median(env[:, (orders > 0.3) & (orders < 12.0)], axis=1) + 1e-12
    snr = []
    for lines in family_lines(geometry).values():
        heights = [env[:, _near(orders, c)].max(axis=1) for c in lines]
        snr.append(np.log(np.mean(heights, axis=0) / reference + 1e-12))
    ratios = [snr[i] - snr[j] for i in range(len(snr)) for j in range(i + 1, len(snr))]
    return np.column_stack(snr + ratios)
