"""Multivariate anomaly detection: MSPC (PCA T²+Q), Isolation Forest, a convolutional
autoencoder and an ensemble, all behind :class:`axhub.ml.anomaly.base.AnomalyEstimator`.

Importing this package stays light; torch is imported only when the autoencoder is used.
"""

from axhub.ml.anomaly.autoencoder import ConvAE
from axhub.ml.anomaly.base import AnomalyEstimator
from axhub.ml.anomaly.iforest import IForest
from axhub.ml.anomaly.mspc import MSPC

__all__ = ["MSPC", "AnomalyEstimator", "ConvAE", "IForest", "best_default"]


def best_default() -> AnomalyEstimator:
    """The general-purpose anomaly detector the demo and new assets start with.

    Chosen on the SKAB benchmark (``axhub bench skab``, docs/benchmarks.md).
    """
    return MSPC(window=8, smooth=8)
