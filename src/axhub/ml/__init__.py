"""Machine learning: features, estimators behind one contract (:mod:`axhub.ml.base`), metrics.

Family packages (``anomaly``, ``rul``, ``diagnosis``, ``machining``, ``vision``, ``quality``) are
imported on demand by :meth:`axhub.ml.base.Estimator.registry`; importing ``axhub.ml`` stays
light (no torch).
"""

from axhub.ml.base import Estimator, ExampleData, SensorEstimator

__all__ = ["Estimator", "ExampleData", "SensorEstimator"]
