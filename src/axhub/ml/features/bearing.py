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
