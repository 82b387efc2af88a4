"""Process quality: outcome models with uncertainty and constrained setpoint recommendations.

``limits`` (bounds, step, forbidden boxes, trust region), ``model`` (Gaussian-process outcome
models with intervals and explanations), ``recommend`` (optuna search of the model under the
limits; weighted objective and Pareto front). Writing setpoints to machines is not here: that is
``axhub.serve.setpoints`` (approval, write, read back, audit, rollback).
"""
