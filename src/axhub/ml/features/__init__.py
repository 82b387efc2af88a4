"""Feature building blocks: windowing, rolling statistics, per-operating-regime normalisation.

(Vibration features live in ``axhub.ml.features.vibration``.) The numpy windowing and
normalisation are the same functions the bundle runner applies, so a model trained on these
features runs identically at the edge.
"""

from axhub.ml.features.regimes import RegimeNormalizer
from axhub.ml.features.rolling import rolling_features
from axhub.ml.features.windowing import windows_by_group

__all__ = ["RegimeNormalizer", "rolling_features", "windows_by_group"]
