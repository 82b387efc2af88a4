"""Remaining useful life: piecewise-linear targets, regime-normalised windowed features,
gradient boosting and a 1D-CNN, with conformal prediction intervals."""
